// railcc/coll/sim_backend.hpp: the simulated backend.
//
// Collectives posted on it become a FlowGraph on a Fabric: a transfer between ranks is a
// flow (its QP is the algorithm's channel, for ECMP entropy), a transfer within a rank or
// a local copy/reduction is a local task timed at HBM speed. `run()` simulates it.
//  - Data mode: every rank owns real host buffers; after the simulation the operations'
//    effects are applied in simulated-time order (reads at start, writes at end; at equal
//    times writes first), so the data is what the schedule really produces, races included.
//  - Timing mode: sizes only, no buffers; the same flows and the same simulated times as
//    data mode.
//  - Steps mode: for 100k+ ranks. Operations go into a StepSchedule (step_schedule.hpp):
//    each runs in the step after its dependencies, a step starts when the previous one
//    has completed everywhere, and algorithms post one step of a run of identical steps
//    and say how many follow (repeat_step). Each distinct step is simulated once.
//    Lockstep algorithms on symmetric fabrics get timing mode's time exactly (tested).
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "railcc/coll/backend.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/sim/engine.hpp"
#include "railcc/sim/step_schedule.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

enum class SimMode : std::uint8_t { data, timing, steps };

struct SimBackendConfig {
  SimMode mode = SimMode::data;
  SimConfig sim;
  /// Memory bandwidth for local copies and reductions: H100 SXM HBM3, 3.35 TB/s [pub].
  /// A reduction reads two operands and writes one, a copy reads one and writes one.
  Bandwidth hbm = Bandwidth::GBps(3350);
  /// Largest total buffer memory data mode may allocate (bytes over all ranks).
  std::size_t max_data_bytes = std::size_t{4} << 30;
};

class SimBackend {
 public:
  /// Rank r runs on endpoint `endpoints[r]` (default: endpoint r).
  SimBackend(const Fabric& fabric, int ranks, SimBackendConfig config = {},
             std::vector<NodeIndex> endpoints = {})
      : fabric_(fabric), config_(config), endpoints_(std::move(endpoints)) {
    if (ranks < 1) throw InputError("sim backend: need at least one rank");
    if (endpoints_.empty()) {
      if (static_cast<std::size_t>(ranks) > fabric.endpoint_count()) {
        throw InputError("sim backend: " + std::to_string(ranks) + " ranks but the fabric has " +
                         std::to_string(fabric.endpoint_count()) + " GPUs");
      }
      for (int r = 0; r < ranks; ++r) endpoints_.push_back(static_cast<NodeIndex>(r));
    }
    if (endpoints_.size() != static_cast<std::size_t>(ranks)) {
      throw InputError("sim backend: " + std::to_string(endpoints_.size()) + " endpoints for " +
                       std::to_string(ranks) + " ranks");
    }
    for (NodeIndex e : endpoints_) {
      if (e >= fabric.endpoint_count())
        throw InputError("sim backend: endpoint " + std::to_string(e) + " does not exist");
    }
  }

  // ---- buffers ---------------------------------------------------------------------------
  /// A symmetric buffer of `bytes` on every rank (zeroed in data mode).
  BufferId allocate(std::size_t bytes) {
    if (config_.mode == SimMode::data) {
      const std::size_t total = allocated_ + bytes * endpoints_.size();
      if (total > config_.max_data_bytes) {
        throw InputError("sim backend: data mode would need " + std::to_string(total) +
                         " bytes of buffers, over the " + std::to_string(config_.max_data_bytes) +
                         " allowed; use timing mode for this size");
      }
      allocated_ = total;
      data_.emplace_back(endpoints_.size(), std::vector<std::byte>(bytes));
    }
    sizes_.push_back(bytes);
    return static_cast<BufferId>(sizes_.size() - 1);
  }
  [[nodiscard]] std::size_t buffer_bytes(BufferId b) const { return sizes_.at(b); }
  /// A rank's copy of a buffer (data mode only).
  [[nodiscard]] std::span<std::byte> buffer(int rank, BufferId b) {
    if (config_.mode != SimMode::data) throw InputError("sim backend: no buffers in timing mode");
    return data_.at(b).at(static_cast<std::size_t>(rank));
  }

  // ---- the CollectiveBackend concept -----------------------------------------------------
  [[nodiscard]] int ranks() const { return static_cast<int>(endpoints_.size()); }
  [[nodiscard]] RankPlacement placement(int rank) const {
    const NodeIndex e = endpoints_.at(static_cast<std::size_t>(rank));
    return {fabric_.host(e), fabric_.local_rank(e), fabric_.rail(e)};
  }
  [[nodiscard]] ReductionSpec reduction() const { return reduction_; }
  void set_reduction(ReductionSpec r) { reduction_ = r; }

  OpId transfer(int src, Region from, int dst, Region to, RecvAction action,
                std::span<const OpId> deps, std::uint32_t channel = 0) {
    check(src, from, "source");
    check(dst, to, "destination");
    if (from.bytes != to.bytes) {
      throw InputError("sim backend: transfer of " + std::to_string(from.bytes) +
                       " bytes into a region of " + std::to_string(to.bytes));
    }
    const NodeIndex a = endpoints_[static_cast<std::size_t>(src)];
    const NodeIndex b = endpoints_[static_cast<std::size_t>(dst)];
    const FlowSpec spec = a == b ? local_task(a, local_time(from.bytes, action))
                                 : FlowSpec{a, b, Bytes::of(from.bytes), channel, {}};
    return record(spec, src, from, dst, to, action, deps);
  }

  OpId local(int rank, Region to, Region from, RecvAction action, std::span<const OpId> deps) {
    check(rank, from, "source");
    check(rank, to, "destination");
    if (from.bytes != to.bytes)
      throw InputError("sim backend: local operation with mismatched sizes");
    return record(
        local_task(endpoints_[static_cast<std::size_t>(rank)], local_time(from.bytes, action)),
        rank, from, rank, to, action, deps);
  }

  OpId finish(int rank, Region region, std::span<const OpId> deps) {
    check(rank, region, "finish");
    // avg divides in place (read and write once); other ops have nothing to do.
    const auto duration =
        reduction_.op == ReduceOp::avg ? local_time(region.bytes, RecvAction::copy) : Picoseconds{};
    return record(local_task(endpoints_[static_cast<std::size_t>(rank)], duration), rank, region,
                  rank, region, RecvAction::copy, deps, true);
  }

  /// Steps mode evaluates runs of identical steps once (see StepSchedule).
  [[nodiscard]] bool repeats_steps() const { return config_.mode == SimMode::steps; }
  /// Operations [first, last posted] are one step that `more` identical steps follow;
  /// what depends on them waits for the last. Only in steps mode.
  void repeat_step(OpId first, std::uint32_t more) {
    if (config_.mode != SimMode::steps)
      throw InputError("sim backend: repeat_step outside steps mode");
    steps_.repeat(first, more);
  }

  /// Simulates everything posted so far, applies the data (data mode), and returns the
  /// simulation's result. Operations are then cleared; buffers stay.
  /// In steps mode the result has the makespan and totals but no per-flow times;
  /// step_result() has the steps.
  SimResult run() {
    SimResult result;
    if (config_.mode == SimMode::steps) {
      step_result_ = steps_.evaluate(fabric_, config_.sim);
      steps_ = StepSchedule{};
      result.makespan = step_result_.makespan;
      result.bytes_sent = result.bytes_delivered = step_result_.bytes_sent;
      result.rate_solves = step_result_.rate_solves;
      result.flows_solved = step_result_.flows_evaluated;
      return result;
    }
    result = simulate(fabric_, graph_, config_.sim);
    if (config_.mode == SimMode::data) apply(result);
    last_graph_ = std::move(graph_);
    graph_ = FlowGraph{};
    ops_.clear();
    return result;
  }
  /// The flow graph the last run() simulated (timing and data modes), for traces.
  [[nodiscard]] const FlowGraph& last_graph() const { return last_graph_; }
  /// The steps of the last run() in steps mode.
  [[nodiscard]] const StepResult& step_result() const { return step_result_; }
  /// Operations posted since the last run().
  [[nodiscard]] std::size_t posted() const {
    return config_.mode == SimMode::steps ? steps_.size() : graph_.size();
  }

  [[nodiscard]] const FlowGraph& graph() const { return graph_; }
  [[nodiscard]] const Fabric& fabric() const { return fabric_; }
  [[nodiscard]] SimMode mode() const { return config_.mode; }

 private:
  struct Op {
    int src;
    Region from;
    int dst;
    Region to;
    RecvAction action;
    bool finishing;
  };

  void check(int rank, const Region& r, const char* what) const {
    if (rank < 0 || rank >= ranks()) {
      throw InputError(std::string("sim backend: ") + what + " rank " + std::to_string(rank) +
                       " does not exist");
    }
    if (r.buffer >= sizes_.size() || r.offset + r.bytes > sizes_[r.buffer] ||
        r.offset + r.bytes < r.offset) {
      throw InputError(std::string("sim backend: ") + what + " region [" +
                       std::to_string(r.offset) + ", +" + std::to_string(r.bytes) +
                       ") is outside buffer " + std::to_string(r.buffer));
    }
  }

  Picoseconds local_time(std::size_t bytes, RecvAction action) const {
    const std::size_t traffic = bytes * (action == RecvAction::reduce ? 3 : 2);
    return transfer_time(Bytes::of(traffic), config_.hbm);
  }

  OpId record(const FlowSpec& spec, int src, Region from, int dst, Region to, RecvAction action,
              std::span<const OpId> deps, bool finishing = false) {
    if (config_.mode == SimMode::steps) return steps_.add(spec, deps);
    const FlowId id = graph_.add(spec);
    for (OpId d : deps) {
      if (d >= id)
        throw InputError("sim backend: dependency on operation " + std::to_string(d) +
                         ", not posted yet");
      graph_.depends_on(id, d);
    }
    if (config_.mode == SimMode::data) ops_.push_back({src, from, dst, to, action, finishing});
    return static_cast<OpId>(id);
  }

  /// Applies every operation's effect in simulated-time order: reads at start, writes at
  /// the end, writes first at equal times.
  void apply(const SimResult& result) {
    struct Event {
      std::int64_t time;
      bool write;
      OpId op;
    };
    std::vector<Event> events;
    events.reserve(ops_.size() * 2);
    for (OpId i = 0; i < ops_.size(); ++i) {
      events.push_back({result.flows[i].start.count(), false, i});
      events.push_back({result.flows[i].delivered.count(), true, i});
    }
    std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
      if (a.time != b.time) return a.time < b.time;
      if (a.write != b.write) return a.write;  // writes first
      return a.op < b.op;
    });
    std::vector<std::vector<std::byte>> in_flight(ops_.size());
    const std::size_t elem = size_of(reduction_.type);
    for (const auto& e : events) {
      const Op& op = ops_[e.op];
      if (!e.write) {
        const auto& src = data_[op.from.buffer][static_cast<std::size_t>(op.src)];
        in_flight[e.op].assign(
            src.begin() + static_cast<std::ptrdiff_t>(op.from.offset),
            src.begin() + static_cast<std::ptrdiff_t>(op.from.offset + op.from.bytes));
        continue;
      }
      auto& dst = data_[op.to.buffer][static_cast<std::size_t>(op.dst)];
      auto& payload = in_flight[e.op];
      if (op.finishing) {
        if (op.to.bytes % elem != 0 || op.to.offset % elem != 0) {
          throw InputError("sim backend: a finished region is not a whole number of elements");
        }
        finish_reduction(reduction_.type, reduction_.op, payload.data(), op.to.bytes / elem,
                         ranks());
        std::copy(payload.begin(), payload.end(),
                  dst.begin() + static_cast<std::ptrdiff_t>(op.to.offset));
      } else if (op.action == RecvAction::copy) {
        std::copy(payload.begin(), payload.end(),
                  dst.begin() + static_cast<std::ptrdiff_t>(op.to.offset));
      } else {
        if (op.to.bytes % elem != 0 || op.to.offset % elem != 0) {
          throw InputError("sim backend: a reduction region is not a whole number of " +
                           std::string(to_string(reduction_.type)) + " elements");
        }
        reduce_into(reduction_.type, reduction_.op, dst.data() + op.to.offset, payload.data(),
                    op.to.bytes / elem);
      }
      payload.clear();
      payload.shrink_to_fit();
    }
  }

  const Fabric& fabric_;
  SimBackendConfig config_;
  std::vector<NodeIndex> endpoints_;
  ReductionSpec reduction_;
  FlowGraph graph_;
  FlowGraph last_graph_;
  StepSchedule steps_;
  StepResult step_result_;
  std::vector<Op> ops_;
  std::vector<std::size_t> sizes_;
  std::vector<std::vector<std::vector<std::byte>>> data_;  // [buffer][rank][byte]
  std::size_t allocated_ = 0;
};

static_assert(CollectiveBackend<SimBackend>);

RAILCC_NAMESPACE_END
