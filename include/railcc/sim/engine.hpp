// railcc/sim/engine.hpp: the flow-level discrete-event simulator: the event loop.
// Its parts: routes built up front (route_table.hpp, pinned paths accepted), the max-min
// rates kept incrementally (rate_state.hpp), and what the links carried (link_stats.hpp).
//
// Flows share links by max-min fairness, recomputed whenever a flow starts or ends
// (every event at the same picosecond is handled as one batch, so a collective step whose
// flows start together costs one recomputation, not one per flow). A flow becomes active
// `message_overhead` after it is ready (software and NIC start-up), transmits at its fair
// rate, and is delivered its path latency after its last byte left: the sum of its links'
// latencies plus one `switch_hop` per network switch. Its dependents become ready then.
// Flows of one connection (the same source GPU, destination GPU and QP) transmit one at a
// time in the order they became active (at one picosecond, by flow id), as an RDMA QP or
// an NCCL connection's slots carry their messages: a flow whose connection is sending
// waits for the one before it to send its last byte. Sharing the link instead would finish
// a backlog of messages together, late, where the connection delivers the first of them
// first, and a ring whose hops drift apart would slow down the more it drifts (125 colossus
// hosts, mixed radix in 16 chunks: 12.8 ms shared, 6.7 ms in order; docs/simulator.md).
// NVLS operations (a GPU to or from its NVSwitch) are loads and stores, not a queue: they
// share.
//
// What it does not model: packets, queues, loss, PFC pause, congestion-control dynamics
// (DCQCN converging to the fair share is assumed instantaneous), NIC/PCIe contention inside
// a host beyond the links the fabric lists. docs/simulator.md says more.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/fabric/routing.hpp"
#include "railcc/sim/connection_queues.hpp"
#include "railcc/sim/flow_graph.hpp"
#include "railcc/sim/link_stats.hpp"
#include "railcc/sim/rate_state.hpp"
#include "railcc/sim/route_table.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

/// What a collective pays once before its first operation (launch and protocol set-up):
/// NCCL's per-collective base latency, 6.6 us for its LL protocol, up to 14 us for the
/// others (tuning.cc, docs/facts.md section 3) [pub]. The simulated backend and the cost
/// model add it to a collective's time.
inline constexpr Picoseconds nccl_collective_base = Picoseconds::ns(6600);

struct SimConfig {
  RoutingOptions routing{};
  /// Start-up of an RDMA message: a 32 B RDMA write takes ~0.8 us one way back to back
  /// (perftest, docs/facts.md section 3) [pub].
  Picoseconds message_overhead = Picoseconds::ns(800);
  /// Start-up of an NVLink transfer: NCCL's per-step NVLink latency, LL protocol [pub].
  Picoseconds nvlink_message_overhead = Picoseconds::ns(600);
  /// Start-up of an NVLS operation (a GPU's data into an NVSwitch that reduces it, or the
  /// switch's multicast out): NCCL runs NVLS on its Simple protocol only, whose per-step
  /// NVLink latency is 3.4 us (docs/facts.md section 3) [pub].
  Picoseconds nvls_message_overhead = Picoseconds::ns(3400);
  /// Cut-through switch traversal, idle: 0.3-0.8 us [guess], 0.5 by default.
  Picoseconds switch_hop = Picoseconds::ns(500);
  /// Re-solve every active flow at every event instead of only those whose rate can
  /// change: the reference the partial re-solve is tested against.
  bool exact_rate_solves = false;
  /// Record, after every batch of events, the throughput of each link class (see
  /// SimResult::timeline): what the trace draws as counters.
  bool record_timeline = false;
  /// Fill SimResult's per-link bytes and link-class summaries: a pass over every link of
  /// the fabric, which a caller that only wants times (steps mode simulating a step) skips.
  bool link_statistics = true;
};

/// The same three instants for a flow and a local task: `ready` is always when the last
/// dependency was delivered, before any delay.
struct FlowTiming {
  Picoseconds ready;  ///< its last dependency delivered (0 with none)
  Picoseconds
      start;  ///< a flow's first byte leaves (ready + delay + start-up); a task starts (ready)
  Picoseconds delivered;  ///< a flow's last byte arrived; a task is done (ready + delay)
};

struct SimResult {
  Picoseconds makespan;  ///< last delivery
  std::vector<FlowTiming> flows;
  std::vector<double> link_bytes;  ///< per link (empty without SimConfig::link_statistics)
  double bytes_sent = 0;
  double bytes_delivered = 0;
  /// The first byte of any flow left, and the last byte of any flow left (both zero with
  /// no flows): for a step whose flows start together, the stretch its bottleneck is busy,
  /// which the makespan exceeds by start-ups and path latency.
  Picoseconds first_byte_sent;
  Picoseconds last_byte_sent;
  std::vector<LinkClassSummary> link_classes;
  std::size_t rate_solves = 0;
  std::size_t flows_solved = 0;  ///< summed over solves: the simulator's main cost
  std::size_t events = 0;

  /// With SimConfig::record_timeline: the times at which link-class throughput changed,
  /// and after each, the bytes/s crossing each class (link_classes.size() values per time).
  std::vector<Picoseconds> timeline_times;
  std::vector<double> timeline_bytes_per_second;
  /// Summed capacity of each link class, bytes/s (to turn the timeline into utilization).
  std::vector<double> class_capacity;
};

/// What happens to a flow at an event. At equal times starts come first, then finishes,
/// then deliveries (the order their numbers give), each kind by flow id. Finishes are kept apart,
/// one per active flow (FinishQueue); the event heap holds starts and deliveries.
enum class EventKind : std::uint32_t { start = 0, finish = 1, deliver = 2 };

/// One start or delivery of the loop.
struct SimEvent {
  std::int64_t time;
  FlowId flow;
  EventKind kind;

  static SimEvent of(std::int64_t time, FlowId flow, EventKind kind) { return {time, flow, kind}; }
  bool operator>(const SimEvent& o) const {
    if (time != o.time) return time > o.time;
    return kind != o.kind ? kind > o.kind : flow > o.flow;
  }
};

/// The start-up overhead `config` charges a flow of this kind.
inline Picoseconds start_up_of(StartUp kind, const SimConfig& config) {
  switch (kind) {
    case StartUp::nvlink: return config.nvlink_message_overhead;
    case StartUp::nvls: return config.nvls_message_overhead;
    case StartUp::rdma: break;
  }
  return config.message_overhead;
}

namespace detail::sim {

/// Each active flow's pending finish, one entry per flow: a rate change moves the entry
/// instead of leaving a stale one behind, so the queue stays the size of the active set
/// however often rates change (an all-to-all over 192 GPUs with 8 QPs re-solved its rates
/// often enough to pile 10M stale finishes into the event heap). Ties go by flow id.
class FinishQueue {
 public:
  explicit FinishQueue(std::size_t flows) : at_(flows, none) {}
  [[nodiscard]] bool empty() const { return heap_.empty(); }
  [[nodiscard]] std::int64_t top_time() const { return heap_.front().time; }
  [[nodiscard]] FlowId top_flow() const { return heap_.front().flow; }
  /// Flow f finishes at `time` (inserted, or moved from its previous time).
  void set(FlowId f, std::int64_t time) {
    if (at_[f] == none) {
      at_[f] = static_cast<std::uint32_t>(heap_.size());
      heap_.push_back({time, f});
      up(at_[f]);
      return;
    }
    const std::uint32_t i = at_[f];
    const bool earlier = time < heap_[i].time;
    heap_[i].time = time;
    if (earlier) {
      up(i);
    } else {
      down(i);
    }
  }
  void pop() {
    at_[heap_.front().flow] = none;
    heap_.front() = heap_.back();
    heap_.pop_back();
    if (!heap_.empty()) {
      at_[heap_.front().flow] = 0;
      down(0);
    }
  }

 private:
  static constexpr std::uint32_t none = 0xffffffffu;
  struct Entry {
    std::int64_t time;
    FlowId flow;
    bool operator<(const Entry& o) const { return time != o.time ? time < o.time : flow < o.flow; }
  };
  void place(std::uint32_t i, const Entry& e) {
    heap_[i] = e;
    at_[e.flow] = i;
  }
  void up(std::uint32_t i) {
    const Entry e = heap_[i];
    while (i > 0) {
      const std::uint32_t parent = (i - 1) / 2;
      if (!(e < heap_[parent])) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, e);
  }
  void down(std::uint32_t i) {
    const Entry e = heap_[i];
    const auto n = static_cast<std::uint32_t>(heap_.size());
    for (;;) {
      std::uint32_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap_[child + 1] < heap_[child]) ++child;
      if (!(heap_[child] < e)) break;
      place(i, heap_[child]);
      i = child;
    }
    place(i, e);
  }
  std::vector<Entry> heap_;
  std::vector<std::uint32_t> at_;  // flow -> its index in heap_, or none
};

/// The event loop of one simulation: flows become ready when their dependencies are
/// delivered, start after their start-up overhead, share links at max-min rates while
/// active, and are delivered their path latency after their last byte left.
class EventLoop {
 public:
  EventLoop(const Fabric& fabric, const FlowGraph& graph, const SimConfig& config)
      : fabric_(fabric),
        graph_(graph),
        config_(config),
        adj_(graph.adjacency()),  // validates the DAG
        routes_(fabric, graph, config.routing, config.switch_hop),
        rates_(routes_, graph.size(), resource_classes(fabric, routes_), link_class_count(fabric)),
        pending_(adj_.predecessors),
        resource_bytes_(routes_.resource_count(), 0.0),
        finishes_(graph.size()),
        connections_(fabric, graph) {
    result_.flows.assign(graph.size(), {});
    result_.first_byte_sent = Picoseconds::max();  // until a flow starts
  }

  SimResult run() {
    for (FlowId f = 0; f < graph_.size(); ++f) {
      if (pending_[f] == 0) ready(f, Picoseconds{});
    }
    while (!events_.empty() || !finishes_.empty()) {
      const std::int64_t now = events_.empty() ? finishes_.top_time()
                               : finishes_.empty()
                                   ? events_.top().time
                                   : std::min(events_.top().time, finishes_.top_time());
      bool changed = false;
      // Everything at `now` in EventKind order: starts, then finishes, then deliveries
      // (a delivery may make a start due now, which then goes before what is left).
      for (;;) {
        const bool event_now = !events_.empty() && events_.top().time == now;
        const bool finish_now = !finishes_.empty() && finishes_.top_time() == now;
        if (!event_now && !finish_now) break;
        ++result_.events;
        if (finish_now && (!event_now || events_.top().kind != EventKind::start)) {
          const FlowId f = finishes_.top_flow();
          finishes_.pop();
          on_finish(f, now);
          changed = true;
          continue;
        }
        const SimEvent e = events_.top();
        events_.pop();
        if (e.kind == EventKind::start) {
          on_start(e.flow, now);
          changed = true;
        } else {
          on_deliver(e.flow, now);
        }
      }
      if (!changed || rates_.active_count() == 0) {
        rates_.idle(changed);
        if (changed) sample(now);
        continue;
      }
      ++result_.rate_solves;
      result_.flows_solved +=
          rates_.resolve(now, config_.exact_rate_solves, graph_,
                         [&](FlowId f, std::int64_t in) { finishes_.set(f, now + in); });
      sample(now);
    }
    if (result_.first_byte_sent == Picoseconds::max()) result_.first_byte_sent = Picoseconds{};
    if (config_.link_statistics) {
      result_.link_bytes = link_bytes_of(fabric_, routes_, resource_bytes_);
      LinkClassStats stats = summarize_link_classes(fabric_, result_.link_bytes, result_.makespan);
      result_.link_classes = std::move(stats.classes);
      result_.class_capacity = std::move(stats.capacity);
    }
    return std::move(result_);
  }

 private:
  /// Flow f's dependencies were delivered at `at`.
  void ready(FlowId f, Picoseconds at) {
    if (graph_.is_task(f)) {
      // Local work: it starts when ready and is done `delay` later.
      result_.flows[f].ready = at;
      result_.flows[f].start = at;
      events_.push(SimEvent::of((at + graph_.flow(f).delay).count(), f, EventKind::deliver));
      return;
    }
    result_.flows[f].ready = at;
    const Picoseconds overhead = start_up_of(routes_.start_up(f), config_);
    events_.push(SimEvent::of((at + graph_.flow(f).delay + overhead).count(), f, EventKind::start));
  }

  void on_start(FlowId f, std::int64_t now) {
    // A connection sends one flow at a time: behind the one sending, wait for it.
    if (connections_.try_send(f)) transmit(f, now);
  }

  /// f's first byte leaves now.
  void transmit(FlowId f, std::int64_t now) {
    result_.flows[f].start = Picoseconds::ps(now);
    result_.first_byte_sent = std::min(result_.first_byte_sent, Picoseconds::ps(now));
    const auto bytes = static_cast<double>(graph_.flow(f).size.count());
    result_.bytes_sent += bytes;
    rates_.start(f, now, bytes);
  }

  void on_finish(FlowId f, std::int64_t now) {
    result_.last_byte_sent = std::max(result_.last_byte_sent, Picoseconds::ps(now));
    rates_.finish(f, static_cast<double>(graph_.flow(f).size.count()), resource_bytes_);
    events_.push(SimEvent::of(now + routes_.latency(f).count(), f, EventKind::deliver));
    // The connection's next flow, if one waits, sends now.
    const FlowId next = connections_.finished(f);
    if (next != ConnectionQueues::none) transmit(next, now);
  }

  void on_deliver(FlowId f, std::int64_t now) {
    result_.flows[f].delivered = Picoseconds::ps(now);
    result_.bytes_delivered += static_cast<double>(graph_.flow(f).size.count());
    result_.makespan = std::max(result_.makespan, Picoseconds::ps(now));
    for (std::uint32_t i = adj_.offsets[f]; i < adj_.offsets[f + 1]; ++i) {
      const FlowId s = adj_.successors[i];
      if (--pending_[s] == 0) ready(s, Picoseconds::ps(now));
    }
  }

  void sample(std::int64_t now) {
    if (!config_.record_timeline) return;
    result_.timeline_times.push_back(Picoseconds::ps(now));
    for (double v : rates_.class_load())
      result_.timeline_bytes_per_second.push_back(std::max(0.0, v));
  }

  const Fabric& fabric_;
  const FlowGraph& graph_;
  const SimConfig& config_;
  const FlowGraph::Adjacency adj_;
  RouteTable routes_;
  RateState rates_;
  std::vector<std::uint32_t> pending_;  // dependencies not delivered yet
  std::vector<double> resource_bytes_;
  std::priority_queue<SimEvent, std::vector<SimEvent>, std::greater<>>
      events_;  // starts, deliveries
  FinishQueue finishes_;
  ConnectionQueues connections_;  // each connection's flows, one sending at a time
  SimResult result_;
};

}  // namespace detail::sim

/// Runs the flow graph on the fabric. Throws InputError before simulating anything when a
/// flow names a missing endpoint, has no live path, or the dependencies have a cycle.
inline SimResult simulate(const Fabric& fabric, const FlowGraph& graph,
                          const SimConfig& config = {}) {
  return detail::sim::EventLoop(fabric, graph, config).run();
}

RAILCC_NAMESPACE_END
