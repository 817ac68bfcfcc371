// railcc/coll/plan.hpp: the program a collective posts, as a value.
//
// An algorithm (collectives.hpp) posts operations on a backend; posted on a PlanBuilder
// they become a Plan: flat arrays of operations, each with its ranks, regions, connection
// slot, QP hint and dependencies, plus the runs of identical steps that the simulator's
// steps mode repeats, the symmetric buffers the operations use and, per rank, the
// operations after which its output is final. The plan is written in the global view:
// every operation names all the ranks that take part in it, and a dependency may name an
// operation of any rank. Backends execute plans (the simulated backend executes the whole
// plan; a backend that runs one rank executes that rank's projection, projection.hpp),
// schedule passes rewrite them, the tuner costs them. This is MSCCL++'s plan / executor
// split and NCCL's cost-table-plus-tuner, with the plan built by the same templates that
// run everywhere.
//
// Operation kinds (`src`, `dst`, `from`, `to` as PlanOp documents them):
//  - transfer:      `from` on src to `to` on dst, copied or reduced in (src == dst: within
//                   one rank's memory, which costs HBM time only);
//  - local:         `from` to `to` within rank src (== dst), copied or reduced in;
//  - finish:        the reduction's last step on `to` of rank src (== dst); avg divides;
//  - switch_reduce: `from` on every rank of the group, reduced in group order, into `to`
//                   on dst (a member of the group); src == dst;
//  - multicast:     `from` on src (a member) into `to` on every rank of the group.
// Ids: operation i is the i-th posted; a dependency always names an earlier operation.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "railcc/coll/backend.hpp"
#include "railcc/coll/data_type.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

/// input_copy: a local copy of the call's input into the buffer the algorithm works in
/// (out of place), which a GPU collective folds into its first step: NCCL's kernels read
/// the input where a step first needs it, so the copy moves no bytes of its own. The data
/// path is a local copy; the simulated backend charges it no time (docs/collectives.md).
enum class OpKind : std::uint8_t { transfer, local, finish, switch_reduce, multicast, input_copy };

constexpr std::string_view to_string(OpKind k) {
  switch (k) {
    case OpKind::transfer: return "transfer";
    case OpKind::local: return "local";
    case OpKind::finish: return "finish";
    case OpKind::switch_reduce: return "switch_reduce";
    case OpKind::multicast: return "multicast";
    case OpKind::input_copy: return "input_copy";
  }
  return "?";
}

/// One operation of a plan.
struct PlanOp {
  OpKind kind = OpKind::transfer;
  RecvAction action = RecvAction::copy;  ///< transfer and local: copy or reduce into `to`
  int src = 0;                           ///< the rank `from` is read on
  int dst = 0;                           ///< the rank `to` is written on (multicast: == src)
  Region from;
  Region to;
  /// The connection slot: which of the algorithm's parallel rings, trees or steps the
  /// transfer belongs to. Two transfers between the same ranks on different channels may
  /// run at once; on one channel they are ordered by their dependencies.
  std::uint32_t channel = 0;
  /// The QP the transfer's bytes travel on (ECMP hashes on it). The builder sets it to
  /// the channel; schedule passes may choose another.
  std::uint32_t qp = 0;
  std::uint32_t group_first = 0;  ///< switch operations: into Plan's group ranks
  std::uint32_t group_size = 0;
};

/// Operations [first, end) are one step that `more` identical steps follow (steps mode),
/// or, with `pipeline_unit`, one unit of a pipeline that `more` identical units follow,
/// each overlapping the next, `in_flight` of them at once in a network stage
/// (StepSchedule::repeat_block).
struct StepRepeat {
  OpId first = 0;
  OpId end = 0;
  std::uint32_t more = 0;
  bool pipeline_unit = false;
  std::uint32_t in_flight = 1;
};

class Plan {
 public:
  Plan() = default;
  Plan(int ranks, ReductionSpec reduction) : ranks_(ranks), reduction_(reduction) {}

  [[nodiscard]] int ranks() const { return ranks_; }
  [[nodiscard]] ReductionSpec reduction() const { return reduction_; }
  /// The symmetric buffers: buffer b has buffers()[b] bytes on every rank.
  [[nodiscard]] std::span<const std::size_t> buffers() const { return buffers_; }
  [[nodiscard]] std::size_t size() const { return ops_.size(); }
  [[nodiscard]] const PlanOp& op(OpId id) const { return ops_[id]; }
  /// For schedule passes, which rewrite an operation's QP or channel in place.
  [[nodiscard]] PlanOp& op(OpId id) { return ops_[id]; }
  [[nodiscard]] std::span<const OpId> deps(OpId id) const {
    return {deps_.data() + dep_begin_[id], deps_.data() + dep_begin_[id + 1]};
  }
  /// A switch operation's ranks in the order the switch reduces them (empty otherwise).
  [[nodiscard]] std::span<const int> group(OpId id) const {
    return {groups_.data() + ops_[id].group_first, ops_[id].group_size};
  }
  [[nodiscard]] std::span<const StepRepeat> repeats() const { return repeats_; }
  /// The operations after which rank `rank`'s output is final.
  [[nodiscard]] std::span<const OpId> completion(int rank) const {
    if (completion_begin_.empty()) return {};
    const auto r = static_cast<std::size_t>(rank);
    return {completion_.data() + completion_begin_[r],
            completion_.data() + completion_begin_[r + 1]};
  }
  /// Whether the operation involves the rank (reads or writes its memory).
  [[nodiscard]] bool involves(OpId id, int rank) const {
    const PlanOp& o = ops_[id];
    if (o.src == rank || o.dst == rank) return true;
    const auto g = group(id);
    return std::find(g.begin(), g.end(), rank) != g.end();
  }

  // ---- building (PlanBuilder checks what goes in) -----------------------------------------
  BufferId add_buffer(std::size_t bytes) {
    buffers_.push_back(bytes);
    return static_cast<BufferId>(buffers_.size() - 1);
  }
  OpId add(PlanOp op, std::span<const OpId> deps, std::span<const int> group) {
    if (dep_begin_.empty()) dep_begin_.push_back(0);
    op.group_first = static_cast<std::uint32_t>(groups_.size());
    op.group_size = static_cast<std::uint32_t>(group.size());
    groups_.insert(groups_.end(), group.begin(), group.end());
    ops_.push_back(op);
    deps_.insert(deps_.end(), deps.begin(), deps.end());
    dep_begin_.push_back(deps_.size());
    return static_cast<OpId>(ops_.size() - 1);
  }
  void add_repeat(StepRepeat r) { repeats_.push_back(r); }
  /// Sets each rank's completion operations (what the algorithm returned).
  void set_completion(const std::vector<Deps>& per_rank) {
    if (per_rank.size() != static_cast<std::size_t>(ranks_)) {
      throw LogicError("plan: completion for " + std::to_string(per_rank.size()) +
                       " ranks in a plan of " + std::to_string(ranks_));
    }
    completion_.clear();
    completion_begin_.assign(1, 0);
    for (const Deps& d : per_rank) {
      for (OpId id : d) {
        if (id >= ops_.size())
          throw LogicError("plan: completion names operation " + std::to_string(id) +
                           ", which was never posted");
      }
      completion_.insert(completion_.end(), d.begin(), d.end());
      completion_begin_.push_back(completion_.size());
    }
  }

 private:
  int ranks_ = 0;
  ReductionSpec reduction_;
  std::vector<std::size_t> buffers_;
  std::vector<PlanOp> ops_;
  std::vector<std::size_t> dep_begin_;  // CSR: op i's deps are [dep_begin_[i], dep_begin_[i+1])
  std::vector<OpId> deps_;
  std::vector<int> groups_;
  std::vector<StepRepeat> repeats_;
  std::vector<std::size_t> completion_begin_;
  std::vector<OpId> completion_;
};

/// For a backend about to execute `plan`: the plan must be over the backend's ranks, a
/// buffer the backend has (the first `have`) must be the plan's size, and the buffers it
/// lacks are allocated. `who` names the backend in errors.
template <class B>
void adopt_plan_buffers(B& backend, std::size_t have, const Plan& plan, const std::string& who) {
  if (plan.ranks() != backend.ranks())
    throw InputError(who + ": a plan over " + std::to_string(plan.ranks()) +
                     " ranks on a backend of " + std::to_string(backend.ranks()));
  const auto sizes = plan.buffers();
  for (std::size_t b = 0; b < sizes.size(); ++b) {
    if (b >= have) {
      backend.allocate(sizes[b]);
      continue;
    }
    const std::size_t mine = backend.buffer_bytes(static_cast<BufferId>(b));
    if (mine != sizes[b])
      throw InputError(who + ": the plan's buffer " + std::to_string(b) + " has " +
                       std::to_string(sizes[b]) + " bytes, the backend's " + std::to_string(mine));
  }
}

/// What an algorithm may know of where it runs: each rank's placement, which ranks share
/// an NVSwitch that reduces in the switch (NVLS), and whether steps may be repeated.
struct PlanTarget {
  static constexpr std::uint32_t no_switch = 0xffffffffu;
  std::vector<RankPlacement> placement;
  /// Per rank: the NVSwitch (any id shared by the ranks on it) that reduces in the switch,
  /// or no_switch. Empty: no rank has one.
  std::vector<std::uint32_t> switch_domain;
  /// The plan is for the simulator's steps mode: algorithms may post one step of a run of
  /// identical steps and repeat it. Such a plan is timed, never run with data.
  bool repeats_steps = false;

  /// `ranks` ranks on hosts of `per_host` GPUs, in order: rank r is local index
  /// r % per_host of host r / per_host, on rail r % per_host.
  static PlanTarget hosts(int ranks, int per_host) {
    if (ranks < 1) throw InputError("plan target: need at least one rank");
    if (per_host < 1) throw InputError("plan target: need at least one rank per host");
    PlanTarget t;
    for (int r = 0; r < ranks; ++r) {
      const auto local = static_cast<std::uint32_t>(r % per_host);
      t.placement.push_back({static_cast<std::uint32_t>(r / per_host), local, local});
    }
    return t;
  }
};

/// Takes operations as they are posted, instead of the builder keeping them: the
/// simulator's steps mode evaluates a million-rank plan without ever holding it.
class PlanSink {
 public:
  virtual ~PlanSink() = default;
  virtual void add(OpId id, const PlanOp& op, std::span<const OpId> deps,
                   std::span<const int> group) = 0;
  virtual void repeat(const StepRepeat& r) = 0;
};

/// Records what an algorithm posts as a Plan, checking every operation as it comes: bad
/// regions and groups are InputError (they come from the call), a dependency on an
/// operation not posted yet or a repeat where steps are not repeated are LogicError.
/// Satisfies CollectiveBackend, SwitchReduceBackend and StepRepeatingBackend.
class PlanBuilder {
 public:
  explicit PlanBuilder(PlanTarget target, ReductionSpec reduction = {}, PlanSink* sink = nullptr)
      : target_(std::move(target)),
        plan_(static_cast<int>(target_.placement.size()), reduction),
        sink_(sink) {
    if (target_.placement.empty()) throw InputError("plan: need at least one rank");
    if (!target_.switch_domain.empty() && target_.switch_domain.size() != target_.placement.size())
      throw InputError("plan target: " + std::to_string(target_.switch_domain.size()) +
                       " switch domains for " + std::to_string(target_.placement.size()) +
                       " ranks");
  }

  // ---- CollectiveBackend ------------------------------------------------------------------
  [[nodiscard]] int ranks() const { return static_cast<int>(target_.placement.size()); }
  [[nodiscard]] RankPlacement placement(int rank) const {
    check_rank(rank, "placement");
    return target_.placement[static_cast<std::size_t>(rank)];
  }
  [[nodiscard]] ReductionSpec reduction() const { return plan_.reduction(); }
  [[nodiscard]] const PlanTarget& target() const { return target_; }

  BufferId allocate(std::size_t bytes) { return plan_.add_buffer(bytes); }
  [[nodiscard]] std::size_t buffer_bytes(BufferId b) const { return plan_.buffers()[b]; }

  OpId transfer(int src, Region from, int dst, Region to, RecvAction action,
                std::span<const OpId> deps, std::uint32_t channel = 0) {
    check(src, from, "source");
    check(dst, to, "destination");
    if (from.bytes != to.bytes) {
      throw InputError("plan: transfer of " + std::to_string(from.bytes) +
                       " bytes into a region of " + std::to_string(to.bytes));
    }
    return add({OpKind::transfer, action, src, dst, from, to, channel, channel}, deps, {});
  }

  OpId local(int rank, Region to, Region from, RecvAction action, std::span<const OpId> deps) {
    check(rank, from, "source");
    check(rank, to, "destination");
    if (from.bytes != to.bytes) throw InputError("plan: local operation with mismatched sizes");
    return add({OpKind::local, action, rank, rank, from, to, 0, 0}, deps, {});
  }

  // ---- InputCopyBackend -------------------------------------------------------------------
  OpId copy_input(int rank, Region to, Region from, std::span<const OpId> deps) {
    check(rank, from, "source");
    check(rank, to, "destination");
    if (from.bytes != to.bytes) throw InputError("plan: input copy with mismatched sizes");
    return add({OpKind::input_copy, RecvAction::copy, rank, rank, from, to, 0, 0}, deps, {});
  }

  OpId finish(int rank, Region region, std::span<const OpId> deps) {
    check(rank, region, "finish");
    const std::size_t elem = size_of(reduction().type);
    if (region.offset % elem != 0 || region.bytes % elem != 0)
      throw InputError("plan: a finished region is not a whole number of " +
                       std::string(to_string(reduction().type)) + " elements");
    return add({OpKind::finish, RecvAction::copy, rank, rank, region, region, 0, 0}, deps, {});
  }

  // ---- SwitchReduceBackend ----------------------------------------------------------------
  [[nodiscard]] bool switch_reduces(int rank) const {
    check_rank(rank, "switch_reduces");
    return !target_.switch_domain.empty() &&
           target_.switch_domain[static_cast<std::size_t>(rank)] != PlanTarget::no_switch;
  }
  OpId switch_reduce(std::span<const int> group, Region from, int dst, Region to,
                     std::span<const OpId> deps) {
    check_switch_group(group, from, dst, to, "switch_reduce");
    const std::size_t elem = size_of(reduction().type);
    if (from.offset % elem != 0 || from.bytes % elem != 0) {
      throw InputError("plan: switch_reduce of a region that is not a whole number of " +
                       std::string(to_string(reduction().type)) + " elements");
    }
    return add({OpKind::switch_reduce, RecvAction::copy, dst, dst, from, to, 0, 0}, deps, group);
  }
  OpId multicast(int src, Region from, std::span<const int> group, Region to,
                 std::span<const OpId> deps) {
    check_switch_group(group, to, src, from, "multicast");
    return add({OpKind::multicast, RecvAction::copy, src, src, from, to, 0, 0}, deps, group);
  }

  // ---- StepRepeatingBackend ---------------------------------------------------------------
  [[nodiscard]] bool repeats_steps() const { return target_.repeats_steps; }
  /// Operations [first, last posted] are one step that `more` identical steps follow.
  void repeat_step(OpId first, std::uint32_t more) {
    if (!target_.repeats_steps)
      throw LogicError("plan: repeat_step on a plan whose target does not repeat steps");
    if (first > posted_)
      throw LogicError("plan: repeat from operation " + std::to_string(first) +
                       ", which was never posted");
    record_repeat({first, static_cast<OpId>(posted_), more, false});
  }
  /// Operations [first, last posted] are one unit of a pipeline (one chunk through every
  /// stage) that `more` identical units follow, each a stage behind the one before, with
  /// up to `in_flight` units at once between hosts. Nothing posted later may depend on
  /// them.
  void repeat_pipeline_unit(OpId first, std::uint32_t more, std::uint32_t in_flight = 1) {
    if (!target_.repeats_steps)
      throw LogicError("plan: repeat_pipeline_unit on a plan whose target does not repeat steps");
    if (first >= posted_)
      throw LogicError("plan: a pipeline unit from operation " + std::to_string(first) +
                       ", which was never posted");
    if (in_flight == 0) throw LogicError("plan: a pipeline needs at least one unit in flight");
    record_repeat({first, static_cast<OpId>(posted_), more, true, in_flight});
  }

  /// Operations posted so far.
  [[nodiscard]] std::size_t posted() const { return posted_; }
  /// The plan so far (empty of operations when a sink takes them).
  [[nodiscard]] const Plan& plan() const { return plan_; }
  /// Ends the plan: `done` (what the algorithm returned) becomes each rank's completion.
  /// The builder is left with the same target and buffers and no operations.
  Plan build(const std::vector<Deps>& done) {
    plan_.set_completion(done);
    return take();
  }
  /// The plan posted so far, without completion operations; the builder keeps the
  /// buffers and starts a new plan.
  Plan take() {
    Plan out = std::move(plan_);
    plan_ = Plan(ranks(), out.reduction());
    for (std::size_t bytes : out.buffers()) plan_.add_buffer(bytes);
    posted_ = 0;
    return out;
  }
  void set_reduction(ReductionSpec r) {
    if (posted_ != 0) throw LogicError("plan: the reduction changes after operations were posted");
    Plan fresh(ranks(), r);
    for (std::size_t bytes : plan_.buffers()) fresh.add_buffer(bytes);
    plan_ = std::move(fresh);
  }

 private:
  /// A repeat goes where the operations went: to the sink, or into the plan.
  void record_repeat(const StepRepeat& r) {
    if (sink_ != nullptr)
      sink_->repeat(r);
    else
      plan_.add_repeat(r);
  }
  OpId add(const PlanOp& op, std::span<const OpId> deps, std::span<const int> group) {
    if (posted_ >= 0xfffffffeu) throw InputError("plan: more than 2^32 - 2 operations");
    for (OpId d : deps) {
      if (d >= posted_)
        throw LogicError("plan: dependency on operation " + std::to_string(d) +
                         ", not posted yet (" + std::to_string(posted_) + " posted)");
    }
    const auto id = static_cast<OpId>(posted_);
    if (sink_ != nullptr) {
      PlanOp copy = op;
      copy.group_size = static_cast<std::uint32_t>(group.size());
      sink_->add(id, copy, deps, group);
    } else {
      plan_.add(op, deps, group);
    }
    ++posted_;
    return id;
  }

  void check_rank(int rank, const char* what) const {
    if (rank < 0 || rank >= ranks()) {
      throw InputError(std::string("plan: ") + what + " rank " + std::to_string(rank) +
                       " does not exist");
    }
  }

  void check(int rank, const Region& r, const char* what) const {
    check_rank(rank, what);
    const auto buffers = plan_.buffers();
    if (r.buffer >= buffers.size() || r.offset + r.bytes > buffers[r.buffer] ||
        r.offset + r.bytes < r.offset) {
      throw InputError(std::string("plan: ") + what + " region [" + std::to_string(r.offset) +
                       ", +" + std::to_string(r.bytes) + ") is outside buffer " +
                       std::to_string(r.buffer));
    }
  }

  /// A switch operation's group: distinct ranks on one NVSwitch that reduces, `member`
  /// among them, regions of one size.
  void check_switch_group(std::span<const int> group, const Region& each, int member,
                          const Region& own, const char* what) const {
    const std::string op = std::string("plan: ") + what;
    if (group.empty()) throw InputError(op + " over an empty group");
    check(member, own, what);
    if (!switch_reduces(member))
      throw InputError(op + ": rank " + std::to_string(member) +
                       "'s NVSwitches do not reduce in the switch (no NVLS)");
    if (own.bytes != each.bytes)
      throw InputError(op + " with regions of " + std::to_string(each.bytes) + " and " +
                       std::to_string(own.bytes) + " bytes");
    const std::uint32_t domain = target_.switch_domain[static_cast<std::size_t>(member)];
    std::vector<int> sorted(group.begin(), group.end());
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
      throw InputError(op + ": a rank appears twice in the group");
    bool has_member = false;
    for (int r : group) {
      check(r, each, what);
      if (target_.switch_domain[static_cast<std::size_t>(r)] != domain) {
        throw InputError(op + ": ranks " + std::to_string(member) + " and " + std::to_string(r) +
                         " are not on the same NVSwitch");
      }
      has_member = has_member || r == member;
    }
    if (!has_member)
      throw InputError(op + ": rank " + std::to_string(member) + " is not in the group");
  }

  PlanTarget target_;
  Plan plan_;
  PlanSink* sink_;
  std::size_t posted_ = 0;
};

RAILCC_NAMESPACE_END
