// The correctness matrix: every collective, algorithm, type, op and rank count the
// simulated data mode checks, generated once so that every backend runs the same cases.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>

#include "railcc/coll/collective.hpp"
#include "railcc/coll/data_type.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/fabric/presets.hpp"

namespace railcc_test {

struct MatrixCase {
  railcc::Collective coll;
  railcc::Algorithm algo;
  railcc::Algorithm inter;
  int p;
  railcc::DataType type;
  railcc::ReduceOp op;
  std::size_t count;
  bool in_place;
  int channels;
  int root;
  int phase_chunks;    ///< hierarchical and nvls: 0 is the algorithm's default
  std::uint32_t qps;   ///< QPs per connection between hosts
  std::uint64_t seed;  ///< for the inputs
};

/// 8 hosts of 8 GPUs on the colossus preset: the matrix's fabric.
inline const railcc::Fabric& fabric64() {
  static const railcc::Fabric f = [] {
    railcc::ColossusParams params;
    params.gpus = 64;
    return railcc::colossus(params);
  }();
  return f;
}

/// Calls fn(case) for every case of the matrix (2,511 of them), with the case CAPTUREd.
template <class Fn>
std::size_t for_each_matrix_case(Fn&& fn) {
  using railcc::Algorithm;
  using railcc::Collective;
  std::uint64_t seed = 17;
  std::size_t cases = 0;
  const int rank_counts[] = {1, 2, 3, 5, 8, 16, 24, 64};
  struct Row {
    Collective coll;
    Algorithm algo;
    Algorithm inter;
    bool reduces;
  };
  const Row rows[] = {
      {Collective::all_reduce, Algorithm::ring, Algorithm::ring, true},
      {Collective::all_reduce, Algorithm::rabenseifner, Algorithm::ring, true},
      {Collective::all_reduce, Algorithm::mixed_radix, Algorithm::ring, true},
      {Collective::all_reduce, Algorithm::tree, Algorithm::ring, true},
      {Collective::all_reduce, Algorithm::hierarchical, Algorithm::ring, true},
      {Collective::all_reduce, Algorithm::hierarchical, Algorithm::rabenseifner, true},
      {Collective::all_reduce, Algorithm::hierarchical, Algorithm::mixed_radix, true},
      {Collective::all_reduce, Algorithm::nvls, Algorithm::ring, true},
      {Collective::all_reduce, Algorithm::nvls, Algorithm::rabenseifner, true},
      {Collective::reduce_scatter, Algorithm::ring, Algorithm::ring, true},
      {Collective::reduce_scatter, Algorithm::bruck, Algorithm::ring, true},
      {Collective::reduce, Algorithm::chain, Algorithm::ring, true},
      {Collective::all_gather, Algorithm::ring, Algorithm::ring, false},
      {Collective::all_gather, Algorithm::bruck, Algorithm::ring, false},
      {Collective::broadcast, Algorithm::chain, Algorithm::ring, false},
      {Collective::all_to_all, Algorithm::pairwise, Algorithm::ring, false},
      {Collective::all_to_all, Algorithm::pxn, Algorithm::ring, false},
      {Collective::send_recv, Algorithm::pairwise, Algorithm::ring, false},
  };
  for (const auto& row : rows) {
    for (int p : rank_counts) {
      for (railcc::DataType t : railcc::all_data_types) {
        for (railcc::ReduceOp op : railcc::all_reduce_ops) {
          if (!row.reduces && op != railcc::ReduceOp::sum) continue;
          // All pairs for small groups; a rotating sample of type/op pairs for 16+ ranks.
          if (p >= 16 && (static_cast<int>(t) * 5 + static_cast<int>(op) + p) % 6 != 0) continue;
          ++seed;
          const MatrixCase c{
              row.coll,
              row.algo,
              row.inter,
              p,
              t,
              op,
              p <= 8 ? std::size_t{13} + seed % 7 : std::size_t{29},  // rarely a multiple of p
              seed % 2 == 0,
              1 + static_cast<int>(seed % 3),
              static_cast<int>(seed % static_cast<std::uint64_t>(p)),
              static_cast<int>(seed % 3),  // phases in 1 or 2 chunks, or the default
              seed % 5 == 0 ? 3u : 1u,     // transfers between hosts over 3 QPs
              seed};
          CAPTURE(to_string(c.coll));
          CAPTURE(to_string(c.algo));
          CAPTURE(to_string(c.inter));
          CAPTURE(p);
          CAPTURE(to_string(t));
          CAPTURE(to_string(op));
          CAPTURE(c.count);
          CAPTURE(c.in_place);
          CAPTURE(c.channels);
          CAPTURE(c.root);
          CAPTURE(c.phase_chunks);
          CAPTURE(c.qps);
          fn(c);
          ++cases;
        }
      }
    }
  }
  return cases;
}

}  // namespace railcc_test
