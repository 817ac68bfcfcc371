// railcc/sim/engine.hpp: the flow-level discrete-event simulator.
//
// Flows share links by max-min fairness, recomputed whenever a flow starts or ends
// (every event at the same picosecond is handled as one batch, so a collective step whose
// flows start together costs one recomputation, not one per flow). A flow becomes active
// `message_overhead` after it is ready (software and NIC start-up), transmits at its fair
// rate, and is delivered its path latency after its last byte left: the sum of its links'
// latencies plus one `switch_hop` per network switch. Its dependents become ready then.
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
#include "railcc/sim/flow_graph.hpp"
#include "railcc/sim/max_min.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

struct SimConfig {
  RoutingOptions routing;
  /// Start-up of an RDMA message: a 32 B RDMA write takes ~0.8 us one way back to back
  /// (perftest, docs/facts.md section 3) [pub].
  Picoseconds message_overhead = Picoseconds::ns(800);
  /// Start-up of an NVLink transfer: NCCL's per-step NVLink latency, LL protocol [pub].
  Picoseconds nvlink_message_overhead = Picoseconds::ns(600);
  /// Cut-through switch traversal, idle: 0.3-0.8 us [guess], 0.5 by default.
  Picoseconds switch_hop = Picoseconds::ns(500);
  /// Re-solve every active flow at every event instead of only those whose rate can
  /// change: the reference the partial re-solve is tested against.
  bool exact_rate_solves = false;
  /// Record, after every batch of events, the throughput of each link class (see
  /// SimResult::timeline): what the trace draws as counters.
  bool record_timeline = false;
};

struct FlowTiming {
  Picoseconds ready;      ///< dependencies delivered (+ delay)
  Picoseconds start;      ///< first byte leaves (ready + overhead)
  Picoseconds delivered;  ///< last byte arrived
};

/// Link statistics of one class of links (a tier and a direction).
struct LinkClassSummary {
  int level = 0;    ///< 0 NVLink, 1 NIC-leaf, 2 leaf-spine, 3 spine-core, ...
  bool up = false;  ///< towards the higher tier
  std::size_t links = 0;
  std::size_t used_links = 0;  ///< links that carried any byte
  double bytes = 0;
  double mean_utilization = 0;  ///< bytes / (capacity x makespan), over all links of the class
  double max_utilization = 0;
  std::vector<LinkIndex> hottest;  ///< up to 5, most loaded first
};

struct SimResult {
  Picoseconds makespan;  ///< last delivery
  std::vector<FlowTiming> flows;
  std::vector<double> link_bytes;  ///< per link
  double bytes_sent = 0;
  double bytes_delivered = 0;
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

namespace detail::sim {

constexpr std::uint32_t kind_start = 0;
constexpr std::uint32_t kind_finish = 1;
constexpr std::uint32_t kind_deliver = 2;

struct Event {
  std::int64_t time;
  std::uint32_t flow;
  std::uint32_t kind_version;  // kind in the top 2 bits, finish version below
  bool operator>(const Event& o) const {
    return time != o.time ? time > o.time : kind_version > o.kind_version;
  }
};

}  // namespace detail::sim

/// Runs the flow graph on the fabric. Throws InputError before simulating anything when a
/// flow names a missing endpoint, has no live path, or the dependencies have a cycle.
inline SimResult simulate(const Fabric& fabric, const FlowGraph& graph,
                          const SimConfig& config = {}) {
  using namespace detail::sim;
  const std::size_t n = graph.size();
  const auto adj = graph.adjacency();  // validates the DAG
  Router router(fabric, config.routing);

  // Route every flow up front: a missing path is an error before time starts.
  std::vector<std::uint32_t> path_offsets(n + 1, 0);
  std::vector<ResourceIndex> paths;
  std::vector<Picoseconds> latency(n);
  std::vector<std::uint8_t> on_nvlink(n, 0);
  for (FlowId f = 0; f < n; ++f) {
    const auto& spec = graph.flow(f);
    if (graph.is_task(f)) {
      if (spec.src >= fabric.endpoint_count()) {
        throw InputError("task " + std::to_string(f) + " runs on endpoint " +
                         std::to_string(spec.src) + ", but the fabric has " +
                         std::to_string(fabric.endpoint_count()));
      }
      path_offsets[f + 1] = static_cast<std::uint32_t>(paths.size());
      continue;
    }
    const FlowKey key{spec.src, spec.dst, spec.qp};
    const auto pinned = graph.pinned_path(f);
    const PathInfo info =
        pinned.empty() ? router.route(key, paths) : router.pinned(key, pinned, paths);
    path_offsets[f + 1] = static_cast<std::uint32_t>(paths.size());
    latency[f] =
        info.link_latency + config.switch_hop * static_cast<std::int64_t>(info.switch_hops);
    on_nvlink[f] = info.nvlink ? 1 : 0;
  }

  SimResult result;
  result.flows.assign(n, {});
  std::vector<double> resource_bytes(router.resource_count(), 0.0);
  std::vector<std::uint32_t> pending = adj.predecessors;
  std::vector<double> remaining(n, 0.0);
  std::vector<double> rate(n, 0.0);
  std::vector<std::uint32_t> version(n, 0);
  std::vector<std::uint8_t> is_active(n, 0);
  std::size_t active_count = 0;

  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  auto ready = [&](FlowId f, Picoseconds at) {
    if (graph.is_task(f)) {
      // Local work: it starts when ready and is done `delay` later.
      result.flows[f].ready = at;
      result.flows[f].start = at;
      events.push({(at + graph.flow(f).delay).count(), f, kind_deliver << 30});
      return;
    }
    const Picoseconds r = at + graph.flow(f).delay;
    result.flows[f].ready = r;
    const Picoseconds overhead =
        on_nvlink[f] ? config.nvlink_message_overhead : config.message_overhead;
    events.push({(r + overhead).count(), f, kind_start << 30});
  };
  for (FlowId f = 0; f < n; ++f) {
    if (pending[f] == 0) ready(f, Picoseconds{});
  }

  MaxMinSolver solver;
  constexpr double inf = std::numeric_limits<double>::infinity();
  // Incremental state: each resource's load from the active flows' current rates, the
  // active flows ordered by rate, and the flows that have no rate yet.
  std::vector<double> load(router.resource_count(), 0.0);
  std::vector<std::uint32_t> flows_on(router.resource_count(), 0);
  std::set<std::pair<double, FlowId>> by_rate;
  std::vector<FlowId> fresh;
  double keep_below = inf;
  std::vector<FlowId> solve_set;
  std::vector<std::uint32_t> solve_offsets;
  std::vector<std::uint32_t> solve_resources;
  std::vector<double> solve_rates;

  // A flow's progress is brought up to date only when its rate changes: between changes
  // it moves linearly, and its finish event already says when it ends.
  std::vector<std::int64_t> since(n, 0);
  auto progress = [&](FlowId f, std::int64_t now) {
    remaining[f] =
        std::max(0.0, remaining[f] - rate[f] * static_cast<double>(now - since[f]) * 1e-12);
    since[f] = now;
  };
  // Link class of every resource (a pool's links share one), for the timeline.
  const auto classes = static_cast<std::size_t>(fabric.tiers() + 1) * 2;
  std::vector<std::uint8_t> class_of(router.resource_count());
  for (ResourceIndex r = 0; r < router.resource_count(); ++r) {
    const auto& k = fabric.link(router.is_pool(r) ? router.pool_links(r).front() : r);
    class_of[r] = static_cast<std::uint8_t>(k.level * 2 + (k.up ? 1 : 0));
  }
  std::vector<double> class_load(classes, 0.0);
  auto add_load = [&](FlowId f, double x) {
    for (std::uint32_t i = path_offsets[f]; i < path_offsets[f + 1]; ++i) {
      load[paths[i]] += x;
      class_load[class_of[paths[i]]] += x;
    }
  };
  auto sample = [&](std::int64_t now) {
    if (!config.record_timeline) return;
    result.timeline_times.push_back(Picoseconds::ps(now));
    for (double v : class_load) result.timeline_bytes_per_second.push_back(std::max(0.0, v));
  };

  while (!events.empty()) {
    const std::int64_t now = events.top().time;
    bool changed = false;
    while (!events.empty() && events.top().time == now) {
      const Event e = events.top();
      events.pop();
      ++result.events;
      const std::uint32_t kind = e.kind_version >> 30;
      const FlowId f = e.flow;
      if (kind == kind_start) {
        result.flows[f].start = Picoseconds::ps(now);
        remaining[f] = static_cast<double>(graph.flow(f).size.count());
        rate[f] = 0;
        since[f] = now;
        result.bytes_sent += remaining[f];
        is_active[f] = 1;
        fresh.push_back(f);
        ++active_count;
        for (std::uint32_t i = path_offsets[f]; i < path_offsets[f + 1]; ++i) {
          const ResourceIndex r = paths[i];
          keep_below = std::min(keep_below, router.capacity(r) / ++flows_on[r]);
        }
        changed = true;
      } else if (kind == kind_finish) {
        if ((e.kind_version & 0x3fffffffu) != (version[f] & 0x3fffffffu) || !is_active[f]) continue;
        // Every byte crossed every resource of the path (the finish time was rounded up).
        const auto bytes = static_cast<double>(graph.flow(f).size.count());
        for (std::uint32_t i = path_offsets[f]; i < path_offsets[f + 1]; ++i) {
          resource_bytes[paths[i]] += bytes;
          --flows_on[paths[i]];
        }
        remaining[f] = 0;
        keep_below = std::min(keep_below, rate[f]);
        by_rate.erase({rate[f], f});
        add_load(f, -rate[f]);
        is_active[f] = 0;
        --active_count;
        events.push({now + latency[f].count(), f, kind_deliver << 30});
        changed = true;
      } else {
        result.flows[f].delivered = Picoseconds::ps(now);
        result.bytes_delivered += static_cast<double>(graph.flow(f).size.count());
        result.makespan = std::max(result.makespan, Picoseconds::ps(now));
        for (std::uint32_t i = adj.offsets[f]; i < adj.offsets[f + 1]; ++i) {
          const FlowId s = adj.successors[i];
          if (--pending[s] == 0) ready(s, Picoseconds::ps(now));
        }
      }
    }
    if (!changed || active_count == 0) {
      keep_below = inf;
      if (changed) {
        std::fill(class_load.begin(), class_load.end(), 0.0);  // idle: no rounding residue
        sample(now);
      }
      continue;
    }
    // Max-min rates. Flows frozen below `keep_below` in the last solution keep their
    // rates: departures only free capacity at levels at or above the departed flows'
    // rates, and a new flow cannot fill any resource on its path below capacity /
    // flows-on-it, so nothing below both can change. The others are re-solved against the
    // capacity the kept flows leave, so a solve costs what it re-solves, not the whole
    // active set.
    if (config.exact_rate_solves) keep_below = 0;
    solve_set.assign(fresh.begin(), fresh.end());
    fresh.clear();
    for (auto it = by_rate.lower_bound({keep_below, 0}); it != by_rate.end(); ++it) {
      solve_set.push_back(it->second);
    }
    keep_below = inf;
    solve_offsets.assign(1, 0);
    solve_resources.clear();
    for (FlowId f : solve_set) {
      if (rate[f] > 0) add_load(f, -rate[f]);
      solve_resources.insert(solve_resources.end(), paths.begin() + path_offsets[f],
                             paths.begin() + path_offsets[f + 1]);
      solve_offsets.push_back(static_cast<std::uint32_t>(solve_resources.size()));
    }
    solve_rates.assign(solve_set.size(), 0.0);
    const bool exact = config.exact_rate_solves;
    solver.solve(
        router.resource_count(), solve_offsets, solve_resources,
        [&](std::uint32_t r) { return exact ? router.capacity(r) : router.capacity(r) - load[r]; },
        solve_rates);
    ++result.rate_solves;
    result.flows_solved += solve_set.size();
    for (std::size_t i = 0; i < solve_set.size(); ++i) {
      const FlowId f = solve_set[i];
      const double x = solve_rates[i];
      add_load(f, x);
      if (x == rate[f]) continue;  // its finish event still holds
      if (!(x > 0)) {
        throw InputError("simulation: flow " + std::to_string(f) +
                         " got no bandwidth (a link on its path has none)");
      }
      progress(f, now);
      if (rate[f] > 0) by_rate.erase({rate[f], f});
      rate[f] = x;
      by_rate.insert({x, f});
      const double ps = std::ceil(remaining[f] / rate[f] * 1e12 - 1e-6);
      if (!(ps < static_cast<double>(Picoseconds::max().count() - now))) {
        // Integer picoseconds hold 106 days; a flow that ends later has a link on its path
        // far too slow for its size (or degraded to almost nothing).
        throw InputError("simulation: flow " + std::to_string(f) + " (" +
                         std::to_string(graph.flow(f).size.count()) + " bytes at " +
                         std::to_string(rate[f]) +
                         " B/s) would end more than 106 days into the simulation, past what "
                         "integer picoseconds hold: a link on its path is too slow for this size");
      }
      ++version[f];
      events.push({now + static_cast<std::int64_t>(std::max(0.0, ps)), f,
                   (kind_finish << 30) | (version[f] & 0x3fffffffu)});
    }
    sample(now);
  }

  // Per-link bytes: pools hand their bytes to their links in proportion to capacity.
  result.link_bytes.assign(fabric.link_count(), 0.0);
  for (ResourceIndex r = 0; r < router.resource_count(); ++r) {
    if (resource_bytes[r] == 0) continue;
    if (!router.is_pool(r)) {
      result.link_bytes[r] += resource_bytes[r];
      continue;
    }
    const double cap = router.capacity(r);
    for (LinkIndex l : router.pool_links(r)) {
      result.link_bytes[l] +=
          resource_bytes[r] * fabric.link(l).usable().in_bytes_per_second() / cap;
    }
  }

  // Summaries per (level, direction).
  const double seconds = result.makespan.in_seconds();
  const int levels = fabric.tiers() + 1;
  result.link_classes.resize(static_cast<std::size_t>(levels) * 2);
  for (int lv = 0; lv < levels; ++lv) {
    for (int up = 0; up < 2; ++up) {
      auto& c = result.link_classes[static_cast<std::size_t>(lv * 2 + up)];
      c.level = lv;
      c.up = up == 1;
    }
  }
  std::vector<std::vector<std::pair<double, LinkIndex>>> top(result.link_classes.size());
  result.class_capacity.assign(result.link_classes.size(), 0.0);
  for (LinkIndex l = 0; l < fabric.link_count(); ++l) {
    const auto& k = fabric.link(l);
    result.class_capacity[static_cast<std::size_t>(k.level * 2 + (k.up ? 1 : 0))] +=
        k.usable().in_bytes_per_second();
    auto& c = result.link_classes[static_cast<std::size_t>(k.level * 2 + (k.up ? 1 : 0))];
    const double util =
        seconds > 0 ? result.link_bytes[l] / (k.capacity.in_bytes_per_second() * seconds) : 0;
    ++c.links;
    c.bytes += result.link_bytes[l];
    c.mean_utilization += util;
    c.max_utilization = std::max(c.max_utilization, util);
    if (result.link_bytes[l] > 0) ++c.used_links;
    auto& t = top[static_cast<std::size_t>(k.level * 2 + (k.up ? 1 : 0))];
    t.emplace_back(util, l);
    if (t.size() > 64) {
      std::nth_element(t.begin(), t.begin() + 5, t.end(), std::greater<>());
      t.resize(5);
    }
  }
  for (std::size_t i = 0; i < result.link_classes.size(); ++i) {
    auto& c = result.link_classes[i];
    if (c.links > 0) c.mean_utilization /= static_cast<double>(c.links);
    std::sort(top[i].begin(), top[i].end(), std::greater<>());
    for (std::size_t k = 0; k < top[i].size() && k < 5; ++k) {
      if (top[i][k].first > 0) c.hottest.push_back(top[i][k].second);
    }
  }
  return result;
}

RAILCC_NAMESPACE_END
