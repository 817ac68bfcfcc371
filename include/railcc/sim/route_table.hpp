// railcc/sim/route_table.hpp: every flow's path, built before time starts.
//
// A flow with a pinned path (FlowGraph::add_pinned: a schedule pass chose its links) takes
// it; the others are routed by the Router (ECMP hash on (src, dst, QP), or spraying). A
// missing endpoint or a flow with no live path is an InputError here, before anything is
// simulated. Local tasks have an empty path.
#pragma once

#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/fabric/routing.hpp"
#include "railcc/sim/flow_graph.hpp"
#include "railcc/sim/worker_threads.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

/// Which start-up a flow pays (SimConfig): an RDMA message's, an NVLink transfer's, or an
/// NVLS operation's (a flow into or out of an NVSwitch that reduces or multicasts).
enum class StartUp : std::uint8_t { rdma = 0, nvlink = 1, nvls = 2 };

class RouteTable {
  static constexpr ResourceIndex none = 0xffffffffu;

 public:
  /// Routes every flow of `graph`; a path's latency is its links' plus one `switch_hop`
  /// per network switch it crosses. With ECMP, a large graph's flows are routed on up to
  /// 4 threads (worker_threads.hpp), each with its own router over a share of the flows in order;
  /// what comes out is the same as on one (resources numbered by first use in flow order, the first
  /// failing flow's error). Spraying's pools are numbered as a router creates them, so
  /// one router routes every flow.
  RouteTable(const Fabric& fabric, const FlowGraph& graph, const RoutingOptions& routing,
             Picoseconds switch_hop)
      : router_(fabric, routing),
        offsets_(graph.size() + 1, 0),
        latency_(graph.size()),
        start_up_(graph.size(), 0) {
    const std::size_t n = graph.size();
    const unsigned threads =
        routing.mode == RoutingMode::ecmp && n >= parallel_flows ? worker_threads(n) : 1;
    if (threads <= 1) {
      route_range(fabric, graph, switch_hop, router_, 0, n, resources_);
    } else {
      // Share t routes flows [t n / T, (t + 1) n / T) into its own list of the router's
      // resource numbers; offsets_ holds where each flow's path ends within its share.
      std::vector<std::vector<ResourceIndex>> shares(threads);
      std::vector<std::exception_ptr> failed(threads);
      run_on_threads(threads, [&](unsigned t) {
        try {
          Router router(fabric, routing);
          route_range(fabric, graph, switch_hop, router, n * t / threads, n * (t + 1) / threads,
                      shares[t]);
        } catch (...) {
          failed[t] = std::current_exception();
        }
      });
      for (const std::exception_ptr& e : failed)
        if (e) std::rethrow_exception(e);
      std::size_t total = 0;
      for (const auto& share : shares) total += share.size();
      resources_.reserve(total);
      for (unsigned t = 0; t < threads; ++t) {
        const std::size_t base = resources_.size();
        resources_.insert(resources_.end(), shares[t].begin(), shares[t].end());
        shares[t] = {};
        for (std::size_t f = n * t / threads; f < n * (t + 1) / threads; ++f)
          offsets_[f + 1] += static_cast<std::uint32_t>(base);
      }
    }
    // Number the resources by first use, in flow order.
    std::vector<ResourceIndex> local_of(fabric.link_count(), none);
    for (ResourceIndex& r : resources_) {
      const ResourceIndex g = r;
      if (g >= local_of.size()) local_of.resize(std::size_t{g} + 1, none);  // a new pool
      if (local_of[g] == none) {
        local_of[g] = static_cast<ResourceIndex>(global_.size());
        global_.push_back(g);
        capacity_.push_back(router_.capacity(g));
      }
      r = local_of[g];
    }
  }

  /// The resources (links, or pools of parallel links) flow f crosses.
  [[nodiscard]] std::span<const ResourceIndex> path(FlowId f) const {
    return {resources_.data() + offsets_[f], resources_.data() + offsets_[f + 1]};
  }
  /// Where flow f's path starts among all flows' path entries (0 to entry_count()): the
  /// entry of its i-th resource is first_entry(f) + i.
  [[nodiscard]] std::uint32_t first_entry(FlowId f) const { return offsets_[f]; }
  [[nodiscard]] std::size_t entry_count() const { return resources_.size(); }
  /// From its last byte leaving to its delivery.
  [[nodiscard]] Picoseconds latency(FlowId f) const { return latency_[f]; }
  /// The start-up the flow pays: NVLink's when it stays inside one host's NVLink domain,
  /// NVLS's when it goes into or out of an NVSwitch, an RDMA message's otherwise.
  [[nodiscard]] StartUp start_up(FlowId f) const { return static_cast<StartUp>(start_up_[f]); }
  /// Resources some flow crosses, numbered 0 to resource_count() - 1 in order of first use.
  [[nodiscard]] std::size_t resource_count() const { return global_.size(); }
  /// Bytes per second a resource carries.
  [[nodiscard]] double capacity(ResourceIndex r) const { return capacity_[r]; }
  [[nodiscard]] bool is_pool(ResourceIndex r) const { return router_.is_pool(global_[r]); }
  /// The fabric link a resource that is not a pool stands for.
  [[nodiscard]] LinkIndex link(ResourceIndex r) const { return global_[r]; }
  [[nodiscard]] std::span<const LinkIndex> pool_links(ResourceIndex r) const {
    return router_.pool_links(global_[r]);
  }

 private:
  /// Graphs with fewer flows are routed on one thread (a thread's start costs more).
  static constexpr std::size_t parallel_flows = 1 << 16;

  /// Routes flows [begin, end) with `router`, appending their resources (the router's
  /// numbers) to `out`; offsets_[f + 1] is where flow f's path ends in `out`.
  void route_range(const Fabric& fabric, const FlowGraph& graph, Picoseconds switch_hop,
                   Router& router, std::size_t begin, std::size_t end,
                   std::vector<ResourceIndex>& out) {
    for (std::size_t i = begin; i < end; ++i) {
      const auto f = static_cast<FlowId>(i);
      const auto& spec = graph.flow(f);
      if (graph.is_task(f)) {
        if (spec.src >= fabric.endpoint_count()) {
          throw InputError("task " + std::to_string(f) + " runs on endpoint " +
                           std::to_string(spec.src) + ", but the fabric has " +
                           std::to_string(fabric.endpoint_count()));
        }
        offsets_[f + 1] = static_cast<std::uint32_t>(out.size());
        continue;
      }
      const FlowKey key{spec.src, spec.dst, spec.qp};
      const auto pinned = graph.pinned_path(f);
      const PathInfo info =
          pinned.empty() ? router.route(key, out) : router.pinned(key, pinned, out);
      offsets_[f + 1] = static_cast<std::uint32_t>(out.size());
      latency_[f] = info.link_latency + switch_hop * static_cast<std::int64_t>(info.switch_hops);
      const bool nvswitch = fabric.kind(spec.src) == FabricNodeKind::nvswitch ||
                            fabric.kind(spec.dst) == FabricNodeKind::nvswitch;
      start_up_[f] = static_cast<std::uint8_t>(nvswitch      ? StartUp::nvls
                                               : info.nvlink ? StartUp::nvlink
                                                             : StartUp::rdma);
    }
  }

  Router router_;
  std::vector<std::uint32_t>
      offsets_;  // CSR: flow f crosses resources_[offsets_[f], offsets_[f+1])
  std::vector<ResourceIndex> resources_;
  // Numbered by first use: what the simulation keeps per resource grows with the
  // resources its flows cross, not with the fabric (a step of a million-GPU collective
  // touches a few million of its ten million links, and many steps are simulated).
  std::vector<ResourceIndex> global_;  // resource -> the router's link or pool index
  std::vector<double> capacity_;       // resource -> bytes per second, looked up once
  std::vector<Picoseconds> latency_;
  std::vector<std::uint8_t> start_up_;  // StartUp
};

RAILCC_NAMESPACE_END
