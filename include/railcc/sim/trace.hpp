// railcc/sim/trace.hpp: a simulation as a Chrome trace-event JSON file, which Perfetto
// (ui.perfetto.dev) and chrome://tracing open.
//
// - Each GPU is a track (process "host H", thread "GPU g"); each flow is an async slice
//   on its source GPU's track from its first byte to its delivery, named after its
//   destination, with its size and readiness time as arguments.
// - Each link class (NVLink, NIC-leaf, tier1-tier2, ...; up and down) is a counter of its
//   utilization in percent over time, from SimConfig::record_timeline.
// At scale the file stays small: when there are more flows than `max_flows`, it keeps the
// flows of the lowest-numbered GPUs, whole tracks at a time, up to that number, and says
// so in its metadata; the counters always cover the whole fabric. Each flow costs about
// 300 bytes, so the default 200,000 flows stay near 60 MB.
//
// The writer streams text rather than building a JSON document in memory: a trace of
// 200k flows as a DOM would take several times the file's size.
#pragma once

#include <cstdio>
#include <ostream>
#include <string>

#include "railcc/config.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/sim/engine.hpp"
#include "railcc/sim/flow_graph.hpp"
#include "railcc/sim/step_schedule.hpp"

RAILCC_NAMESPACE_BEGIN

struct TraceOptions {
  std::size_t max_flows = 200'000;
};

/// Name of a link class: "NVLink up", "NIC-leaf down", "tier1-tier2 up", ...
inline std::string link_class_name(int level, bool up) {
  std::string s = level == 0 ? "NVLink"
                  : level == 1
                      ? "NIC-leaf"
                      : "tier" + std::to_string(level - 1) + "-tier" + std::to_string(level);
  return s + (up ? " up" : " down");
}

/// Writes the trace; returns the number of flows it kept.
inline std::size_t write_chrome_trace(std::ostream& out, const Fabric& fabric,
                                      const FlowGraph& graph, const SimResult& result,
                                      const TraceOptions& options = {}) {
  // A flow is drawn on its source GPU's track; a flow out of an NVSwitch (NVLS) on its
  // destination GPU's.
  auto track = [&](const FlowSpec& f) { return f.src < fabric.endpoint_count() ? f.src : f.dst; };
  auto peer = [&](const FlowSpec& f) {
    if (f.src >= fabric.endpoint_count()) return std::string("from NVSwitch");
    if (f.dst >= fabric.endpoint_count()) return std::string("to NVSwitch");
    return "to " + std::to_string(f.dst);
  };
  // Keep whole GPU tracks, lowest GPUs first, while the flow budget lasts.
  std::vector<std::size_t> per_src(fabric.endpoint_count(), 0);
  for (FlowId f = 0; f < graph.size(); ++f) per_src[track(graph.flow(f))]++;
  NodeIndex last_src = 0;
  std::size_t kept = 0;
  while (last_src < fabric.endpoint_count() && kept + per_src[last_src] <= options.max_flows) {
    kept += per_src[last_src++];
  }
  char buf[512];
  auto us = [](Picoseconds t) { return t.in_us(); };
  out << "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"producer\":\"railcc\",\"flows\":"
      << graph.size() << ",\"flows_in_trace\":" << kept << ",\"gpus_in_trace\":" << last_src
      << ",\"makespan_us\":" << us(result.makespan) << "},\"traceEvents\":[\n";
  bool first = true;
  auto emit = [&](const char* text) {
    if (!first) out << ",\n";
    first = false;
    out << text;
  };
  std::uint32_t last_host = 0xffffffffu;
  for (NodeIndex e = 0; e < last_src; ++e) {
    if (fabric.host(e) != last_host) {
      last_host = fabric.host(e);
      std::snprintf(buf, sizeof buf,
                    R"j({"ph":"M","name":"process_name","pid":%u,"args":{"name":"host %u"}})j",
                    last_host, last_host);
      emit(buf);
    }
    std::snprintf(
        buf, sizeof buf,
        R"j({"ph":"M","name":"thread_name","pid":%u,"tid":%u,"args":{"name":"GPU %u (rank %u)"}})j",
        fabric.host(e), fabric.local_rank(e), fabric.local_rank(e), e);
    emit(buf);
  }
  for (FlowId f = 0; f < graph.size(); ++f) {
    const auto& spec = graph.flow(f);
    const NodeIndex gpu = track(spec);
    if (gpu >= last_src) continue;
    const auto& t = result.flows[f];
    const std::string name = peer(spec);
    std::snprintf(
        buf, sizeof buf,
        R"j({"ph":"b","cat":"flow","id":%u,"name":"%s","pid":%u,"tid":%u,"ts":%.6f,"args":{"bytes":%llu,"qp":%u,"ready_us":%.6f}})j",
        f, name.c_str(), fabric.host(gpu), fabric.local_rank(gpu), us(t.start),
        static_cast<unsigned long long>(spec.size.count()), spec.qp, us(t.ready));
    emit(buf);
    std::snprintf(buf, sizeof buf,
                  R"j({"ph":"e","cat":"flow","id":%u,"name":"%s","pid":%u,"tid":%u,"ts":%.6f})j", f,
                  name.c_str(), fabric.host(gpu), fabric.local_rank(gpu), us(t.delivered));
    emit(buf);
  }
  // Link-class utilization counters on a process of their own.
  const std::uint32_t links_pid =
      fabric.endpoint_count() == 0
          ? 0
          : fabric.host(static_cast<NodeIndex>(fabric.endpoint_count() - 1)) + 1;
  std::snprintf(
      buf, sizeof buf,
      R"j({"ph":"M","name":"process_name","pid":%u,"args":{"name":"fabric links (utilization %%)"}})j",
      links_pid);
  emit(buf);
  const std::size_t classes = result.class_capacity.size();
  for (std::size_t i = 0; i < result.timeline_times.size(); ++i) {
    for (std::size_t c = 0; c < classes; ++c) {
      if (result.class_capacity[c] <= 0) continue;
      const double pct =
          100.0 * result.timeline_bytes_per_second[i * classes + c] / result.class_capacity[c];
      std::snprintf(buf, sizeof buf,
                    R"j({"ph":"C","name":"%s","pid":%u,"ts":%.6f,"args":{"percent":%.4f}})j",
                    link_class_name(static_cast<int>(c / 2), c % 2 == 1).c_str(), links_pid,
                    us(result.timeline_times[i]), pct);
      emit(buf);
    }
  }
  out << "\n]}\n";
  return kept;
}

/// A trace of a step schedule's evaluation (steps mode): one slice per run of identical
/// steps, in simulated time, with the run's step count and per-step figures; runs of the
/// network (or of both domains) on one track, runs inside the hosts on another.
/// Per-flow tracks need the per-operation schedule (timing or data mode).
inline void write_step_trace(std::ostream& out, const StepResult& result) {
  char buf[512];
  out << "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"producer\":\"railcc\",\"steps\":"
      << result.steps << ",\"evaluations\":" << result.evaluations
      << ",\"makespan_us\":" << result.makespan.in_us() << "},\"traceEvents\":[\n";
  out << R"j({"ph":"M","name":"process_name","pid":0,"args":{"name":"collective (steps)"}},
{"ph":"M","name":"thread_name","pid":0,"tid":0,"args":{"name":"network steps"}},
{"ph":"M","name":"thread_name","pid":0,"tid":1,"args":{"name":"steps inside the hosts"}})j";
  for (const auto& run : result.runs) {
    const Picoseconds length = run.step_time * static_cast<std::int64_t>(run.steps);
    std::snprintf(buf, sizeof buf,
                  R"j(,
{"ph":"X","name":"steps %llu-%llu","pid":0,"tid":%d,"ts":%.6f,"dur":%.6f,"args":{"steps":%llu,"step_us":%.6f,"flows_per_step":%zu,"bytes_per_step":%.0f}})j",
                  static_cast<unsigned long long>(run.first_step),
                  static_cast<unsigned long long>(run.first_step + run.steps - 1),
                  run.domains == 2 ? 1 : 0, run.start.in_us(), length.in_us(),
                  static_cast<unsigned long long>(run.steps), run.step_time.in_us(), run.flows,
                  run.bytes);
    out << buf;
  }
  out << "\n]}\n";
}

RAILCC_NAMESPACE_END
