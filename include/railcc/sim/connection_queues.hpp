// railcc/sim/connection_queues.hpp: the flows of one connection (source GPU, destination
// GPU, QP) send one at a time, in the order they became active (engine.hpp says why).
//
// Each flow's connection is numbered once, when the loop is built, so starting and
// finishing a flow costs an array look-up and no allocation: a map from connection to a
// queue, filled while the loop runs, allocated a queue per connection that ever sent, and
// at 1,000,000 GPUs its look-ups and allocations took 17% of an unscheduled run.
// Waiting flows form one intrusive list per connection (a flow waits at most once).
#pragma once

#include <cstdint>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/fabric/routing.hpp"
#include "railcc/sim/flow_graph.hpp"

RAILCC_NAMESPACE_BEGIN

namespace detail::sim {

class ConnectionQueues {
 public:
  static constexpr std::uint32_t none = 0xffffffffu;

  ConnectionQueues(const Fabric& fabric, const FlowGraph& graph)
      : connection_(graph.size(), none), next_(graph.size(), none) {
    // Number the connections with an open-addressing table sized to the flows that queue
    // (a power of two, at most half full), dropped once every flow has its number.
    std::size_t queued = 0;
    for (FlowId f = 0; f < graph.size(); ++f) queued += queues(fabric, graph.flow(f)) ? 1 : 0;
    if (queued == 0) return;
    std::size_t slots = 16;
    while (slots < 2 * queued) slots *= 2;
    struct Slot {
      NodeIndex src = no_node;
      NodeIndex dst = no_node;
      std::uint32_t qp = 0;
      std::uint32_t connection = none;
    };
    std::vector<Slot> table(slots);
    std::uint32_t count = 0;
    for (FlowId f = 0; f < graph.size(); ++f) {
      const FlowSpec& s = graph.flow(f);
      if (!queues(fabric, s)) continue;
      std::size_t i =
          fmix64((std::uint64_t{s.src} << 32 | s.dst) ^ fmix64(std::uint64_t{s.qp} + 1)) &
          (slots - 1);
      while (table[i].connection != none &&
             !(table[i].src == s.src && table[i].dst == s.dst && table[i].qp == s.qp))
        i = (i + 1) & (slots - 1);
      if (table[i].connection == none) table[i] = {s.src, s.dst, s.qp, count++};
      connection_[f] = table[i].connection;
    }
    head_.assign(count, none);
    tail_.assign(count, none);
    sending_.assign(count, 0);
  }

  /// Whether flows between these ends queue: a flow from one GPU to another. NVLS
  /// operations (a GPU to or from its NVSwitch) are loads and stores, and share.
  [[nodiscard]] static bool queues(const Fabric& fabric, const FlowSpec& s) {
    return s.src != s.dst && s.src < fabric.node_count() && s.dst < fabric.node_count() &&
           fabric.kind(s.src) == FabricNodeKind::endpoint &&
           fabric.kind(s.dst) == FabricNodeKind::endpoint;
  }

  /// Flow f became active: true when it may send now (its connection was idle, or it has
  /// none); otherwise it waits behind the flows before it.
  bool try_send(FlowId f) {
    const std::uint32_t c = connection_[f];
    if (c == none) return true;
    if (!sending_[c]) {
      sending_[c] = 1;
      return true;
    }
    if (tail_[c] == none) {
      head_[c] = f;
    } else {
      next_[tail_[c]] = f;
    }
    tail_[c] = f;
    return false;
  }

  /// Flow f sent its last byte: the flow of its connection that sends next, or none.
  FlowId finished(FlowId f) {
    const std::uint32_t c = connection_[f];
    if (c == none) return none;
    const FlowId next = head_[c];
    if (next == none) {
      sending_[c] = 0;
      return none;
    }
    head_[c] = next_[next];
    if (head_[c] == none) tail_[c] = none;
    return next;
  }

 private:
  std::vector<std::uint32_t> connection_;  // flow -> its connection, or none
  std::vector<FlowId> next_;               // flow -> the flow waiting behind it
  std::vector<FlowId> head_;               // connection -> first waiting flow
  std::vector<FlowId> tail_;               // connection -> last waiting flow
  std::vector<std::uint8_t> sending_;      // connection -> a flow of it is sending
};

}  // namespace detail::sim

RAILCC_NAMESPACE_END
