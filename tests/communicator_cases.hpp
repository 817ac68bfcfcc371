// The communicator tests' cases: one collective call, laid out as NCCL lays out in-place
// and out-of-place calls, shared by the host backend's tests over MPI and over TCP.
#pragma once

#include <cstddef>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "railcc/comm/communicator.hpp"

namespace railcc_test {

using Bytes = std::vector<std::byte>;

struct Case {
  railcc::Collective c;
  railcc::Algorithm algo;
  railcc::DataType type;
  railcc::ReduceOp op;
  std::size_t count;
  bool in_place;
  int root;
};

inline std::string describe(const Case& k) {
  std::ostringstream s;
  s << to_string(k.c) << " " << to_string(k.algo) << " " << to_string(k.type) << " "
    << to_string(k.op) << " count " << k.count << (k.in_place ? " in place" : "") << " root "
    << k.root;
  return s.str();
}

/// Runs `k` on `comm` with this rank's input `mine`; returns this rank's output
/// (`out_bytes`; 0x5a where the call writes nothing). `input_kept`: false if an
/// out-of-place call wrote its input.
inline Bytes call_case(railcc::Communicator& comm, const Case& k, const Bytes& mine,
                       std::size_t out_bytes, bool& input_kept) {
  using namespace railcc;
  const int me = comm.rank();
  const std::size_t e = size_of(k.type);
  const std::size_t in_bytes = mine.size();
  Bytes out(out_bytes, std::byte{0x5a});
  Bytes in_copy = mine;
  Bytes big;
  CallOptions o;
  o.algorithm = k.algo;
  const std::size_t at = static_cast<std::size_t>(me) * k.count * e;
  switch (k.c) {
    case Collective::all_reduce:
      if (k.in_place) {
        out = mine;
        comm.all_reduce(out.data(), out.data(), k.count, k.type, k.op, o);
      } else {
        comm.all_reduce(in_copy.data(), out.data(), k.count, k.type, k.op, o);
      }
      break;
    case Collective::reduce_scatter:
      if (k.in_place) {
        big = mine;
        comm.reduce_scatter(big.data(), big.data() + at, k.count, k.type, k.op, o);
        if (out_bytes > 0) std::memcpy(out.data(), big.data() + at, out_bytes);
      } else {
        comm.reduce_scatter(in_copy.data(), out.data(), k.count, k.type, k.op, o);
      }
      break;
    case Collective::all_gather:
      if (k.in_place) {
        // (memcpy of nothing still needs valid pointers: a zero count has none.)
        if (in_bytes > 0) std::memcpy(out.data() + at, mine.data(), in_bytes);
        comm.all_gather(out.data() + at, out.data(), k.count, k.type, o);
      } else {
        comm.all_gather(in_copy.data(), out.data(), k.count, k.type, o);
      }
      break;
    case Collective::broadcast:
      if (k.in_place) {
        if (me == k.root) out = mine;
        comm.broadcast(out.data(), out.data(), k.count, k.type, k.root, o);
      } else {
        comm.broadcast(me == k.root ? in_copy.data() : nullptr, out.data(), k.count, k.type, k.root,
                       o);
      }
      break;
    case Collective::reduce:
      if (k.in_place) {
        out = mine;
        comm.reduce(out.data(), out.data(), k.count, k.type, k.op, k.root, o);
      } else {
        comm.reduce(in_copy.data(), me == k.root ? out.data() : nullptr, k.count, k.type, k.op,
                    k.root, o);
      }
      break;
    case Collective::all_to_all:
      comm.all_to_all(in_copy.data(), out.data(), k.count, k.type, o);
      break;
    case Collective::send_recv: break;
  }
  input_kept = k.in_place || in_copy == mine;
  return out;
}

}  // namespace railcc_test
