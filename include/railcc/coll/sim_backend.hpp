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
  /// Most flows (transfers, local tasks, joins) timing and data modes hold for one run():
  /// each is kept with its dependencies, result and data effect, about 1.2 KB in data mode
  /// (an all-to-all over 1,024 ranks, 1.05M flows: 1.27 GB, 12 s measured). Posting past
  /// it is refused before anything is simulated. Steps mode keeps one step, not every flow.
  std::size_t max_flows = 2'000'000;
  /// NVLS reaches this fraction of the NVLink rate (see nccl_nvls_efficiency).
  double nvls_efficiency = nccl_nvls_efficiency;
  /// QPs a transfer between hosts spreads its bytes over, each a flow with its own ECMP
  /// hash (NCCL_IB_QPS_PER_CONNECTION, 1 by default as in NCCL; Llama 3's fabric uses 16
  /// and hashes on the QP, docs/facts.md section 1). QP numbers are channel x qps + i.
  std::uint32_t qps_per_connection = 1;
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
    if (config_.qps_per_connection < 1 || config_.qps_per_connection > 1024) {
      throw InputError("sim backend: qps_per_connection must be 1 to 1024, not " +
                       std::to_string(config_.qps_per_connection));
    }
    if (!(config_.nvls_efficiency > 0 && config_.nvls_efficiency <= 1)) {
      throw InputError("sim backend: nvls_efficiency must be in (0, 1], not " +
                       std::to_string(config_.nvls_efficiency));
    }
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
    sizes_.push_back(bytes);
    return static_cast<BufferId>(sizes_.size() - 1);
  }
  [[nodiscard]] std::size_t buffer_bytes(BufferId b) const { return sizes_.at(b); }
  [[nodiscard]] std::size_t max_data_bytes() const { return config_.max_data_bytes; }
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
    const std::uint32_t qps = config_.qps_per_connection;
    if (qps > 1 && fabric_.host(a) != fabric_.host(b)) {
      // One flow per QP, the bytes cut as evenly as whole bytes allow.
      std::vector<FlowSpec> parts;
      for (std::uint32_t i = 0; i < qps; ++i) {
        const std::size_t b0 = from.bytes * i / qps;
        const std::size_t b1 = from.bytes * (i + 1) / qps;
        parts.push_back({a, b, Bytes::of(b1 - b0), channel * qps + i, {}});
      }
      return record_parts(parts, OpKind::transfer, {}, src, from, dst, to, action, deps);
    }
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

  /// Whether the rank's GPU sits on an NVSwitch that reduces and multicasts (NVLS).
  [[nodiscard]] bool switch_reduces(int rank) const {
    check_rank(rank, "switch_reduces");
    return fabric_.nvswitch_reduction() &&
           fabric_.nvswitch_of(endpoints_[static_cast<std::size_t>(rank)]) != no_node;
  }

  /// In-switch reduction (NVLS multimem.ld_reduce): `from` on every rank of the group,
  /// reduced with the call's op, lands in `to` on `dst` (a member of the group).
  OpId switch_reduce(std::span<const int> group, Region from, int dst, Region to,
                     std::span<const OpId> deps) {
    const NodeIndex sw = check_switch_group(group, from, dst, to, "switch_reduce");
    if (from.offset % size_of(reduction_.type) != 0 || from.bytes % size_of(reduction_.type) != 0) {
      throw InputError("sim backend: switch_reduce of a region that is not a whole number of " +
                       std::string(to_string(reduction_.type)) + " elements");
    }
    std::vector<FlowSpec> parts;
    for (int r : group) parts.push_back({endpoint(r), sw, nvls_bytes(from.bytes), 0, {}});
    parts.push_back({sw, endpoint(dst), nvls_bytes(from.bytes), 0, {}});
    return record_parts(parts, OpKind::switch_reduce, group, group.front(), from, dst, to,
                        RecvAction::copy, deps);
  }

  /// Multicast through the switch (NVLS multimem.st): `from` on `src` (a member of the
  /// group) lands in `to` on every rank of the group, `src` included.
  OpId multicast(int src, Region from, std::span<const int> group, Region to,
                 std::span<const OpId> deps) {
    const NodeIndex sw = check_switch_group(group, to, src, from, "multicast");
    std::vector<FlowSpec> parts;
    parts.push_back({endpoint(src), sw, nvls_bytes(from.bytes), 0, {}});
    for (int r : group) parts.push_back({sw, endpoint(r), nvls_bytes(from.bytes), 0, {}});
    return record_parts(parts, OpKind::multicast, group, src, from, src, to, RecvAction::copy,
                        deps);
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
    group_ranks_.clear();
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
  enum class OpKind : std::uint8_t { transfer, finish, part, switch_reduce, multicast };
  /// What an operation does to the data. An operation of several flows (a switch
  /// operation, a transfer over several QPs): its `part`s do nothing themselves; the
  /// operation reads when its first part starts (`read_at`) and writes when its last flow
  /// (a join) is delivered.
  struct Op {
    OpKind kind;
    int src;
    Region from;
    int dst;
    Region to;
    RecvAction action;
    FlowId read_at;
    std::uint32_t group_first = 0;  ///< into group_ranks_ (switch operations)
    std::uint32_t group_size = 0;
  };

  NodeIndex endpoint(int rank) const { return endpoints_[static_cast<std::size_t>(rank)]; }
  Bytes nvls_bytes(std::size_t bytes) const {
    return Bytes::of(
        static_cast<std::int64_t>(std::ceil(static_cast<double>(bytes) / config_.nvls_efficiency)));
  }

  void check_rank(int rank, const char* what) const {
    if (rank < 0 || rank >= ranks()) {
      throw InputError(std::string("sim backend: ") + what + " rank " + std::to_string(rank) +
                       " does not exist");
    }
  }

  /// A switch operation's group: distinct ranks on one NVSwitch that reduces, `member`
  /// among them, regions of one size. Returns the switch.
  NodeIndex check_switch_group(std::span<const int> group, const Region& each, int member,
                               const Region& own, const char* what) const {
    const std::string op = std::string("sim backend: ") + what;
    if (group.empty()) throw InputError(op + " over an empty group");
    if (!fabric_.nvswitch_reduction())
      throw InputError(op + ": the fabric's NVSwitches do not reduce in the switch (no NVLS)");
    check(member, own, what);
    if (own.bytes != each.bytes)
      throw InputError(op + " with regions of " + std::to_string(each.bytes) + " and " +
                       std::to_string(own.bytes) + " bytes");
    const NodeIndex sw = fabric_.nvswitch_of(endpoint(member));
    if (sw == no_node)
      throw InputError(op + ": rank " + std::to_string(member) + " is on no NVSwitch");
    bool has_member = false;
    std::vector<int> sorted(group.begin(), group.end());
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
      throw InputError(op + ": a rank appears twice in the group");
    for (int r : group) {
      check(r, each, what);
      if (fabric_.nvswitch_of(endpoint(r)) != sw) {
        throw InputError(op + ": ranks " + std::to_string(member) + " and " + std::to_string(r) +
                         " are not on the same NVSwitch");
      }
      has_member = has_member || r == member;
    }
    if (!has_member)
      throw InputError(op + ": rank " + std::to_string(member) + " is not in the group");
    return sw;
  }

  void check(int rank, const Region& r, const char* what) const {
    check_rank(rank, what);
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

  FlowId post(const FlowSpec& spec, std::span<const OpId> deps) {
    if (graph_.size() >= config_.max_flows) {
      throw InputError("sim backend: the collective posts more than " +
                       std::to_string(config_.max_flows) + " flows, more than " +
                       std::string(config_.mode == SimMode::data ? "data" : "timing") +
                       " mode simulates one by one; use steps mode for this size of run");
    }
    const FlowId id = graph_.add(spec);
    for (OpId d : deps) {
      if (d >= id)
        throw InputError("sim backend: dependency on operation " + std::to_string(d) +
                         ", not posted yet");
      graph_.depends_on(id, d);
    }
    return id;
  }

  OpId record(const FlowSpec& spec, int src, Region from, int dst, Region to, RecvAction action,
              std::span<const OpId> deps, bool finishing = false) {
    if (config_.mode == SimMode::steps) return steps_.add(spec, deps);
    const FlowId id = post(spec, deps);
    if (config_.mode == SimMode::data)
      ops_.push_back(
          {finishing ? OpKind::finish : OpKind::transfer, src, from, dst, to, action, id});
    return static_cast<OpId>(id);
  }

  /// An operation of several flows that start together; a join on the asking rank (the
  /// destination; the source of a multicast) completes when the last is delivered. In
  /// steps mode the flows share one step and the last stands for the operation.
  OpId record_parts(const std::vector<FlowSpec>& parts, OpKind kind, std::span<const int> group,
                    int src, Region from, int dst, Region to, RecvAction action,
                    std::span<const OpId> deps) {
    if (config_.mode == SimMode::steps) {
      OpId last = 0;
      for (const FlowSpec& p : parts) last = steps_.add(p, deps);
      return last;
    }
    std::vector<OpId> posted;
    for (const FlowSpec& p : parts) {
      posted.push_back(post(p, deps));
      if (config_.mode == SimMode::data)
        ops_.push_back({OpKind::part, src, from, dst, to, RecvAction::copy, posted.back()});
    }
    const FlowId join =
        post(local_task(endpoint(kind == OpKind::multicast ? src : dst), {}), posted);
    if (config_.mode == SimMode::data) {
      ops_.push_back({kind, src, from, dst, to, action, posted.front(),
                      static_cast<std::uint32_t>(group_ranks_.size()),
                      static_cast<std::uint32_t>(group.size())});
      group_ranks_.insert(group_ranks_.end(), group.begin(), group.end());
    }
    return static_cast<OpId>(join);
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
      if (ops_[i].kind == OpKind::part) continue;
      events.push_back({result.flows[ops_[i].read_at].start.count(), false, i});
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
      const std::span<const int> group{group_ranks_.data() + op.group_first, op.group_size};
      auto region_of = [&](int rank, const Region& r) {
        const auto& bytes = data_[r.buffer][static_cast<std::size_t>(rank)];
        return std::span<const std::byte>(bytes).subspan(r.offset, r.bytes);
      };
      if (!e.write) {
        const auto first = region_of(op.src, op.from);
        in_flight[e.op].assign(first.begin(), first.end());
        if (op.kind == OpKind::switch_reduce) {
          for (int r : group.subspan(1)) {
            reduce_into(reduction_.type, reduction_.op, in_flight[e.op].data(),
                        region_of(r, op.from).data(), op.from.bytes / elem);
          }
        }
        continue;
      }
      auto& dst = data_[op.to.buffer][static_cast<std::size_t>(op.dst)];
      auto& payload = in_flight[e.op];
      if (op.kind == OpKind::multicast) {
        for (int r : group) {
          auto& to = data_[op.to.buffer][static_cast<std::size_t>(r)];
          std::copy(payload.begin(), payload.end(),
                    to.begin() + static_cast<std::ptrdiff_t>(op.to.offset));
        }
      } else if (op.kind == OpKind::switch_reduce) {
        std::copy(payload.begin(), payload.end(),
                  dst.begin() + static_cast<std::ptrdiff_t>(op.to.offset));
      } else if (op.kind == OpKind::finish) {
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
  std::vector<int> group_ranks_;  // the groups of switch operations, back to back
  std::vector<std::size_t> sizes_;
  std::vector<std::vector<std::vector<std::byte>>> data_;  // [buffer][rank][byte]
  std::size_t allocated_ = 0;
};

static_assert(CollectiveBackend<SimBackend>);

RAILCC_NAMESPACE_END
