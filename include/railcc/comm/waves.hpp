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
// run_wave_front and run_wave_back queue one wave on one rank through two policies:
// `Memory` (copy, reduce, finish; host memory here, a device's in cuda/) and `Messages`
// (group_start, send, recv, group_end; NCCL, or a LocalExchange when several ranks run in
// one process). run_ranks_in_waves runs several ranks' programs in one process that way:
// the single-device multi-rank executor, and on host memory the test of the rest.
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

/// One wave of a rank: its steps of one level.
struct Wave {
  std::uint32_t level = 0;
  std::uint32_t locals_first = 0;
  std::uint32_t locals_size = 0;
  std::uint32_t transfers_first = 0;
  std::uint32_t transfers_size = 0;
};

/// A rank's program as waves, with the scratch memory each step needs.
class WaveSchedule {
 public:
  static constexpr std::size_t no_scratch = ~std::size_t{0};
  /// Where scratch space of a step starts: a multiple of this, plus its destination's
  /// offset modulo 16, so that 16-byte vector loads line up with the destination's.
  static constexpr std::size_t scratch_alignment = 256;

  explicit WaveSchedule(const RankProgram& program) : scratch_(program.steps().size(), no_scratch) {
    const auto n = static_cast<std::uint32_t>(program.steps().size());
    if (!program.levelled())
      throw LogicError("wave schedule: rank " + std::to_string(program.rank()) +
                       "'s program has no levels (project it with levels)");
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
    // Steps are in operation order already; a stable sort by level keeps it within a wave.
    std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      return program.step(a).level < program.step(b).level;
    });
    for (std::uint32_t k = 0; k < n;) {
      Wave w;
      w.level = program.step(order[k]).level;
      w.locals_first = static_cast<std::uint32_t>(locals_.size());
      w.transfers_first = static_cast<std::uint32_t>(transfers_.size());
      std::size_t cursor = 0;
      for (; k < n && program.step(order[k]).level == w.level; ++k) {
        const std::uint32_t i = order[k];
        const RankStep& s = program.step(i);
        (s.kind == StepKind::local ? locals_ : transfers_).push_back(i);
        if (needs_scratch(s)) {
          cursor = (cursor + scratch_alignment - 1) / scratch_alignment * scratch_alignment;
          scratch_[i] = cursor + s.to.offset % 16;
          cursor = scratch_[i] + s.to.bytes;
        }
      }
      w.locals_size = static_cast<std::uint32_t>(locals_.size()) - w.locals_first;
      w.transfers_size = static_cast<std::uint32_t>(transfers_.size()) - w.transfers_first;
      scratch_bytes_ = std::max(scratch_bytes_, cursor);
      waves_.push_back(w);
    }
  }

  [[nodiscard]] std::span<const Wave> waves() const { return waves_; }
  /// A wave's local steps, in operation order.
  [[nodiscard]] std::span<const std::uint32_t> locals(const Wave& w) const {
    return {locals_.data() + w.locals_first, w.locals_size};
  }
  /// A wave's sends and receives, in operation order: its group.
  [[nodiscard]] std::span<const std::uint32_t> transfers(const Wave& w) const {
    return {transfers_.data() + w.transfers_first, w.transfers_size};
  }
  /// Where step `step`'s scratch starts, or no_scratch.
  [[nodiscard]] std::size_t scratch_offset(std::uint32_t step) const { return scratch_[step]; }
  /// The scratch memory the rank needs: the most any one wave uses.
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
  std::vector<Wave> waves_;
  std::vector<std::uint32_t> locals_;
  std::vector<std::uint32_t> transfers_;
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
  std::size_t waves = 0;  ///< levels with work on some rank
  std::size_t messages = 0;
  std::size_t bytes = 0;
};

/// Runs every rank's program in one process, wave by wave: at each level, every rank's
/// local steps and group, then the group's messages as copies, then every rank's
/// reductions of what it received. `programs[r]` is rank r's, with levels; `mem[r]` its
/// buffers and `scratch[r]` at least its schedule's scratch_bytes() (`schedules[r]`).
template <class Memory>
WaveRunStats run_ranks_in_waves(std::span<const RankProgram> programs,
                                std::span<const WaveSchedule> schedules,
                                std::span<const RankBuffers> mem,
                                std::span<std::byte* const> scratch, Memory& memory) {
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
  }
  WaveRunStats stats;
  LocalExchange exchange;
  std::vector<std::size_t> next(p, 0);  // each rank's next wave
  for (;;) {
    // The lowest level any rank still has.
    bool any = false;
    std::uint32_t level = 0;
    for (std::size_t r = 0; r < p; ++r) {
      const auto waves = schedules[r].waves();
      if (next[r] == waves.size()) continue;
      if (!any || waves[next[r]].level < level) level = waves[next[r]].level;
      any = true;
    }
    if (!any) break;
    std::vector<std::size_t> here;
    for (std::size_t r = 0; r < p; ++r) {
      const auto waves = schedules[r].waves();
      if (next[r] == waves.size() || waves[next[r]].level != level) continue;
      here.push_back(r);
      exchange.set_rank(static_cast<int>(r));
      run_wave_front(programs[r], schedules[r], waves[next[r]], mem[r], scratch[r], memory,
                     exchange);
      stats.messages += schedules[r].transfers(waves[next[r]]).size();
    }
    stats.bytes += exchange.exchange(level, memory);
    for (std::size_t r : here) {
      run_wave_back(programs[r], schedules[r], schedules[r].waves()[next[r]], mem[r], scratch[r],
                    memory);
      ++next[r];
    }
    ++stats.waves;
  }
  stats.messages /= 2;  // each counted by its sender and its receiver
  return stats;
}

RAILCC_NAMESPACE_END
