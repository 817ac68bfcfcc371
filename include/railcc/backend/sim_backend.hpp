// railcc/backend/sim_backend.hpp: the simulated backend: executes a plan on a modelled fabric.
//
// A plan (coll/plan.hpp) becomes a FlowGraph on a Fabric: a transfer between ranks is a flow
// (on the operation's QP, for ECMP entropy), a transfer within a rank or a local
// copy/reduction is a local task timed at HBM speed. `run(plan)` simulates it. The backend
// is also a CollectiveBackend: what algorithms post on it is recorded by its PlanBuilder
// and `run()` executes that plan.
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
// In-switch operations (NVLS) are flows into and out of the host's NVSwitch: a
// switch_reduce is one flow from every GPU of the group to the switch and one from the
// switch to the GPU that asked, all at once (the switch streams the reduction); a
// multicast is one flow into the switch and one out to every GPU of the group. Both
// carry 1 / nvls_efficiency bytes of link time per byte.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "railcc/coll/backend.hpp"
#include "railcc/coll/capabilities.hpp"
#include "railcc/coll/plan.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/schedule/qp_paths.hpp"
#include "railcc/sim/engine.hpp"
#include "railcc/sim/step_schedule.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

enum class SimMode : std::uint8_t { data, timing, steps };

struct SimBackendConfig {
  SimMode mode = SimMode::data;
  SimConfig sim{};
  /// Memory bandwidth for local copies and reductions: H100 SXM HBM3, 3.35 TB/s [pub].
  /// A reduction reads two operands and writes one, a copy reads one and writes one.
  Bandwidth hbm = Bandwidth::GBps(3350);
  /// Largest total buffer memory data mode may allocate (bytes over all ranks).
  std::size_t max_data_bytes = std::size_t{4} << 30;
  /// Most flows (transfers, local tasks, joins) timing and data modes hold for one run():
  /// each is kept with its dependencies, result and data effect, about 1.2 KB in data mode
  /// (an all-to-all over 1,024 ranks, 1.05M flows: 1.27 GB, 12 s measured). Posting past
  /// it is refused before anything is simulated. Steps mode keeps one step, not every flow.
  std::size_t max_flows = 2'000'000;
  /// What a collective pays once before its first operation (see nccl_collective_base).
  /// run() adds it to the makespan; per-flow times do not include it.
  Picoseconds collective_base = nccl_collective_base;
  /// NVLS reaches this fraction of the NVLink rate (see nccl_nvls_efficiency).
  double nvls_efficiency = nccl_nvls_efficiency;
  /// QPs a transfer between hosts spreads its bytes over, each a flow with its own ECMP
  /// hash (NCCL_IB_QPS_PER_CONNECTION, 1 by default as in NCCL; Llama 3's fabric uses 16
  /// and hashes on the QP, docs/facts.md section 1). QP numbers are channel x qps + i.
  /// With choose_qps, qps_to_choose() (schedule/chosen_qps.hpp) says how many a fabric
  /// wants: one per NIC port, two where a leaf or tier is built short of up-links.
  std::uint32_t qps_per_connection = 1;
  /// Steps mode: most flows and tasks in the graph that simulates a pipeline's units
  /// overlapping (StepSchedule::set_pipeline_expansion_flows).
  std::size_t pipeline_expansion_flows = std::size_t{1} << 21;
  /// Choose each flow's QP so that the flows of a step take different paths under the
  /// fabric's ECMP hash (schedule/qp_paths.hpp), instead of hashing the channel's QP
  /// blindly. ECMP routing only.
  bool choose_qps = false;
  QpChoiceOptions qp_choice{};
};

class SimBackend {
 public:
  /// Rank r runs on endpoint `endpoints[r]` (default: endpoint r).
  SimBackend(const Fabric& fabric, int ranks, SimBackendConfig config = {},
             std::vector<NodeIndex> endpoints = {})
      : fabric_(fabric),
        config_(config),
        endpoints_(checked_endpoints(fabric, ranks, std::move(endpoints))),
        steps_sink_(*this),
        builder_(target_of(fabric, endpoints_, config_.mode == SimMode::steps), {},
                 config_.mode == SimMode::steps ? &steps_sink_ : nullptr) {
    if (config_.qps_per_connection < 1 || config_.qps_per_connection > 1024) {
      throw InputError("sim backend: qps_per_connection must be 1 to 1024, not " +
                       std::to_string(config_.qps_per_connection));
    }
    if (config_.choose_qps && config_.sim.routing.mode != RoutingMode::ecmp) {
      throw InputError(
          "sim backend: choosing QPs steers ECMP's hash; with packet spraying every flow "
          "already uses every path (choose_qps needs ECMP routing)");
    }
    if (!(config_.nvls_efficiency > 0 && config_.nvls_efficiency <= 1)) {
      throw InputError("sim backend: nvls_efficiency must be in (0, 1], not " +
                       std::to_string(config_.nvls_efficiency));
    }
  }
  // The steps-mode sink points back at the backend.
  SimBackend(const SimBackend&) = delete;
  SimBackend& operator=(const SimBackend&) = delete;

  /// What algorithms see of a fabric: each endpoint's placement and NVSwitch.
  static PlanTarget target_of(const Fabric& fabric, std::span<const NodeIndex> endpoints,
                              bool repeats_steps) {
    PlanTarget t;
    t.repeats_steps = repeats_steps;
    t.placement.reserve(endpoints.size());
    for (NodeIndex e : endpoints)
      t.placement.push_back({fabric.host(e), fabric.local_rank(e), fabric.rail(e)});
    if (fabric.nvswitch_reduction()) {
      t.switch_domain.reserve(endpoints.size());
      for (NodeIndex e : endpoints) {
        const NodeIndex sw = fabric.nvswitch_of(e);
        t.switch_domain.push_back(sw == no_node ? PlanTarget::no_switch : sw);
      }
    }
    return t;
  }

  // ---- buffers ---------------------------------------------------------------------------
  /// A symmetric buffer of `bytes` on every rank (zeroed in data mode).
  BufferId allocate(std::size_t bytes) {
    if (config_.mode == SimMode::data) {
      // Compared as room per rank: no product that could wrap.
      const std::size_t room = config_.max_data_bytes - allocated_;
      if (bytes > room / endpoints_.size()) {
        throw InputError("sim backend: data mode would need " + std::to_string(bytes) +
                         " more bytes on each of " + std::to_string(endpoints_.size()) +
                         " ranks, over the " + std::to_string(config_.max_data_bytes) +
                         " allowed in all; use timing mode for this size");
      }
      allocated_ += bytes * endpoints_.size();
      data_.emplace_back(endpoints_.size(), std::vector<std::byte>(bytes));
    }
    return builder_.allocate(bytes);
  }
  [[nodiscard]] std::size_t buffer_bytes(BufferId b) const { return builder_.buffer_bytes(b); }
  [[nodiscard]] std::size_t max_data_bytes() const { return config_.max_data_bytes; }
  /// A rank's copy of a buffer (data mode only).
  [[nodiscard]] std::span<std::byte> buffer(int rank, BufferId b) {
    if (config_.mode != SimMode::data) throw InputError("sim backend: no buffers in timing mode");
    return data_.at(b).at(static_cast<std::size_t>(rank));
  }

  // ---- CollectiveBackend, SwitchReduceBackend, StepRepeatingBackend ---------------------
  [[nodiscard]] int ranks() const { return static_cast<int>(endpoints_.size()); }
  [[nodiscard]] RankPlacement placement(int rank) const { return builder_.placement(rank); }
  [[nodiscard]] ReductionSpec reduction() const { return builder_.reduction(); }
  void set_reduction(ReductionSpec r) { builder_.set_reduction(r); }

  OpId transfer(int src, Region from, int dst, Region to, RecvAction action,
                std::span<const OpId> deps, std::uint32_t channel = 0) {
    const bool known = src >= 0 && src < ranks() && dst >= 0 && dst < ranks();
    const std::size_t flows = known ? transfer_flows(endpoint(src), endpoint(dst)) : 0;
    return counted(flows,
                   [&] { return builder_.transfer(src, from, dst, to, action, deps, channel); });
  }
  OpId local(int rank, Region to, Region from, RecvAction action, std::span<const OpId> deps) {
    return counted(1, [&] { return builder_.local(rank, to, from, action, deps); });
  }
  OpId finish(int rank, Region region, std::span<const OpId> deps) {
    return counted(1, [&] { return builder_.finish(rank, region, deps); });
  }
  /// The call's input copied into the buffer the algorithm works in (InputCopyBackend):
  /// the data path's copy, charged no time (GPU collectives fold it into their first
  /// step).
  OpId copy_input(int rank, Region to, Region from, std::span<const OpId> deps) {
    return counted(1, [&] { return builder_.copy_input(rank, to, from, deps); });
  }
  /// Whether the rank's GPU sits on an NVSwitch that reduces and multicasts (NVLS).
  [[nodiscard]] bool switch_reduces(int rank) const { return builder_.switch_reduces(rank); }
  /// In-switch reduction (NVLS multimem.ld_reduce): `from` on every rank of the group,
  /// reduced with the call's op, lands in `to` on `dst` (a member of the group).
  OpId switch_reduce(std::span<const int> group, Region from, int dst, Region to,
                     std::span<const OpId> deps) {
    return counted(group.size() + 2,
                   [&] { return builder_.switch_reduce(group, from, dst, to, deps); });
  }
  /// Multicast through the switch (NVLS multimem.st): `from` on `src` (a member of the
  /// group) lands in `to` on every rank of the group, `src` included.
  OpId multicast(int src, Region from, std::span<const int> group, Region to,
                 std::span<const OpId> deps) {
    return counted(group.size() + 2,
                   [&] { return builder_.multicast(src, from, group, to, deps); });
  }
  /// Steps mode evaluates runs of identical steps once (see StepSchedule).
  [[nodiscard]] bool repeats_steps() const { return builder_.repeats_steps(); }
  /// Operations [first, last posted] are one step that `more` identical steps follow;
  /// what depends on them waits for the last. Only in steps mode.
  void repeat_step(OpId first, std::uint32_t more) { builder_.repeat_step(first, more); }
  /// Operations [first, last posted] are one unit of a pipeline that `more` identical
  /// units follow, `in_flight` at once between hosts (StepSchedule::repeat_block). Only
  /// in steps mode.
  void repeat_pipeline_unit(OpId first, std::uint32_t more, std::uint32_t in_flight = 1) {
    builder_.repeat_pipeline_unit(first, more, in_flight);
  }

  // ---- running ---------------------------------------------------------------------------
  /// Simulates everything posted since the last run() (the plan the builder recorded),
  /// applies the data (data mode), and returns the simulation's result. Buffers stay.
  /// In steps mode the result has the makespan and totals but no per-flow times;
  /// step_result() has the steps.
  SimResult run() {
    if (config_.mode == SimMode::steps) {
      builder_.take();
      StepSchedule steps = std::move(steps_);
      steps_ = StepSchedule{fabric_};
      step_items_.clear();
      steps.set_pipeline_expansion_flows(config_.pipeline_expansion_flows);
      return with_base(evaluate_steps(steps));
    }
    const Plan plan = builder_.take();
    posted_flows_ = 0;
    return with_base(execute(plan));
  }

  /// Simulates a plan built elsewhere (a PlanBuilder on this backend's target, possibly
  /// rewritten by schedule passes). Buffers the backend does not have yet are allocated;
  /// those it has must be the plan's sizes. Plans that repeat steps run in steps mode only.
  SimResult run(const Plan& plan) {
    adopt_plan_buffers(*this, builder_.plan().buffers().size(), plan, "sim backend");
    if (config_.mode == SimMode::steps) {
      StepSchedule steps(fabric_);
      std::vector<StepSchedule::Index> items;
      std::size_t next_repeat = 0;
      const auto repeats = plan.repeats();
      for (OpId id = 0; id < plan.size(); ++id) {
        lower_into_steps(steps, items, plan.op(id), plan.deps(id), plan.group(id),
                         plan.reduction());
        // A repeat covers operations posted before it: apply it once they are all in.
        while (next_repeat < repeats.size() && repeats[next_repeat].end == id + 1) {
          repeat_in_steps(steps, items, repeats[next_repeat]);
          ++next_repeat;
        }
      }
      for (; next_repeat < repeats.size(); ++next_repeat)
        repeat_in_steps(steps, items, repeats[next_repeat]);
      steps.set_pipeline_expansion_flows(config_.pipeline_expansion_flows);
      return with_base(evaluate_steps(steps));
    }
    if (!plan.repeats().empty())
      throw InputError(
          "sim backend: the plan repeats steps (built for steps mode); timing and data modes "
          "need every step posted");
    return with_base(execute(plan));
  }

  /// The flow graph the last run() simulated (timing and data modes), for traces.
  [[nodiscard]] const FlowGraph& last_graph() const { return last_graph_; }
  /// What choosing QPs did in the last run() (SimBackendConfig::choose_qps).
  struct QpChoiceSummary {
    std::size_t steps = 0;                ///< steps with flows that had a path to choose
    std::size_t flows = 0;                ///< such flows, over those steps
    std::size_t moved = 0;                ///< flows whose QP the chooser changed
    std::size_t shared_links_before = 0;  ///< switch links carrying 2+ flows of a step, blindly
    std::size_t shared_links_after = 0;   ///< the same with the chosen QPs

    QpChoiceSummary& operator+=(const QpChoiceSummary& o) {
      steps += o.steps;
      flows += o.flows;
      moved += o.moved;
      shared_links_before += o.shared_links_before;
      shared_links_after += o.shared_links_after;
      return *this;
    }
  };
  [[nodiscard]] const QpChoiceSummary& qp_choice_summary() const { return qp_stats_; }
  /// The steps of the last run() in steps mode.
  [[nodiscard]] const StepResult& step_result() const { return step_result_; }
  /// Operations posted since the last run().
  [[nodiscard]] std::size_t posted() const { return builder_.posted(); }
  /// What has been posted since the last run() (empty of operations in steps mode, which
  /// lowers each operation as it comes).
  [[nodiscard]] const Plan& plan() const { return builder_.plan(); }
  [[nodiscard]] const PlanTarget& target() const { return builder_.target(); }
  [[nodiscard]] const Fabric& fabric() const { return fabric_; }
  [[nodiscard]] SimMode mode() const { return config_.mode; }

 private:
  /// Steps mode lowers each operation as it is posted: a million-rank plan is never held.
  class StepsSink final : public PlanSink {
   public:
    explicit StepsSink(SimBackend& b) : b_(b) {}
    void add(OpId, const PlanOp& op, std::span<const OpId> deps,
             std::span<const int> group) override {
      b_.lower_into_steps(b_.steps_, b_.step_items_, op, deps, group, b_.reduction());
    }
    void repeat(const StepRepeat& r) override { b_.repeat_in_steps(b_.steps_, b_.step_items_, r); }

   private:
    SimBackend& b_;
  };

  /// What an operation does to the data, per flow. An operation of several flows (a
  /// switch operation, a transfer over several QPs): its `part`s do nothing themselves;
  /// the operation reads when its first part starts (`read_at`) and writes when its last
  /// flow (a join) is delivered.
  enum class Effect : std::uint8_t { move, finish, part, switch_reduce, multicast };
  struct DataEffect {
    Effect kind;
    int src;
    Region from;
    int dst;
    Region to;
    RecvAction action;
    FlowId read_at;
    std::uint32_t group_first = 0;  ///< into group_ranks (switch operations)
    std::uint32_t group_size = 0;
  };
  /// The flows an operation becomes: one, or several parts that start together and a
  /// join (a local task that takes no time) on `join_at` once all are delivered.
  struct Lowered {
    std::vector<FlowSpec> parts;
    bool join = false;
    NodeIndex join_at = no_node;
  };

  static std::vector<NodeIndex> checked_endpoints(const Fabric& fabric, int ranks,
                                                  std::vector<NodeIndex> endpoints) {
    if (ranks < 1) throw InputError("sim backend: need at least one rank");
    if (endpoints.empty()) {
      if (static_cast<std::size_t>(ranks) > fabric.endpoint_count()) {
        throw InputError("sim backend: " + std::to_string(ranks) + " ranks but the fabric has " +
                         std::to_string(fabric.endpoint_count()) + " GPUs");
      }
      for (int r = 0; r < ranks; ++r) endpoints.push_back(static_cast<NodeIndex>(r));
    }
    if (endpoints.size() != static_cast<std::size_t>(ranks)) {
      throw InputError("sim backend: " + std::to_string(endpoints.size()) + " endpoints for " +
                       std::to_string(ranks) + " ranks");
    }
    for (NodeIndex e : endpoints) {
      if (e >= fabric.endpoint_count())
        throw InputError("sim backend: endpoint " + std::to_string(e) + " does not exist");
    }
    return endpoints;
  }

  NodeIndex endpoint(int rank) const { return endpoints_[static_cast<std::size_t>(rank)]; }
  Bytes nvls_bytes(std::size_t bytes) const {
    return Bytes::of(
        static_cast<std::int64_t>(std::ceil(static_cast<double>(bytes) / config_.nvls_efficiency)));
  }
  Picoseconds local_time(std::size_t bytes, RecvAction action) const {
    const std::size_t traffic = bytes * (action == RecvAction::reduce ? 3 : 2);
    return transfer_time(Bytes::of(traffic), config_.hbm);
  }
  /// A transfer between hosts over several QPs is a flow per QP and a join.
  std::size_t transfer_flows(NodeIndex a, NodeIndex b) const {
    return config_.qps_per_connection > 1 && fabric_.host(a) != fabric_.host(b)
               ? config_.qps_per_connection + 1
               : 1;
  }

  /// Timing and data modes hold every flow of a run: refuse a collective past max_flows
  /// while it is posted, before the flows exist. An operation the builder refuses counts
  /// nothing.
  template <class Post>
  OpId counted(std::size_t flows, Post&& post) {
    const bool counts = config_.mode != SimMode::steps;
    if (counts && posted_flows_ + flows > config_.max_flows) throw too_many_flows();
    const OpId id = post();
    if (counts) posted_flows_ += flows;
    return id;
  }
  InputError too_many_flows() const {
    return InputError("sim backend: the collective posts more than " +
                      std::to_string(config_.max_flows) + " flows, more than " +
                      std::string(config_.mode == SimMode::data ? "data" : "timing") +
                      " mode simulates one by one; use steps mode for this size of run");
  }

  /// The switch of a switch operation (plans built elsewhere are checked here too).
  NodeIndex switch_of(int rank) const {
    const NodeIndex sw =
        fabric_.nvswitch_reduction() ? fabric_.nvswitch_of(endpoint(rank)) : no_node;
    if (sw == no_node)
      throw InputError("sim backend: a switch operation on rank " + std::to_string(rank) +
                       ", which is on no NVSwitch that reduces in the switch");
    return sw;
  }

  /// The flows of an operation, into `l` (reused: no allocation per operation).
  void lower(const PlanOp& op, std::span<const int> group, ReductionSpec reduction,
             Lowered& l) const {
    l.parts.clear();
    l.join = false;
    l.join_at = no_node;
    switch (op.kind) {
      case OpKind::transfer: {
        const NodeIndex a = endpoint(op.src);
        const NodeIndex b = endpoint(op.dst);
        const std::uint32_t qps = config_.qps_per_connection;
        if (transfer_flows(a, b) > 1) {
          // One flow per QP, the bytes cut as evenly as whole bytes allow.
          for (std::uint32_t i = 0; i < qps; ++i) {
            const std::size_t b0 = op.from.bytes * i / qps;
            const std::size_t b1 = op.from.bytes * (i + 1) / qps;
            l.parts.push_back({a, b, Bytes::of(b1 - b0), op.qp * qps + i, {}});
          }
          l.join = true;
          l.join_at = b;
        } else {
          l.parts.push_back(a == b ? local_task(a, local_time(op.from.bytes, op.action))
                                   : FlowSpec{a, b, Bytes::of(op.from.bytes), op.qp, {}});
        }
        break;
      }
      case OpKind::local:
        l.parts.push_back(local_task(endpoint(op.src), local_time(op.from.bytes, op.action)));
        break;
      case OpKind::input_copy:
        // Folded into the first step that reads the input, as GPU collectives do: no
        // time of its own (plan.hpp).
        l.parts.push_back(local_task(endpoint(op.src), {}));
        break;
      case OpKind::finish:
        // avg divides in place (read and write once); other ops have nothing to do.
        l.parts.push_back(
            local_task(endpoint(op.src), reduction.op == ReduceOp::avg
                                             ? local_time(op.to.bytes, RecvAction::copy)
                                             : Picoseconds{}));
        break;
      case OpKind::switch_reduce: {
        const NodeIndex sw = switch_of(op.dst);
        for (int r : group) l.parts.push_back({endpoint(r), sw, nvls_bytes(op.from.bytes), 0, {}});
        l.parts.push_back({sw, endpoint(op.dst), nvls_bytes(op.from.bytes), 0, {}});
        l.join = true;
        l.join_at = endpoint(op.dst);
        break;
      }
      case OpKind::multicast: {
        const NodeIndex sw = switch_of(op.src);
        l.parts.push_back({endpoint(op.src), sw, nvls_bytes(op.from.bytes), 0, {}});
        for (int r : group) l.parts.push_back({sw, endpoint(r), nvls_bytes(op.from.bytes), 0, {}});
        l.join = true;
        l.join_at = endpoint(op.src);
        break;
      }
    }
  }

  /// Steps mode: the flows of an operation share one step; the last stands for it.
  void lower_into_steps(StepSchedule& steps, std::vector<StepSchedule::Index>& items,
                        const PlanOp& op, std::span<const OpId> deps, std::span<const int> group,
                        ReductionSpec reduction) {
    step_deps_.clear();
    for (OpId d : deps) step_deps_.push_back(items[d]);
    lower(op, group, reduction, lowered_);
    StepSchedule::Index last = 0;
    for (const FlowSpec& p : lowered_.parts) last = steps.add(p, step_deps_);
    items.push_back(last);
  }
  /// Operations [first, end) repeat: from the first item of `first` to the last posted.
  static void repeat_in_steps(StepSchedule& steps, const std::vector<StepSchedule::Index>& items,
                              const StepRepeat& r) {
    const StepSchedule::Index first_item = r.first == 0 ? 0 : items[r.first - 1] + 1;
    if (r.pipeline_unit)
      steps.repeat_block(first_item, r.more, r.in_flight);
    else
      steps.repeat(first_item, r.more);
  }

  SimResult evaluate_steps(StepSchedule& steps) {
    SimResult result;
    qp_stats_ = {};
    if (config_.choose_qps) {
      for (const QpChoiceStats& s :
           choose_qps_of_steps(fabric_, config_.sim.routing, qp_choice(), steps.network_steps()))
        note(s);
    }
    step_result_ = steps.evaluate(fabric_, config_.sim);
    result.makespan = step_result_.makespan;
    result.bytes_sent = result.bytes_delivered = step_result_.bytes_sent;
    result.rate_solves = step_result_.rate_solves;
    result.flows_solved = step_result_.flows_solved;
    return result;
  }

  /// Timing and data modes: the whole plan as one flow graph, simulated, and in data mode
  /// the operations' effects applied in simulated-time order.
  /// The collective's base latency on top (a run that moved and computed nothing pays none).
  SimResult with_base(SimResult r) const {
    if (r.makespan > Picoseconds{}) r.makespan += config_.collective_base;
    return r;
  }

  SimResult execute(const Plan& plan) {
    FlowGraph graph;
    std::vector<FlowId> flow_of(plan.size());  // the flow whose delivery ends operation i
    std::vector<DataEffect> effects;
    std::vector<int> group_ranks;
    const bool data = config_.mode == SimMode::data;
    // Each flow's step (1 + its dependencies' latest; a task that takes no time: their
    // latest), to hand the QP chooser the flows that run at once.
    std::vector<std::uint32_t> level;
    auto post = [&](const FlowSpec& spec, std::span<const FlowId> after) {
      if (graph.size() >= config_.max_flows) throw too_many_flows();
      const FlowId id = graph.add(spec);
      std::uint32_t l = 0;
      for (FlowId d : after) {
        graph.depends_on(id, d);
        l = std::max(l, level[d]);
      }
      const bool takes_time = spec.src != spec.dst || spec.delay > Picoseconds{};
      level.push_back(l + (takes_time ? 1 : 0));
      return id;
    };
    std::vector<FlowId> after;
    std::vector<FlowId> parts;
    for (OpId id = 0; id < plan.size(); ++id) {
      const PlanOp& op = plan.op(id);
      const auto group = plan.group(id);
      after.clear();
      for (OpId d : plan.deps(id)) after.push_back(flow_of[d]);
      Lowered& l = lowered_;
      lower(op, group, plan.reduction(), l);
      const Effect kind = op.kind == OpKind::finish          ? Effect::finish
                          : op.kind == OpKind::switch_reduce ? Effect::switch_reduce
                          : op.kind == OpKind::multicast     ? Effect::multicast
                                                             : Effect::move;
      // A switch reduction reads the group in order, starting with its first rank.
      const int reads = op.kind == OpKind::switch_reduce ? group.front() : op.src;
      if (!l.join) {
        flow_of[id] = post(l.parts.front(), after);
        if (data) effects.push_back({kind, reads, op.from, op.dst, op.to, op.action, flow_of[id]});
        continue;
      }
      parts.clear();
      for (const FlowSpec& p : l.parts) {
        parts.push_back(post(p, after));
        if (data)
          effects.push_back(
              {Effect::part, reads, op.from, op.dst, op.to, RecvAction::copy, parts.back()});
      }
      flow_of[id] = post(local_task(l.join_at, {}), parts);
      if (data) {
        effects.push_back({kind, reads, op.from, op.dst, op.to, op.action, parts.front(),
                           static_cast<std::uint32_t>(group_ranks.size()),
                           static_cast<std::uint32_t>(group.size())});
        group_ranks.insert(group_ranks.end(), group.begin(), group.end());
      }
    }
    qp_stats_ = {};
    if (config_.choose_qps) choose_qps_by_step(graph, level);
    SimResult result = simulate(fabric_, graph, config_.sim);
    if (data) apply(result, effects, group_ranks, plan.reduction());
    last_graph_ = std::move(graph);
    return result;
  }

  /// Timing and data modes: the QP of every flow between hosts, chosen step by step.
  void choose_qps_by_step(FlowGraph& graph, const std::vector<std::uint32_t>& level) {
    std::vector<std::vector<FlowId>> by_level;
    for (FlowId f = 0; f < graph.size(); ++f) {
      const FlowSpec& s = graph.flow(f);
      if (s.src == s.dst || s.src >= fabric_.endpoint_count() ||
          s.dst >= fabric_.endpoint_count() || fabric_.host(s.src) == fabric_.host(s.dst))
        continue;
      if (by_level.size() <= level[f]) by_level.resize(level[f] + 1);
      by_level[level[f]].push_back(f);
    }
    std::erase_if(by_level, [](const std::vector<FlowId>& step) { return step.empty(); });
    std::vector<std::vector<FlowSpec>> specs(by_level.size());
    std::vector<std::vector<FlowSpec*>> pointers(by_level.size());
    for (std::size_t l = 0; l < by_level.size(); ++l) {
      for (FlowId f : by_level[l]) specs[l].push_back(graph.flow(f));
      for (FlowSpec& s : specs[l]) pointers[l].push_back(&s);
    }
    for (const QpChoiceStats& s :
         choose_qps_of_steps(fabric_, config_.sim.routing, qp_choice(), pointers))
      note(s);
    for (std::size_t l = 0; l < by_level.size(); ++l) {
      for (std::size_t i = 0; i < by_level[l].size(); ++i) {
        graph.set_qp(by_level[l][i], specs[l][i].qp);
        graph.set_size(by_level[l][i], specs[l][i].size);
      }
    }
  }
  /// The chooser's options, with the QPs a transfer between hosts is striped over (the
  /// chooser shares a transfer's bytes among them).
  QpChoiceOptions qp_choice() const {
    QpChoiceOptions o = config_.qp_choice;
    o.qps_per_connection = config_.qps_per_connection;
    return o;
  }
  void note(const QpChoiceStats& s) {
    qp_stats_ += {s.flows > 0 ? 1u : 0u, s.flows, s.moved, s.shared_before, s.shared_after};
  }

  /// Applies every operation's effect in simulated-time order: reads at start, writes at
  /// the end. At equal times: writes first, then operations that take no time (each reads
  /// and writes at once, in posting order, which their dependencies follow), then reads.
  void apply(const SimResult& result, const std::vector<DataEffect>& effects,
             const std::vector<int>& group_ranks, ReductionSpec reduction) {
    enum class Phase : std::uint8_t { write, instant, read };
    struct Event {
      std::int64_t time;
      Phase phase;
      std::uint32_t effect;
    };
    std::vector<Event> events;
    events.reserve(effects.size() * 2);
    for (std::uint32_t i = 0; i < effects.size(); ++i) {
      if (effects[i].kind == Effect::part) continue;
      const std::int64_t read = result.flows[effects[i].read_at].start.count();
      const std::int64_t write = result.flows[i].delivered.count();
      if (read == write) {
        events.push_back({read, Phase::instant, i});
      } else {
        events.push_back({read, Phase::read, i});
        events.push_back({write, Phase::write, i});
      }
    }
    std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
      if (a.time != b.time) return a.time < b.time;
      if (a.phase != b.phase) return a.phase < b.phase;
      return a.effect < b.effect;
    });
    std::vector<std::vector<std::byte>> in_flight(effects.size());
    const std::size_t elem = size_of(reduction.type);
    for (const auto& event : events) {
      if (event.phase == Phase::instant) {
        apply_effect(effects[event.effect], event.effect, false, group_ranks, reduction, elem,
                     in_flight);
        apply_effect(effects[event.effect], event.effect, true, group_ranks, reduction, elem,
                     in_flight);
      } else {
        apply_effect(effects[event.effect], event.effect, event.phase == Phase::write, group_ranks,
                     reduction, elem, in_flight);
      }
    }
  }

  /// One effect's read (what it takes at its start) or write (what it leaves at its end).
  void apply_effect(const DataEffect& op, std::uint32_t effect, bool write,
                    const std::vector<int>& group_ranks, ReductionSpec reduction, std::size_t elem,
                    std::vector<std::vector<std::byte>>& in_flight) {
    const std::span<const int> group{group_ranks.data() + op.group_first, op.group_size};
    auto region_of = [&](int rank, const Region& r) {
      const auto& bytes = data_[r.buffer][static_cast<std::size_t>(rank)];
      return std::span<const std::byte>(bytes).subspan(r.offset, r.bytes);
    };
    auto& payload = in_flight[effect];
    if (!write) {
      const auto first = region_of(op.src, op.from);
      payload.assign(first.begin(), first.end());
      if (op.kind == Effect::switch_reduce) {
        for (int r : group.subspan(1)) {
          reduce_into(reduction.type, reduction.op, payload.data(), region_of(r, op.from).data(),
                      op.from.bytes / elem);
        }
      }
      return;
    }
    auto& dst = data_[op.to.buffer][static_cast<std::size_t>(op.dst)];
    if (op.kind == Effect::multicast) {
      for (int r : group) {
        auto& to = data_[op.to.buffer][static_cast<std::size_t>(r)];
        std::copy(payload.begin(), payload.end(),
                  to.begin() + static_cast<std::ptrdiff_t>(op.to.offset));
      }
    } else if (op.kind == Effect::switch_reduce) {
      std::copy(payload.begin(), payload.end(),
                dst.begin() + static_cast<std::ptrdiff_t>(op.to.offset));
    } else if (op.kind == Effect::finish) {
      finish_reduction(reduction.type, reduction.op, payload.data(), op.to.bytes / elem, ranks());
      std::copy(payload.begin(), payload.end(),
                dst.begin() + static_cast<std::ptrdiff_t>(op.to.offset));
    } else if (op.action == RecvAction::copy) {
      std::copy(payload.begin(), payload.end(),
                dst.begin() + static_cast<std::ptrdiff_t>(op.to.offset));
    } else {
      if (op.to.bytes % elem != 0 || op.to.offset % elem != 0) {
        throw InputError("sim backend: a reduction region is not a whole number of " +
                         std::string(to_string(reduction.type)) + " elements");
      }
      reduce_into(reduction.type, reduction.op, dst.data() + op.to.offset, payload.data(),
                  op.to.bytes / elem);
    }
    payload.clear();
    payload.shrink_to_fit();
  }

  const Fabric& fabric_;
  SimBackendConfig config_;
  std::vector<NodeIndex> endpoints_;
  StepsSink steps_sink_;
  PlanBuilder builder_;
  std::size_t posted_flows_ = 0;  // timing and data modes: flows the posted plan will have
  StepSchedule steps_{fabric_};   // steps mode: the posted operations, lowered
  std::vector<StepSchedule::Index> step_items_;  // steps mode: operation -> its last item
  Lowered lowered_;                              // scratch: one operation's flows
  std::vector<StepSchedule::Index> step_deps_;   // scratch: one operation's dependencies
  FlowGraph last_graph_;
  QpChoiceSummary qp_stats_;
  StepResult step_result_;
  std::vector<std::vector<std::vector<std::byte>>> data_;  // [buffer][rank][byte]
  std::size_t allocated_ = 0;
};

static_assert(CollectiveBackend<SimBackend>);
static_assert(SwitchReduceBackend<SimBackend>);
static_assert(StepRepeatingBackend<SimBackend>);

RAILCC_NAMESPACE_END
