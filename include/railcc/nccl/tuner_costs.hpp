// railcc/nccl/tuner_costs.hpp: railcc's cost model written into NCCL's cost table.
//
// NCCL's tuner plugin interface (nccl/tuner_abi.hpp) hands a plugin, for every collective,
// a table of NCCL's own predicted times: one row per algorithm (tree, ring, CollNet, NVLS,
// PAT), one column per protocol (LL, LL128, Simple), in microseconds, -1 where NCCL will not
// use the pair. NCCL then takes the cheapest entry. railcc knows the fabric between the
// nodes (rails, tiers, oversubscription) where NCCL's model knows link rates, so for the
// algorithms railcc models as NCCL runs them it puts its own time in the Simple column and
// scales the algorithm's other protocols by the same factor: which algorithm wins is
// railcc's call, and which protocol an algorithm runs with stays NCCL's (railcc does not
// model LL and LL128). Rows railcc has no model of are left as NCCL set them.
//
//   NCCL algorithm | railcc model
//   ring           | Algorithm::ring, one channel per GPU of a node, each on its own NIC
//   tree           | Algorithm::tree (all-reduce; NCCL's tree runs nothing else)
//   NVLS           | Algorithm::nvls on one node (NCCL's NVLS row is one node's NVSwitch)
//   CollNet, NVLS tree, PAT | not modelled: left to NCCL
//
// The fabric is RAILCC_FABRIC's (a preset or a fabric JSON file) where the job sets it, as
// for railcc's own communicator; otherwise a rail-optimised fabric of the job's nodes
// (docs/backends.md).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "railcc/coll/call.hpp"
#include "railcc/coll/collective.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/fabric/presets.hpp"
#include "railcc/nccl/tuner_abi.hpp"
#include "railcc/tune/cost_model.hpp"

RAILCC_NAMESPACE_BEGIN

namespace nccl {

/// A communicator as NCCL describes it to a tuner.
struct TunerJob {
  std::size_t ranks = 1;
  std::size_t nodes = 1;
  std::size_t per_node = 1;  ///< the most ranks on one node (NVLink domain)
};

/// The job's cost model, and the rewriting of NCCL's cost table with it.
class CostTable {
 public:
  /// `fabric`: the fabric named by RAILCC_FABRIC (`fabric_name` says what it is), or
  /// nothing for a rail-optimised fabric of the job's nodes.
  CostTable(TunerJob job, std::optional<Fabric> fabric, std::string fabric_name = {}) : job_(job) {
    if (job_.ranks == 0 || job_.nodes == 0 || job_.per_node == 0 ||
        job_.nodes * job_.per_node < job_.ranks) {
      throw InputError("NCCL tuner: " + std::to_string(job_.ranks) + " ranks on " +
                       std::to_string(job_.nodes) + " nodes of at most " +
                       std::to_string(job_.per_node) + " ranks is not a placement");
    }
    if (fabric) {
      fabric_ = std::make_shared<const Fabric>(std::move(*fabric));
      name_ = fabric_name.empty() ? "the fabric given" : std::move(fabric_name);
    } else {
      // H100-class NVSwitches reduce (NVLS); where a node's do not, NCCL marks its NVLS
      // rows unused (-1) and they are left so.
      fabric_ = std::make_shared<const Fabric>(rail_optimised_fabric(
          job_.nodes, static_cast<std::uint32_t>(job_.per_node), /*nvswitch_reduction=*/true));
      name_ = "a rail-optimised fabric of " + std::to_string(job_.nodes) + " nodes of " +
              std::to_string(job_.per_node) + " GPUs";
    }
    const Fabric& f = *fabric_;
    const HostLayout layout = host_layout(f);
    if (job_.per_node > layout.per_host || job_.nodes > layout.hosts) {
      throw InputError("RAILCC_FABRIC: " + name_ + " has " + std::to_string(layout.hosts) +
                       " hosts of " + std::to_string(layout.per_host) +
                       " GPUs, but NCCL's job has " + std::to_string(job_.nodes) +
                       " nodes of up to " + std::to_string(job_.per_node) + " ranks");
    }
    model_ = CostModel::of(f, std::min(job_.ranks, f.endpoint_count()));
    model_.ranks = job_.ranks;
    model_.hosts = job_.nodes;
    model_.per_host = job_.per_node;
    model_.channels = static_cast<int>(job_.per_node);
  }

  [[nodiscard]] const std::string& fabric_name() const { return name_; }
  [[nodiscard]] const CostModel& model() const { return model_; }

  /// railcc's times for NCCL's rows, in microseconds, indexed by NCCL algorithm (-1: no
  /// model of it here).
  using Prices = std::array<double, 7>;

  /// railcc's times for collective `c` of `bytes` (NCCL's nBytes: the per-rank buffer for
  /// all-reduce, broadcast and reduce, the whole buffer for all-gather and
  /// reduce-scatter, as railcc's sizes are).
  [[nodiscard]] Prices prices(Collective c, std::size_t bytes) const {
    Prices out;
    out.fill(-1);
    for (const TunerCandidate& k : model_.candidates(c, bytes)) {
      if (!k.runs()) continue;
      const double us = k.choice.predicted.in_us();
      if (k.choice.algorithm == Algorithm::ring) out[railcc_nccl_algo_ring] = us;
      if (k.choice.algorithm == Algorithm::tree && c == Collective::all_reduce)
        out[railcc_nccl_algo_tree] = us;
      if (k.choice.algorithm == Algorithm::nvls && job_.nodes == 1) out[railcc_nccl_algo_nvls] = us;
    }
    return out;
  }

  /// Rewrites NCCL's table (float[num_algo][num_proto], -1: not used) for `func` of
  /// `bytes`: each algorithm railcc models gets railcc's time in its Simple entry and its
  /// other protocols scaled by the same factor. Returns the algorithms rewritten. NCCL
  /// asks for every collective it launches, and a training loop repeats its sizes, so the
  /// prices of the sizes asked are kept: pricing every candidate took 2 to 5 us (16 and
  /// 100,000 ranks), a lookup 0.03 us, on a loaded 2-core machine.
  int rewrite(RailccNcclFunc func, std::size_t bytes, float* table, int num_algo,
              int num_proto) const {
    const std::optional<Collective> c = collective_of(func);
    if (!c || job_.ranks <= 1 || num_proto <= railcc_nccl_proto_simple) return 0;
    const Prices p = cached_prices(*c, func, bytes);
    int rewritten = 0;
    for (int a = 0; a < num_algo && a < static_cast<int>(p.size()); ++a) {
      float* row = table + static_cast<std::ptrdiff_t>(a) * num_proto;
      const float simple = row[railcc_nccl_proto_simple];
      if (!(simple > 0)) continue;  // NCCL does not use it (-1), or it is free (one rank)
      if (p[a] < 0) continue;
      const double factor = p[a] / simple;
      for (int q = 0; q < num_proto; ++q) {
        if (row[q] >= 0) row[q] = static_cast<float>(row[q] * factor);
      }
      ++rewritten;
    }
    return rewritten;
  }

  /// The collective of NCCL's ncclFunc_t value (nothing for send and receive).
  static std::optional<Collective> collective_of(RailccNcclFunc f) {
    switch (f) {
      case railcc_nccl_broadcast: return Collective::broadcast;
      case railcc_nccl_reduce: return Collective::reduce;
      case railcc_nccl_all_gather: return Collective::all_gather;
      case railcc_nccl_reduce_scatter: return Collective::reduce_scatter;
      case railcc_nccl_all_reduce: return Collective::all_reduce;
    }
    return std::nullopt;
  }

 private:
  Prices cached_prices(Collective c, RailccNcclFunc func, std::size_t bytes) const {
    const std::uint64_t key = std::uint64_t{bytes} << 3 | static_cast<std::uint64_t>(func & 7);
    {
      const std::lock_guard<std::mutex> lock(cache_mutex_);
      if (const auto it = cache_.find(key); it != cache_.end()) return it->second;
    }
    const Prices p = prices(c, bytes);
    const std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= max_cached) cache_.clear();  // sizes that do not repeat
    cache_.emplace(key, p);
    return p;
  }
  /// Sizes priced and kept (under 100 bytes each).
  static constexpr std::size_t max_cached = 4096;

  TunerJob job_;
  std::shared_ptr<const Fabric> fabric_;
  std::string name_;
  CostModel model_;
  // One communicator's calls may come from whichever thread holds it.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::uint64_t, Prices> cache_;
};

}  // namespace nccl

RAILCC_NAMESPACE_END
