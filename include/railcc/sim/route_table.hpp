// railcc/sim/route_table.hpp: every flow's path, built before time starts.
//
// A flow with a pinned path (FlowGraph::add_pinned: a schedule pass chose its links) takes
// it; the others are routed by the Router (ECMP hash on (src, dst, QP), or spraying). A
// missing endpoint or a flow with no live path is an InputError here, before anything is
// simulated. Local tasks have an empty path.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/fabric/routing.hpp"
#include "railcc/sim/flow_graph.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

/// Which start-up a flow pays (SimConfig): an RDMA message's, an NVLink transfer's, or an
/// NVLS operation's (a flow into or out of an NVSwitch that reduces or multicasts).
enum class StartUp : std::uint8_t { rdma = 0, nvlink = 1, nvls = 2 };

class RouteTable {
  static constexpr ResourceIndex none = 0xffffffffu;

 public:
  /// Routes every flow of `graph`; a path's latency is its links' plus one `switch_hop`
  /// per network switch it crosses.
  RouteTable(const Fabric& fabric, const FlowGraph& graph, const RoutingOptions& routing,
             Picoseconds switch_hop)
      : router_(fabric, routing),
        offsets_(graph.size() + 1, 0),
        latency_(graph.size()),
        start_up_(graph.size(), 0) {
    std::vector<ResourceIndex> local_of(fabric.link_count(), none);
    for (FlowId f = 0; f < graph.size(); ++f) {
      const auto& spec = graph.flow(f);
      if (graph.is_task(f)) {
        if (spec.src >= fabric.endpoint_count()) {
          throw InputError("task " + std::to_string(f) + " runs on endpoint " +
                           std::to_string(spec.src) + ", but the fabric has " +
                           std::to_string(fabric.endpoint_count()));
        }
        offsets_[f + 1] = static_cast<std::uint32_t>(resources_.size());
        continue;
      }
      const FlowKey key{spec.src, spec.dst, spec.qp};
      const auto pinned = graph.pinned_path(f);
      const std::size_t first = resources_.size();
      const PathInfo info =
          pinned.empty() ? router_.route(key, resources_) : router_.pinned(key, pinned, resources_);
      for (std::size_t i = first; i < resources_.size(); ++i) {
        const ResourceIndex g = resources_[i];
        if (g >= local_of.size()) local_of.resize(std::size_t{g} + 1, none);  // a new pool
        if (local_of[g] == none) {
          local_of[g] = static_cast<ResourceIndex>(global_.size());
          global_.push_back(g);
          capacity_.push_back(router_.capacity(g));
        }
        resources_[i] = local_of[g];
      }
      offsets_[f + 1] = static_cast<std::uint32_t>(resources_.size());
      latency_[f] = info.link_latency + switch_hop * static_cast<std::int64_t>(info.switch_hops);
      const bool nvswitch = fabric.kind(spec.src) == FabricNodeKind::nvswitch ||
                            fabric.kind(spec.dst) == FabricNodeKind::nvswitch;
      start_up_[f] = static_cast<std::uint8_t>(nvswitch      ? StartUp::nvls
                                               : info.nvlink ? StartUp::nvlink
                                                             : StartUp::rdma);
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
