// railcc/comm/waves.hpp: a rank's program issued in waves that every rank agrees on, for
// transports whose operations are queued on a stream rather than run as they become
// ready: NCCL, and several ranks sharing one device.
//
// Such a transport cannot wait for a step's dependencies on the host, step by step, as
// the host transports do (comm/tcp_transport.hpp): it queues the whole program at once,
// in an order where every step comes after what it waits for. NCCL adds a constraint: a
// send queued on a stream holds the stream until its receive is queued on the peer's, so
// two ranks that queue their halves of two transfers in opposite orders wait for each
// other for ever. Waves remove both problems:
//  - Wave L of a rank is its steps of level L (coll/projection.hpp, rule 6). A step's
//    dependencies have lower levels, so queuing waves in order on one stream keeps every
//    dependency, including those carried by other ranks (the level is the plan's).
//  - A wave's sends and receives are one group (ncclGroupStart/End), in operation order.
//    Both halves of a transfer have the transfer's level, so every rank's group L holds
//    exactly the halves that match the other ranks' groups L, and each peer pair's sends
//    and receives in the same order, which is how NCCL matches them. If all ranks have
//    finished their waves below L, every half of wave L is queued: by induction no wave
//    waits for ever.
//  - A receive that reduces lands in scratch memory, and is reduced into its region
//    after the group; so is a local step whose source overlaps its destination (an
//    in-place algorithm's shift), since neither a device copy nor a kernel may read what
//    it writes. The scratch of one wave is free again at the next, on the same stream.
// The price is that a wave starts only when the rank's previous wave has ended; chunks of
// one pipeline still overlap, since a pipeline's chunk c at step s is at level c + s.
//
// Lanes lift that price where the plan has channels. With `lanes` > 1 a step runs on
// lane channel % lanes: a stream of its own, and a communicator of its own for its sends
// and receives (NCCL runs one communicator's operations one after another, whatever
// their streams). A wave is then a rank's steps of one level on one lane, and each
// lane's waves are in level order on its stream. A wave waits for another lane (a mark
// there, an event on a GPU) only where one of its steps depends on a step of that lane,
// so one channel's reduction runs while another's transfer does. Every rank queues its
// waves in the same order, level then lane, which is the order NCCL needs to run
// operations of several communicators on one GPU without deadlock. Both halves of a
// transfer have its channel, hence its lane, so each lane's groups match as the single
// stream's did; and since a wave waits only for waves of lower levels, the induction
// above holds lane by lane. Lane 0 is the caller's stream: the other lanes start after a
// mark on it, and it waits for their last waves at the end, so a call is still one
// stream-ordered operation to its caller (and capturable in a CUDA graph, where that
// fork and join become graph edges).
//
// run_wave_front and run_wave_back queue one wave on one rank through two policies:
// `Memory` (copy, reduce, finish; host memory here, a device's in cuda/) and `Messages`
// (group_start, send, recv, group_end; NCCL, or a LocalExchange when several ranks run in
// one process). run_rank_waves queues a rank's whole program, lanes included, through a
// third, `Lanes`. run_ranks_in_waves runs several ranks' programs in one process that
// way: the single-device multi-rank executor, and on host memory the test of the rest.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "railcc/coll/backend.hpp"
#include "railcc/coll/projection.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/comm/host_steps.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

/// One wave of a rank: its steps of one level on one lane.
struct Wave {
  std::uint32_t level = 0;
  std::uint32_t lane = 0;
  std::uint32_t locals_first = 0;
  std::uint32_t locals_size = 0;
  std::uint32_t transfers_first = 0;
  std::uint32_t transfers_size = 0;
  std::uint32_t waits_first = 0;  ///< the marks it waits for (WaveSchedule::waits)
  std::uint32_t waits_size = 0;
  bool signals = false;  ///< a mark follows it, which a wave of another lane waits for
};

/// A rank's program as waves on lanes, with the scratch memory each step needs.
class WaveSchedule {
 public:
  static constexpr std::size_t no_scratch = ~std::size_t{0};
  /// Where scratch space of a step starts: a multiple of this, plus its destination's
  /// offset modulo 16, so that 16-byte vector loads line up with the destination's.
  static constexpr std::size_t scratch_alignment = 256;
  /// The most lanes a schedule takes (on NCCL each is a stream and a communicator on
  /// every GPU).
  static constexpr int max_lanes = 32;

  /// `lanes` streams (1: everything on the caller's, in level order).
  explicit WaveSchedule(const RankProgram& program, int lanes = 1)
      : lanes_(static_cast<std::uint32_t>(lanes)), scratch_(program.steps().size(), no_scratch) {
    const auto n = static_cast<std::uint32_t>(program.steps().size());
    if (!program.levelled())
      throw LogicError("wave schedule: rank " + std::to_string(program.rank()) +
                       "'s program has no levels (project it with levels)");
    if (lanes < 1 || lanes > max_lanes)
      throw LogicError("wave schedule: " + std::to_string(lanes) + " lanes (1 to " +
                       std::to_string(max_lanes) + ")");
    std::vector<std::uint32_t> order(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      const RankStep& s = program.step(i);
      if (s.kind != StepKind::local && s.kind != StepKind::send && s.kind != StepKind::recv)
        throw LogicError("wave schedule: operation " + std::to_string(s.op) + " is a " +
                         std::string(to_string(s.kind)) +
                         " step; switch operations (NVLS) do not run on this transport");
      for (std::uint32_t w : program.waits(i)) {
        if (program.step(w).level >= s.level)
          throw LogicError("wave schedule: operation " + std::to_string(s.op) + " at level " +
                           std::to_string(s.level) + " waits for operation " +
                           std::to_string(program.step(w).op) + " at level " +
                           std::to_string(program.step(w).level));
      }
      order[i] = i;
    }
    // Steps are in operation order already; a stable sort by (level, lane) keeps it
    // within a wave, and is the order every rank queues its waves in.
    auto key = [&](std::uint32_t i) {
      return std::uint64_t{program.step(i).level} << 32 | lane_of(program.step(i));
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](std::uint32_t a, std::uint32_t b) { return key(a) < key(b); });
    std::vector<std::uint32_t> wave_of(n);
    std::vector<std::size_t> lane_scratch(lanes_, 0);  // the most any wave of a lane uses
    for (std::uint32_t k = 0; k < n;) {
      Wave w;
      w.level = program.step(order[k]).level;
      w.lane = lane_of(program.step(order[k]));
      w.locals_first = static_cast<std::uint32_t>(locals_.size());
      w.transfers_first = static_cast<std::uint32_t>(transfers_.size());
      std::size_t cursor = 0;
      for (; k < n && program.step(order[k]).level == w.level &&
             lane_of(program.step(order[k])) == w.lane;
           ++k) {
        const std::uint32_t i = order[k];
        const RankStep& s = program.step(i);
        wave_of[i] = static_cast<std::uint32_t>(waves_.size());
        (s.kind == StepKind::local ? locals_ : transfers_).push_back(i);
        if (needs_scratch(s)) {
          cursor = (cursor + scratch_alignment - 1) / scratch_alignment * scratch_alignment;
          scratch_[i] = cursor + s.to.offset % 16;  // within the lane's area, placed below
          cursor = scratch_[i] + s.to.bytes;
        }
      }
      w.locals_size = static_cast<std::uint32_t>(locals_.size()) - w.locals_first;
      w.transfers_size = static_cast<std::uint32_t>(transfers_.size()) - w.transfers_first;
      lane_scratch[w.lane] = std::max(lane_scratch[w.lane], cursor);
      waves_.push_back(w);
    }
    // Each lane's scratch is an area of its own: lanes run at once.
    std::vector<std::size_t> lane_base(lanes_, 0);
    for (std::uint32_t l = 0; l < lanes_; ++l) {
      lane_base[l] = scratch_bytes_;
      scratch_bytes_ +=
          (lane_scratch[l] + scratch_alignment - 1) / scratch_alignment * scratch_alignment;
    }
    if (lanes_ == 1) scratch_bytes_ = lane_scratch[0];
    for (std::uint32_t i = 0; i < n; ++i) {
      if (scratch_[i] != no_scratch) scratch_[i] += lane_base[waves_[wave_of[i]].lane];
    }
    link_lanes(program, wave_of);
  }

  [[nodiscard]] int lanes() const { return static_cast<int>(lanes_); }
  /// The lane a step runs on.
  [[nodiscard]] std::uint32_t lane_of(const RankStep& s) const { return s.channel % lanes_; }
  /// The waves in the order they are queued: by level, then lane.
  [[nodiscard]] std::span<const Wave> waves() const { return waves_; }
  /// A wave's local steps, in operation order.
  [[nodiscard]] std::span<const std::uint32_t> locals(const Wave& w) const {
    return {locals_.data() + w.locals_first, w.locals_size};
  }
  /// A wave's sends and receives, in operation order: its group.
  [[nodiscard]] std::span<const std::uint32_t> transfers(const Wave& w) const {
    return {transfers_.data() + w.transfers_first, w.transfers_size};
  }
  /// The marks wave `w` waits for before it starts: the index of a wave of another lane
  /// (the mark after it), or `start`.
  [[nodiscard]] std::span<const std::size_t> waits(const Wave& w) const {
    return {waits_.data() + w.waits_first, w.waits_size};
  }
  /// The mark on lane 0 before the program, which the other lanes start after.
  [[nodiscard]] std::size_t start() const { return waves_.size(); }
  /// Whether lane 0 marks `start` (some other lane has work).
  [[nodiscard]] bool forks() const { return !joins_.empty(); }
  /// The waves (the last of each lane but 0) that lane 0 waits for at the end.
  [[nodiscard]] std::span<const std::size_t> joins() const { return joins_; }
  /// Where step `step`'s scratch starts, or no_scratch.
  [[nodiscard]] std::size_t scratch_offset(std::uint32_t step) const { return scratch_[step]; }
  /// The scratch memory the rank needs: per lane, the most any one wave uses.
  [[nodiscard]] std::size_t scratch_bytes() const { return scratch_bytes_; }

  /// A receive that reduces, or a local copy or reduction whose source overlaps its
  /// destination without being it.
  static bool needs_scratch(const RankStep& s) {
    if (s.op_kind == OpKind::finish) return false;
    if (s.kind == StepKind::recv) return s.action == RecvAction::reduce && s.to.bytes != 0;
    if (s.kind != StepKind::local || s.to.bytes == 0) return false;
    const bool same = s.from.buffer == s.to.buffer && s.from.offset == s.to.offset;
    return overlaps(s.from, s.to) && !same;
  }

 private:
  /// The marks between lanes: a wave waits for the latest wave of each other lane that
  /// one of its steps depends on (a lane's waves are in order on its stream, so a mark
  /// after a wave covers its lane's earlier waves too, and one already waited for on
  /// this lane need not be waited for again); the other lanes' first waves wait for
  /// `start`, and lane 0 for their last ones.
  void link_lanes(const RankProgram& program, const std::vector<std::uint32_t>& wave_of) {
    if (lanes_ == 1) return;
    constexpr std::size_t none = ~std::size_t{0};
    // waited[a * lanes + b]: the latest wave of lane b that lane a has waited for.
    std::vector<std::size_t> waited(std::size_t{lanes_} * lanes_, none);
    std::vector<std::size_t> last(lanes_, none);
    std::vector<std::size_t> need(lanes_);
    for (std::size_t k = 0; k < waves_.size(); ++k) {
      Wave& w = waves_[k];
      w.waits_first = static_cast<std::uint32_t>(waits_.size());
      if (w.lane != 0 && last[w.lane] == none) waits_.push_back(start());
      std::fill(need.begin(), need.end(), none);
      for (auto part : {locals(w), transfers(w)}) {
        for (std::uint32_t i : part) {
          for (std::uint32_t d : program.waits(i)) {
            const std::size_t dk = wave_of[d];
            const std::uint32_t dl = waves_[dk].lane;
            if (dl != w.lane && (need[dl] == none || dk > need[dl])) need[dl] = dk;
          }
        }
      }
      for (std::uint32_t l = 0; l < lanes_; ++l) {
        std::size_t& seen = waited[std::size_t{w.lane} * lanes_ + l];
        if (need[l] == none || (seen != none && need[l] <= seen)) continue;
        seen = need[l];
        waves_[need[l]].signals = true;
        waits_.push_back(need[l]);
      }
      w.waits_size = static_cast<std::uint32_t>(waits_.size()) - w.waits_first;
      last[w.lane] = k;
    }
    for (std::uint32_t l = 1; l < lanes_; ++l) {
      if (last[l] == none) continue;
      waves_[last[l]].signals = true;
      joins_.push_back(last[l]);
    }
  }

  std::uint32_t lanes_;
  std::vector<Wave> waves_;
  std::vector<std::uint32_t> locals_;
  std::vector<std::uint32_t> transfers_;
  std::vector<std::size_t> waits_;
  std::vector<std::size_t> joins_;
  std::vector<std::size_t> scratch_;
  std::size_t scratch_bytes_ = 0;
};

/// Queues wave `w`'s local steps, then its sends and receives as one group.
/// `Memory`: copy(dst, src, bytes) of regions that do not overlap; reduce(spec, dst, src,
/// count), dst = dst op src, with src either dst itself or apart from it;
/// finish(spec, buf, count, ranks). `Messages`: group_start(); send(src, bytes, peer, op);
/// recv(dst, bytes, peer, op); group_end().
template <class Memory, class Messages>
void run_wave_front(const RankProgram& program, const WaveSchedule& schedule, const Wave& w,
                    const RankBuffers& mem, std::byte* scratch, Memory& memory,
                    Messages& messages) {
  const ReductionSpec red = program.reduction();
  const std::size_t elem = size_of(red.type);
  for (std::uint32_t i : schedule.locals(w)) {
    const RankStep& s = program.step(i);
    std::byte* to = mem.at(s.to);
    if (s.op_kind == OpKind::finish) {
      memory.finish(red, to, s.to.bytes / elem, program.ranks());
      continue;
    }
    if (s.from.bytes != s.to.bytes)
      throw LogicError("wave step: a local step from " + std::to_string(s.from.bytes) +
                       " bytes into " + std::to_string(s.to.bytes));
    if (s.to.bytes == 0) continue;
    const std::byte* from = mem.at(s.from);
    if (schedule.scratch_offset(i) != WaveSchedule::no_scratch) {
      std::byte* spare = scratch + schedule.scratch_offset(i);
      memory.copy(spare, from, s.from.bytes);
      from = spare;
    }
    if (s.action == RecvAction::copy) {
      if (to != from) memory.copy(to, from, s.to.bytes);
    } else {
      memory.reduce(red, to, from, s.to.bytes / elem);
    }
  }
  const auto transfers = schedule.transfers(w);
  if (transfers.empty()) return;
  messages.group_start();
  for (std::uint32_t i : transfers) {
    const RankStep& s = program.step(i);
    if (s.kind == StepKind::send) {
      messages.send(mem.at(s.from), s.from.bytes, s.peer, s.op);
    } else {
      const std::size_t at = schedule.scratch_offset(i);
      messages.recv(at == WaveSchedule::no_scratch ? mem.at(s.to) : scratch + at, s.to.bytes,
                    s.peer, s.op);
    }
  }
  messages.group_end();
}

/// Queues what wave `w` does after its group: the reductions of what it received.
template <class Memory>
void run_wave_back(const RankProgram& program, const WaveSchedule& schedule, const Wave& w,
                   const RankBuffers& mem, std::byte* scratch, Memory& memory) {
  const ReductionSpec red = program.reduction();
  for (std::uint32_t i : schedule.transfers(w)) {
    const RankStep& s = program.step(i);
    if (s.kind != StepKind::recv || schedule.scratch_offset(i) == WaveSchedule::no_scratch)
      continue;
    memory.reduce(red, mem.at(s.to), scratch + schedule.scratch_offset(i),
                  s.to.bytes / size_of(red.type));
  }
}

/// Queues rank `program.rank()`'s whole program, wave after wave in the schedule's order,
/// each on its lane after the marks it waits for. `Lanes`: lane(l), later work goes on
/// lane l; signal(rank, mark), a mark named `mark` after the current lane's work so far;
/// wait(rank, mark), the current lane waits for that mark. With one lane only lane(0) is
/// called.
template <class Memory, class Messages, class Lanes>
void run_rank_waves(const RankProgram& program, const WaveSchedule& schedule,
                    const RankBuffers& mem, std::byte* scratch, Memory& memory, Messages& messages,
                    Lanes& lanes) {
  const int rank = program.rank();
  lanes.lane(0);
  if (schedule.forks()) lanes.signal(rank, schedule.start());
  const auto waves = schedule.waves();
  for (std::size_t k = 0; k < waves.size(); ++k) {
    const Wave& w = waves[k];
    lanes.lane(static_cast<int>(w.lane));
    for (std::size_t mark : schedule.waits(w)) lanes.wait(rank, mark);
    run_wave_front(program, schedule, w, mem, scratch, memory, messages);
    run_wave_back(program, schedule, w, mem, scratch, memory);
    if (w.signals) lanes.signal(rank, k);
  }
  lanes.lane(0);
  for (std::size_t mark : schedule.joins()) lanes.wait(rank, mark);
}

/// Lanes for a device with one stream: everything runs in order on it.
struct OneLane {
  void lane(int l) {
    if (l != 0) throw LogicError("waves: lane " + std::to_string(l) + " of a device with one");
  }
  void signal(int /*rank*/, std::size_t /*mark*/) {}
  void wait(int /*rank*/, std::size_t /*mark*/) {}
};

/// Host memory, for run_wave_front and run_wave_back.
struct HostMemory {
  void copy(std::byte* dst, const std::byte* src, std::size_t bytes) {
    std::memcpy(dst, src, bytes);
  }
  void reduce(ReductionSpec red, std::byte* dst, const std::byte* src, std::size_t count) {
    reduce_into(red.type, red.op, dst, src, count);
  }
  void finish(ReductionSpec red, std::byte* buf, std::size_t count, int ranks) {
    finish_reduction(red.type, red.op, buf, count, ranks);
  }
};

/// The messages of one wave of several ranks in one process: each rank's group is
/// recorded, then exchange() matches them as NCCL does (the k-th send from a to b with
/// the k-th receive on b from a) and copies each message. A send or receive without its
/// match, or a match of another operation or size, is a LogicError: the waves of the
/// programs disagree, and NCCL would hang on them.
class LocalExchange {
 public:
  /// The rank whose group is recorded next.
  void set_rank(int rank) { rank_ = rank; }
  void group_start() {}
  void group_end() {}
  void send(const std::byte* src, std::size_t bytes, int peer, OpId op) {
    sends_.push_back({rank_, peer, op, bytes, src, nullptr});
  }
  void recv(std::byte* dst, std::size_t bytes, int peer, OpId op) {
    recvs_.push_back({peer, rank_, op, bytes, nullptr, dst});
  }
  /// Matches this wave's messages, copies each through `memory`, and clears them.
  /// Returns the bytes moved.
  template <class Memory>
  std::size_t exchange(std::uint32_t level, Memory& memory) {
    // Stable sorts by (sender, receiver) keep each pair's messages in the order queued.
    auto by_pair = [](const Message& a, const Message& b) {
      return a.from != b.from ? a.from < b.from : a.to < b.to;
    };
    std::stable_sort(sends_.begin(), sends_.end(), by_pair);
    std::stable_sort(recvs_.begin(), recvs_.end(), by_pair);
    std::size_t moved = 0;
    std::size_t k = 0;
    for (; k < sends_.size() && k < recvs_.size(); ++k) {
      const Message& s = sends_[k];
      const Message& r = recvs_[k];
      if (s.from != r.from || s.to != r.to || s.op != r.op || s.bytes != r.bytes)
        throw LogicError("waves: at level " + std::to_string(level) + ", " + describe(s, "sends") +
                         " meets " + describe(r, "receives"));
      if (s.bytes != 0) memory.copy(r.dst, s.src, s.bytes);
      moved += s.bytes;
    }
    if (k < sends_.size() || k < recvs_.size()) {
      const bool send = k < sends_.size();
      throw LogicError("waves: at level " + std::to_string(level) + ", " +
                       describe(send ? sends_[k] : recvs_[k], send ? "sends" : "receives") +
                       " and nothing matches it");
    }
    sends_.clear();
    recvs_.clear();
    return moved;
  }

 private:
  struct Message {
    int from;
    int to;
    OpId op;
    std::size_t bytes;
    const std::byte* src;
    std::byte* dst;
  };
  static std::string describe(const Message& m, const char* verb) {
    return "operation " + std::to_string(m.op) + " (rank " + std::to_string(m.from) + " " + verb +
           " " + std::to_string(m.bytes) + " bytes to rank " + std::to_string(m.to) + ")";
  }
  int rank_ = 0;
  std::vector<Message> sends_;
  std::vector<Message> recvs_;
};

/// What run_ranks_in_waves did.
struct WaveRunStats {
  std::size_t waves = 0;  ///< (level, lane) pairs with work on some rank
  std::size_t messages = 0;
  std::size_t bytes = 0;
};

/// Runs every rank's program in one process, wave by wave: for each (level, lane), every
/// rank's wave of it after the marks it waits for, its local steps and group, then the
/// groups' messages as copies, then every rank's reductions of what it received, all on
/// that lane (through `lanes`, as in run_rank_waves; the lanes are shared by the ranks).
/// `programs[r]` is rank r's, with levels; `mem[r]` its buffers and `scratch[r]` at least
/// its schedule's scratch_bytes() (`schedules[r]`, all with the same lanes).
template <class Memory, class Lanes>
WaveRunStats run_ranks_in_waves(std::span<const RankProgram> programs,
                                std::span<const WaveSchedule> schedules,
                                std::span<const RankBuffers> mem,
                                std::span<std::byte* const> scratch, Memory& memory, Lanes& lanes) {
  const std::size_t p = programs.size();
  if (schedules.size() != p || mem.size() != p || scratch.size() != p)
    throw LogicError("waves: " + std::to_string(p) + " programs, " +
                     std::to_string(schedules.size()) + " schedules, " +
                     std::to_string(mem.size()) + " memories and " +
                     std::to_string(scratch.size()) + " scratch areas");
  for (std::size_t r = 0; r < p; ++r) {
    if (programs[r].rank() != static_cast<int>(r) || programs[r].ranks() != static_cast<int>(p))
      throw LogicError("waves: program " + std::to_string(r) + " is rank " +
                       std::to_string(programs[r].rank()) + " of " +
                       std::to_string(programs[r].ranks()));
    if (schedules[r].lanes() != schedules[0].lanes())
      throw LogicError("waves: rank " + std::to_string(r) + "'s schedule has " +
                       std::to_string(schedules[r].lanes()) + " lanes, rank 0's " +
                       std::to_string(schedules[0].lanes()));
  }
  WaveRunStats stats;
  LocalExchange exchange;
  lanes.lane(0);
  for (std::size_t r = 0; r < p; ++r) {
    if (schedules[r].forks()) lanes.signal(static_cast<int>(r), schedules[r].start());
  }
  std::vector<std::size_t> next(p, 0);  // each rank's next wave
  auto key = [](const Wave& w) { return std::uint64_t{w.level} << 32 | w.lane; };
  for (;;) {
    // The first (level, lane) any rank still has.
    bool any = false;
    std::uint64_t first = 0;
    for (std::size_t r = 0; r < p; ++r) {
      const auto waves = schedules[r].waves();
      if (next[r] == waves.size()) continue;
      if (!any || key(waves[next[r]]) < first) first = key(waves[next[r]]);
      any = true;
    }
    if (!any) break;
    const auto level = static_cast<std::uint32_t>(first >> 32);
    lanes.lane(static_cast<int>(first & 0xffffffffu));
    std::vector<std::size_t> here;
    for (std::size_t r = 0; r < p; ++r) {
      const auto waves = schedules[r].waves();
      if (next[r] == waves.size() || key(waves[next[r]]) != first) continue;
      here.push_back(r);
      const Wave& w = waves[next[r]];
      for (std::size_t mark : schedules[r].waits(w)) lanes.wait(static_cast<int>(r), mark);
      exchange.set_rank(static_cast<int>(r));
      run_wave_front(programs[r], schedules[r], w, mem[r], scratch[r], memory, exchange);
      stats.messages += schedules[r].transfers(w).size();
    }
    stats.bytes += exchange.exchange(level, memory);
    for (std::size_t r : here) {
      const Wave& w = schedules[r].waves()[next[r]];
      run_wave_back(programs[r], schedules[r], w, mem[r], scratch[r], memory);
      if (w.signals) lanes.signal(static_cast<int>(r), next[r]);
      ++next[r];
    }
    ++stats.waves;
  }
  lanes.lane(0);
  for (std::size_t r = 0; r < p; ++r) {
    for (std::size_t mark : schedules[r].joins()) lanes.wait(static_cast<int>(r), mark);
  }
  stats.messages /= 2;  // each counted by its sender and its receiver
  return stats;
}

/// run_ranks_in_waves on one lane.
template <class Memory>
WaveRunStats run_ranks_in_waves(std::span<const RankProgram> programs,
                                std::span<const WaveSchedule> schedules,
                                std::span<const RankBuffers> mem,
                                std::span<std::byte* const> scratch, Memory& memory) {
  OneLane one;
  return run_ranks_in_waves(programs, schedules, mem, scratch, memory, one);
}

RAILCC_NAMESPACE_END
