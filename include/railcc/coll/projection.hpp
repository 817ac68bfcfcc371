// railcc/coll/projection.hpp: one rank's share of a plan, for backends that run one rank.
//
// A plan (plan.hpp) is written in the global view. A backend that runs one rank (the
// in-process backend's threads; MPI, NCCL and CUDA backends) executes that rank's
// projection: a RankProgram of steps, each the rank's piece of one plan operation, that
// waits only for the rank's own earlier steps and for messages. The rules:
//
//  1. Pieces. Every operation has exactly one step on every rank it involves:
//     - local, finish, and a transfer within one rank: a `local` step;
//     - a transfer from a to b: a `send` on a and a `recv` on b;
//     - a switch_reduce into d over group G: a `send` on every other member and a
//       `combine` on d, which receives the members' data and reduces it in group order;
//     - a multicast from s over G: a `multicast_root` on s and a `multicast_member` on
//       every other member.
//  2. Tags. A message is matched by (source, destination, tag) alone, and the tag is
//     (operation id, piece), which both sides derive from the plan: for a transfer, piece
//     0 is the data and 1 the acknowledgement; for a switch operation over n ranks the
//     member at position i of the group uses piece i for what it sends first (its data
//     to the combine; its readiness to the multicast's root), n + i for the data the
//     root sends it (multicast) or the acknowledgement (switch_reduce), and 2n + i for
//     its acknowledgement of a multicast's data.
//  3. Start. A step starts once the rank's steps of every dependency that involves the
//     rank have completed. A dependency that involves another of the operation's ranks
//     is carried by a message: a receive completes only after the sender's step started,
//     and the sender's step starts after the sender's dependencies; a multicast's root
//     sends only once every member has signalled that its dependencies are done. A
//     dependency that involves none of the operation's ranks could only be honoured by a
//     message the plan does not have: the projection refuses it with a LogicError naming
//     both operations, never drops it.
//  4. Completion. A step completes only when its operation has written everything it
//     writes: a send when its receiver has acknowledged the data, a multicast root when
//     every member has. So a rank that waits for an operation, on any of its pieces,
//     waits for all of the operation's effects, and every chain of dependencies in the
//     plan orders the same reads and writes in the projection.
//  5. Cost. project(plan, index, rank) reads only the rank's operations and their
//     dependencies (PlanIndex lists each rank's operations): time and memory grow with
//     the rank's share, not with the ranks times the steps. A plan that repeats steps
//     (built for the simulator's steps mode) has not posted every step and cannot be
//     projected.
//  6. Levels. An operation's level is 0 without dependencies, else one more than its
//     deepest dependency's: the same on every rank, since it is the plan's. A backend
//     that issues a rank's steps in waves all ranks agree on (NCCL's groups, where a
//     send waits for its receive to be posted) issues level by level (comm/waves.hpp).
//     project() always fills them; project_posted() when asked, since it must then keep
//     every operation's level (2 bytes while they fit in 16 bits, LevelTable), not only
//     the rank's.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "railcc/coll/backend.hpp"
#include "railcc/coll/plan.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

enum class StepKind : std::uint8_t { local, send, recv, combine, multicast_root, multicast_member };

constexpr std::string_view to_string(StepKind k) {
  switch (k) {
    case StepKind::local: return "local";
    case StepKind::send: return "send";
    case StepKind::recv: return "recv";
    case StepKind::combine: return "combine";
    case StepKind::multicast_root: return "multicast_root";
    case StepKind::multicast_member: return "multicast_member";
  }
  return "?";
}

/// What matches a message: the plan operation and the piece of it (rule 2).
struct MessageTag {
  OpId op = 0;
  std::uint32_t piece = 0;
  [[nodiscard]] constexpr std::uint64_t packed() const { return std::uint64_t{op} << 32 | piece; }
  friend constexpr bool operator==(const MessageTag&, const MessageTag&) = default;
};

/// One rank's piece of one plan operation.
struct RankStep {
  StepKind kind = StepKind::local;
  /// local and recv: copy or reduce into `to`. The plan operation's own kind says more
  /// (a local step of a finish operation finishes the reduction).
  RecvAction action = RecvAction::copy;
  OpKind op_kind = OpKind::local;
  OpId op = 0;    ///< the plan operation (tags derive from it)
  int peer = -1;  ///< send: the receiver; recv: the sender; switch steps: the root
  Region from;    ///< what the step reads on this rank
  Region to;      ///< what it writes on this rank
  std::uint32_t channel = 0;
  std::uint32_t qp = 0;
  std::uint32_t position = 0;  ///< switch operations: this rank's place in the group
  std::uint32_t level = 0;     ///< the operation's level (rule 6)
  std::uint32_t waits_first = 0;
  std::uint32_t waits_size = 0;
  std::uint32_t group_first = 0;
  std::uint32_t group_size = 0;
};

/// Tags of the pieces of operation `op` (rule 2).
struct PieceTags {
  /// Transfer: the data, then its acknowledgement.
  static constexpr MessageTag transfer_data(OpId op) { return {op, 0}; }
  static constexpr MessageTag transfer_ack(OpId op) { return {op, 1}; }
  /// Switch operations over `n` ranks, for the member at `position`.
  static constexpr MessageTag member_first(OpId op, std::uint32_t position) {
    return {op, position};
  }
  static constexpr MessageTag root_to_member(OpId op, std::uint32_t n, std::uint32_t position) {
    return {op, n + position};
  }
  static constexpr MessageTag member_ack(OpId op, std::uint32_t n, std::uint32_t position) {
    return {op, 2 * n + position};
  }
};

/// A rank's program: its steps in plan order and what each waits for.
class RankProgram {
 public:
  RankProgram() = default;
  RankProgram(int rank, int ranks, ReductionSpec reduction)
      : rank_(rank), ranks_(ranks), reduction_(reduction) {}
  RankProgram(int rank, const Plan& plan) : RankProgram(rank, plan.ranks(), plan.reduction()) {
    set_buffers(plan.buffers());
  }

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int ranks() const { return ranks_; }
  [[nodiscard]] ReductionSpec reduction() const { return reduction_; }
  [[nodiscard]] std::span<const std::size_t> buffers() const { return buffers_; }
  [[nodiscard]] std::span<const RankStep> steps() const { return steps_; }
  [[nodiscard]] const RankStep& step(std::size_t i) const { return steps_[i]; }
  /// Earlier steps of this rank that step i starts after.
  [[nodiscard]] std::span<const std::uint32_t> waits(std::size_t i) const {
    return {waits_.data() + steps_[i].waits_first, steps_[i].waits_size};
  }
  /// A switch step's group, in the order the plan gives it.
  [[nodiscard]] std::span<const int> group(std::size_t i) const {
    return {groups_.data() + steps_[i].group_first, steps_[i].group_size};
  }
  /// Steps after which this rank's output is final.
  [[nodiscard]] std::span<const std::uint32_t> completion() const { return completion_; }
  /// Whether the steps carry their operations' levels (rule 6).
  [[nodiscard]] bool levelled() const { return levelled_; }
  /// The step of plan operation `op` on this rank, if it has one.
  [[nodiscard]] std::uint32_t step_of(OpId op) const {
    const auto it = std::lower_bound(steps_.begin(), steps_.end(), op,
                                     [](const RankStep& s, OpId o) { return s.op < o; });
    return it != steps_.end() && it->op == op ? static_cast<std::uint32_t>(it - steps_.begin())
                                              : none;
  }
  static constexpr std::uint32_t none = 0xffffffffu;

  /// Bytes the program holds (steps, waits, groups): what a projection costs in memory.
  [[nodiscard]] std::size_t memory_bytes() const {
    return steps_.capacity() * sizeof(RankStep) + waits_.capacity() * sizeof(std::uint32_t) +
           groups_.capacity() * sizeof(int) + completion_.capacity() * sizeof(std::uint32_t) +
           buffers_.capacity() * sizeof(std::size_t);
  }

  // ---- building (project() fills it) ------------------------------------------------------
  void add(RankStep s, std::span<const std::uint32_t> waits, std::span<const int> group) {
    s.waits_first = static_cast<std::uint32_t>(waits_.size());
    s.waits_size = static_cast<std::uint32_t>(waits.size());
    waits_.insert(waits_.end(), waits.begin(), waits.end());
    s.group_first = static_cast<std::uint32_t>(groups_.size());
    s.group_size = static_cast<std::uint32_t>(group.size());
    groups_.insert(groups_.end(), group.begin(), group.end());
    steps_.push_back(s);
  }
  void add_completion(std::uint32_t step) { completion_.push_back(step); }
  void set_levelled() { levelled_ = true; }
  void set_buffers(std::span<const std::size_t> bytes) {
    buffers_.assign(bytes.begin(), bytes.end());
  }

 private:
  int rank_ = 0;
  int ranks_ = 0;
  ReductionSpec reduction_;
  std::vector<std::size_t> buffers_;
  std::vector<RankStep> steps_;
  std::vector<std::uint32_t> waits_;
  std::vector<int> groups_;
  std::vector<std::uint32_t> completion_;
  bool levelled_ = false;
};

/// Every operation's level (rule 6), in plan order: 2 bytes each while every level fits
/// in 16 bits, 4 from the first one that does not. Levels grow with a plan's steps, not
/// with its ranks, so the plans of a hundred thousand GPUs, with hundreds of millions of
/// operations, mostly keep 2 bytes each.
class LevelTable {
 public:
  void push_back(std::uint32_t level) {
    if (!wide_mode_ && level > 0xffffu) {
      wide_.assign(narrow_.begin(), narrow_.end());
      narrow_ = {};  // frees it
      wide_mode_ = true;
    }
    if (wide_mode_)
      wide_.push_back(level);
    else
      narrow_.push_back(static_cast<std::uint16_t>(level));
  }
  [[nodiscard]] std::uint32_t operator[](std::size_t i) const {
    return wide_mode_ ? wide_[i] : narrow_[i];
  }
  [[nodiscard]] std::size_t size() const { return wide_mode_ ? wide_.size() : narrow_.size(); }
  void reserve(std::size_t n) {
    if (!wide_mode_) narrow_.reserve(n);
  }
  /// Whether it holds 4 bytes a level.
  [[nodiscard]] bool wide() const { return wide_mode_; }

 private:
  bool wide_mode_ = false;
  std::vector<std::uint16_t> narrow_;
  std::vector<std::uint32_t> wide_;
};

/// Each rank's operations, so that projecting one rank reads only its share of the plan.
/// Built once per plan in time and memory proportional to the plan.
class PlanIndex {
 public:
  explicit PlanIndex(const Plan& plan) {
    const auto p = static_cast<std::size_t>(plan.ranks());
    std::vector<std::size_t> count(p + 1, 0);
    auto each_rank = [&](OpId id, auto&& fn) {
      const PlanOp& o = plan.op(id);
      const auto group = plan.group(id);
      fn(o.src);
      if (o.dst != o.src) fn(o.dst);
      for (int r : group) {
        if (r != o.src && r != o.dst) fn(r);
      }
    };
    for (OpId id = 0; id < plan.size(); ++id)
      each_rank(id, [&](int r) { ++count[static_cast<std::size_t>(r) + 1]; });
    for (std::size_t r = 0; r < p; ++r) count[r + 1] += count[r];
    begin_ = count;
    ops_.resize(count[p]);
    for (OpId id = 0; id < plan.size(); ++id)
      each_rank(id, [&](int r) { ops_[count[static_cast<std::size_t>(r)]++] = id; });
    // Dependencies are earlier operations, so one pass in plan order levels them all.
    levels_.reserve(plan.size());
    for (OpId id = 0; id < plan.size(); ++id) {
      std::uint32_t level = 0;
      for (OpId d : plan.deps(id)) level = std::max(level, levels_[d] + 1);
      levels_.push_back(level);
    }
  }
  /// Rank `rank`'s operations in plan order.
  [[nodiscard]] std::span<const OpId> ops_of(int rank) const {
    const auto r = static_cast<std::size_t>(rank);
    return {ops_.data() + begin_[r], ops_.data() + begin_[r + 1]};
  }
  /// Operation `id`'s level (rule 6).
  [[nodiscard]] std::uint32_t level(OpId id) const { return levels_[id]; }

 private:
  std::vector<std::size_t> begin_;
  std::vector<OpId> ops_;
  LevelTable levels_;
};

namespace detail::projection {

/// Whether some rank of operation `id` is involved in operation `dep`.
inline bool shares_a_rank(const Plan& plan, OpId id, OpId dep) {
  const PlanOp& o = plan.op(id);
  if (plan.involves(dep, o.src) || plan.involves(dep, o.dst)) return true;
  for (int r : plan.group(id)) {
    if (plan.involves(dep, r)) return true;
  }
  return false;
}

}  // namespace detail::projection

namespace detail::projection {

/// Rank `rank`'s step of operation `id` (rule 1), waiting for `waits`.
inline void add_step(RankProgram& program, int rank, OpId id, const PlanOp& o,
                     std::span<const int> group, std::vector<std::uint32_t>& waits,
                     std::uint32_t level) {
  std::sort(waits.begin(), waits.end());
  waits.erase(std::unique(waits.begin(), waits.end()), waits.end());
  RankStep step;
  step.op = id;
  step.op_kind = o.kind;
  step.action = o.action;
  step.channel = o.channel;
  step.qp = o.qp;
  step.from = o.from;
  step.to = o.to;
  step.level = level;
  std::span<const int> step_group;
  switch (o.kind) {
    case OpKind::local:
    case OpKind::input_copy:
    case OpKind::finish: step.kind = StepKind::local; break;
    case OpKind::transfer:
      if (o.src == o.dst) {
        step.kind = StepKind::local;
      } else if (o.src == rank) {
        step.kind = StepKind::send;
        step.peer = o.dst;
      } else {
        step.kind = StepKind::recv;
        step.peer = o.src;
      }
      break;
    case OpKind::switch_reduce:
    case OpKind::multicast: {
      const auto at = std::find(group.begin(), group.end(), rank);
      step.position = static_cast<std::uint32_t>(at - group.begin());
      step.peer = o.kind == OpKind::switch_reduce ? o.dst : o.src;
      step_group = group;
      if (o.kind == OpKind::switch_reduce)
        step.kind = rank == o.dst ? StepKind::combine : StepKind::send;
      else
        step.kind = rank == o.src ? StepKind::multicast_root : StepKind::multicast_member;
      break;
    }
  }
  program.add(step, waits, step_group);
}

inline void check_projectable(int rank, int ranks, bool repeats) {
  if (rank < 0 || rank >= ranks)
    throw InputError("projection: rank " + std::to_string(rank) + " is not in a plan of " +
                     std::to_string(ranks) + " ranks");
  if (repeats)
    throw InputError(
        "projection: the plan repeats steps (it was built for the simulator's steps mode); "
        "build it with every step posted to run it on ranks");
}

inline std::string describe(const PlanOp& o, OpId id, std::span<const int> group) {
  std::string s = "operation " + std::to_string(id) + " (" + std::string(to_string(o.kind));
  if (o.kind == OpKind::transfer) {
    s += " " + std::to_string(o.src) + " -> " + std::to_string(o.dst);
  } else if (o.kind == OpKind::local || o.kind == OpKind::input_copy || o.kind == OpKind::finish) {
    s += " on rank " + std::to_string(o.src);
  } else {
    s += " over ranks";
    for (int r : group) s += " " + std::to_string(r);
  }
  return s + ")";
}

inline std::string describe(const Plan& plan, OpId id) {
  return describe(plan.op(id), id, plan.group(id));
}

inline LogicError not_carried(const std::string& op, const std::string& dep) {
  return LogicError("projection: " + op + " depends on " + dep +
                    ", which involves none of its ranks: no message carries that dependency");
}

}  // namespace detail::projection

/// Rank `rank`'s program (rules above), reading only the operations `index` lists for it.
inline RankProgram project(const Plan& plan, const PlanIndex& index, int rank) {
  using namespace detail::projection;
  check_projectable(rank, plan.ranks(), !plan.repeats().empty());
  RankProgram program(rank, plan);
  program.set_levelled();
  std::vector<std::uint32_t> waits;
  for (OpId id : index.ops_of(rank)) {
    waits.clear();
    for (OpId dep : plan.deps(id)) {
      const std::uint32_t s = program.step_of(dep);
      if (s != RankProgram::none) {
        waits.push_back(s);
      } else if (!shares_a_rank(plan, id, dep)) {
        throw not_carried(describe(plan, id), describe(plan, dep));
      }
    }
    add_step(program, rank, id, plan.op(id), plan.group(id), waits, index.level(id));
  }
  for (OpId id : plan.completion(rank)) {
    const std::uint32_t s = program.step_of(id);
    if (s == RankProgram::none)
      throw LogicError("projection: rank " + std::to_string(rank) + " completes after " +
                       describe(plan, id) + ", which does not involve it");
    program.add_completion(s);
  }
  return program;
}

/// Rank `rank`'s program; builds a PlanIndex first. To project many ranks of one plan,
/// build the index once.
inline RankProgram project(const Plan& plan, int rank) {
  return project(plan, PlanIndex(plan), rank);
}

namespace detail::projection {

inline bool names(const PlanOp& o, std::span<const int> group, int rank) {
  return o.src == rank || o.dst == rank ||
         std::find(group.begin(), group.end(), rank) != group.end();
}

/// project_posted's first pass: the ranks `me` shares an operation with.
class PeerFinder final : public PlanSink {
 public:
  explicit PeerFinder(int me) : me_(me) {}
  void add(OpId, const PlanOp& o, std::span<const OpId>, std::span<const int> group) override {
    if (!names(o, group, me_)) return;
    peers_.push_back(o.src);
    peers_.push_back(o.dst);
    peers_.insert(peers_.end(), group.begin(), group.end());
    if (peers_.size() > 4096) tidy();
  }
  void repeat(const StepRepeat&) override {}
  /// The peers, sorted (me among them).
  std::vector<int> take() {
    tidy();
    return std::move(peers_);
  }

 private:
  void tidy() {
    std::sort(peers_.begin(), peers_.end());
    peers_.erase(std::unique(peers_.begin(), peers_.end()), peers_.end());
  }
  int me_;
  std::vector<int> peers_;
};

/// project_posted's second pass: `me`'s steps; for the other operations, which of the
/// peers they involve, which is all rule 3 needs to know of them.
class SliceRecorder final : public PlanSink {
 public:
  SliceRecorder(int me, std::vector<int> peers, RankProgram& program, bool levels)
      : me_(me), peers_(std::move(peers)), program_(program), levels_on_(levels) {}

  void add(OpId id, const PlanOp& o, std::span<const OpId> deps,
           std::span<const int> group) override {
    std::uint32_t level = 0;
    if (levels_on_) {
      if (id != levels_.size())
        throw LogicError("projection: operation " + std::to_string(id) + " posted after " +
                         std::to_string(levels_.size()) + " operations");
      for (OpId d : deps) level = std::max(level, levels_[d] + 1);
      levels_.push_back(level);
    }
    if (!names(o, group, me_)) {
      std::vector<int> seen;
      auto note = [&](int r) {
        if (std::binary_search(peers_.begin(), peers_.end(), r) &&
            std::find(seen.begin(), seen.end(), r) == seen.end())
          seen.push_back(r);
      };
      note(o.src);
      note(o.dst);
      for (int r : group) note(r);
      if (!seen.empty()) others_.emplace(id, std::move(seen));
      return;
    }
    waits_.clear();
    for (OpId dep : deps) {
      const std::uint32_t s = program_.step_of(dep);
      if (s != RankProgram::none) {
        waits_.push_back(s);
        continue;
      }
      const auto it = others_.find(dep);
      bool carried = false;
      if (it != others_.end()) {
        for (int r : it->second) carried = carried || names(o, group, r);
      }
      if (!carried) throw not_carried(describe(o, id, group), "operation " + std::to_string(dep));
    }
    add_step(program_, me_, id, o, group, waits_, level);
  }
  void repeat(const StepRepeat&) override {}

 private:
  int me_;
  std::vector<int> peers_;
  RankProgram& program_;
  std::unordered_map<OpId, std::vector<int>> others_;
  std::vector<std::uint32_t> waits_;
  bool levels_on_;
  LevelTable levels_;  // every operation's, when levels_on_
};

}  // namespace detail::projection

/// Rank `rank`'s program straight from the algorithm, without the plan ever existing:
/// `post(builder)` allocates the call's buffers, posts it on the builder and returns what
/// the algorithm returned (every rank's completion). It runs twice: once to learn the
/// rank's peers (the ranks it shares an operation with), once to keep the rank's steps
/// and, to check rule 3, which of its peers each other operation involves. Memory grows
/// with the rank's operations and its peers' (not with ranks times steps); time with
/// the operations the algorithm posts, since algorithms enumerate every rank's share.
/// With `levels`, the steps carry their levels (rule 6), at 2 bytes per operation of the
/// plan while projecting (4 once a level passes 65,535).
template <class Post>
RankProgram project_posted(const PlanTarget& target, ReductionSpec reduction, int rank, Post&& post,
                           bool levels = false) {
  using namespace detail::projection;
  check_projectable(rank, static_cast<int>(target.placement.size()), false);
  PlanTarget each = target;
  each.repeats_steps = false;  // every step posted
  PeerFinder finder(rank);
  {
    PlanBuilder builder(each, reduction, &finder);
    post(builder);
  }
  RankProgram program(rank, static_cast<int>(each.placement.size()), reduction);
  SliceRecorder recorder(rank, finder.take(), program, levels);
  if (levels) program.set_levelled();
  PlanBuilder streaming(each, reduction, &recorder);
  const std::vector<Deps> done = post(streaming);
  program.set_buffers(streaming.plan().buffers());
  if (done.size() != each.placement.size())
    throw LogicError("projection: the algorithm returned completion for " +
                     std::to_string(done.size()) + " ranks of " +
                     std::to_string(each.placement.size()));
  for (OpId id : done[static_cast<std::size_t>(rank)]) {
    const std::uint32_t s = program.step_of(id);
    if (s == RankProgram::none)
      throw LogicError("projection: rank " + std::to_string(rank) + " completes after operation " +
                       std::to_string(id) + ", which does not involve it");
    program.add_completion(s);
  }
  return program;
}

RAILCC_NAMESPACE_END
