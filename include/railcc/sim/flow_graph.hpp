// railcc/sim/flow_graph.hpp: the input of a simulation: flows and their dependencies.
//
// A flow moves `size` bytes from one endpoint to another. It starts when every flow it
// depends on has been delivered, plus its own `delay` (compute, for example a local
// reduction at HBM speed), plus the per-message overhead of the simulator's config.
// Flows are stored flat (no object per dependency) so a step of a collective over 100k
// GPUs stays a few arrays.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

using FlowId = std::uint32_t;

struct FlowSpec {
  NodeIndex src = no_node;
  NodeIndex dst = no_node;
  Bytes size;
  std::uint32_t qp = 0;  ///< the connection's QP: ECMP entropy
  Picoseconds delay;     ///< after the last dependency is delivered
};

/// Local work on one endpoint (a reduction or copy in HBM): a node of the dependency DAG
/// that takes `duration` and moves nothing through the network. Stored as a flow with
/// src == dst, size 0 and `delay` = duration.
inline FlowSpec local_task(NodeIndex at, Picoseconds duration) {
  return FlowSpec{at, at, Bytes{}, 0, duration};
}

class FlowGraph {
 public:
  FlowId add(const FlowSpec& spec) {
    if (flows_.size() >= 0xfffffffeu) throw InputError("flow graph: too many flows");
    flows_.push_back(spec);
    pinned_offsets_.push_back(pinned_offsets_.empty() ? 0 : pinned_offsets_.back());
    return static_cast<FlowId>(flows_.size() - 1);
  }
  /// A flow whose path the caller chooses (consecutive links from src to dst).
  FlowId add_pinned(const FlowSpec& spec, std::span<const LinkIndex> path) {
    const FlowId id = add(spec);
    pinned_links_.insert(pinned_links_.end(), path.begin(), path.end());
    pinned_offsets_.back() = static_cast<std::uint32_t>(pinned_links_.size());
    return id;
  }
  /// The flow's QP (its ECMP entropy): schedule passes choose it once the graph is built.
  void set_qp(FlowId f, std::uint32_t qp) { flows_.at(f).qp = qp; }
  /// A flow's bytes (a schedule pass that shares a transfer's bytes among its QPs).
  void set_size(FlowId f, Bytes size) { flows_.at(f).size = size; }
  /// `later` starts only after `earlier` is delivered.
  void depends_on(FlowId later, FlowId earlier) {
    if (later >= flows_.size() || earlier >= flows_.size()) {
      throw InputError("flow graph: dependency " + std::to_string(earlier) + " -> " +
                       std::to_string(later) + " names a flow that does not exist");
    }
    if (later == earlier)
      throw InputError("flow graph: flow " + std::to_string(later) + " depends on itself");
    edges_.push_back({earlier, later});
  }

  [[nodiscard]] std::size_t size() const { return flows_.size(); }
  /// A local task (see local_task): delivered `delay` after it is ready.
  [[nodiscard]] bool is_task(FlowId f) const { return flows_[f].src == flows_[f].dst; }
  [[nodiscard]] const FlowSpec& flow(FlowId f) const { return flows_[f]; }
  [[nodiscard]] std::span<const LinkIndex> pinned_path(FlowId f) const {
    const std::uint32_t begin = f == 0 ? 0 : pinned_offsets_[f - 1];
    return {pinned_links_.data() + begin, pinned_links_.data() + pinned_offsets_[f]};
  }
  [[nodiscard]] std::size_t dependency_count() const { return edges_.size(); }
  [[nodiscard]] Bytes total_bytes() const {
    Bytes b;
    for (const auto& f : flows_) b += f.size;
    return b;
  }

  /// Successors in CSR form, and each flow's number of predecessors. Throws InputError
  /// naming a flow on a cycle when the dependencies are not a DAG.
  struct Adjacency {
    std::vector<std::uint32_t> offsets;
    std::vector<FlowId> successors;
    std::vector<std::uint32_t> predecessors;
  };
  [[nodiscard]] Adjacency adjacency() const {
    Adjacency a;
    const std::size_t n = flows_.size();
    a.offsets.assign(n + 1, 0);
    a.predecessors.assign(n, 0);
    for (const auto& e : edges_) {
      a.offsets[e.from + 1]++;
      a.predecessors[e.to]++;
    }
    for (std::size_t i = 0; i < n; ++i) a.offsets[i + 1] += a.offsets[i];
    a.successors.resize(edges_.size());
    std::vector<std::uint32_t> fill(a.offsets.begin(), a.offsets.end() - 1);
    for (const auto& e : edges_) a.successors[fill[e.from]++] = e.to;
    // Kahn's algorithm: whatever is left unvisited lies on or behind a cycle.
    std::vector<std::uint32_t> pending = a.predecessors;
    std::vector<FlowId> stack;
    for (FlowId f = 0; f < n; ++f) {
      if (pending[f] == 0) stack.push_back(f);
    }
    std::size_t visited = 0;
    while (!stack.empty()) {
      const FlowId f = stack.back();
      stack.pop_back();
      ++visited;
      for (std::uint32_t i = a.offsets[f]; i < a.offsets[f + 1]; ++i) {
        if (--pending[a.successors[i]] == 0) stack.push_back(a.successors[i]);
      }
    }
    if (visited != n) {
      // Walk predecessors among unvisited flows until one repeats: it is on a cycle.
      FlowId f = 0;
      while (pending[f] == 0) ++f;
      std::vector<char> seen(n, 0);
      while (!seen[f]) {
        seen[f] = 1;
        for (const auto& e : edges_) {
          if (e.to == f && pending[e.from] != 0) {
            f = e.from;
            break;
          }
        }
      }
      throw InputError("flow graph: the dependencies have a cycle through flow " +
                       std::to_string(f) + " (" + std::to_string(flows_[f].src) + " -> " +
                       std::to_string(flows_[f].dst) + ")");
    }
    return a;
  }

 private:
  struct Edge {
    FlowId from;
    FlowId to;
  };
  std::vector<FlowSpec> flows_;
  std::vector<Edge> edges_;
  std::vector<std::uint32_t> pinned_offsets_;
  std::vector<LinkIndex> pinned_links_;
};

RAILCC_NAMESPACE_END
