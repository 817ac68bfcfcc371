// railcc/comm/host_steps.hpp: what every transport that runs a rank's program on host
// memory shares: which steps may start, the local steps themselves, and reusable scratch.
//
// A transport runs a RankProgram (coll/projection.hpp): a step starts once the steps it
// waits for have completed (rule 3), in any order, so independent channels overlap. The
// StepTracker keeps that bookkeeping in arrays sized by the program: the steps that wait
// for each step (CSR), the count each still waits for, and the queue of steps ready to
// start. Local steps (copies, reductions and finishes within the rank's memory) run the
// same on every host transport, so they are here too.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "railcc/coll/backend.hpp"
#include "railcc/coll/projection.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

/// Which steps of a program may start, as steps complete.
class StepTracker {
 public:
  explicit StepTracker(const RankProgram& program) : unmet_(program.steps().size()) {
    const std::size_t n = program.steps().size();
    std::vector<std::size_t> count(n + 1, 0);
    for (std::size_t i = 0; i < n; ++i) {
      unmet_[i] = static_cast<std::uint32_t>(program.waits(i).size());
      for (std::uint32_t w : program.waits(i)) ++count[w + 1];
    }
    for (std::size_t i = 0; i < n; ++i) count[i + 1] += count[i];
    next_begin_ = count;
    next_.resize(count[n]);
    for (std::size_t i = 0; i < n; ++i) {
      for (std::uint32_t w : program.waits(i)) next_[count[w]++] = static_cast<std::uint32_t>(i);
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (unmet_[i] == 0) ready_.push_back(static_cast<std::uint32_t>(i));
    }
  }

  /// The next step that may start, if any.
  bool pop_ready(std::uint32_t& step) {
    if (ready_.empty()) return false;
    step = ready_.front();
    ready_.pop_front();
    return true;
  }
  /// Step `step` has completed: the steps waiting only for it become ready.
  void complete(std::uint32_t step) {
    ++completed_;
    for (std::size_t k = next_begin_[step]; k < next_begin_[step + 1]; ++k) {
      if (--unmet_[next_[k]] == 0) ready_.push_back(next_[k]);
    }
  }
  [[nodiscard]] std::size_t completed() const { return completed_; }
  [[nodiscard]] bool done() const { return completed_ == unmet_.size(); }

 private:
  std::vector<std::uint32_t> unmet_;
  std::vector<std::size_t> next_begin_;
  std::vector<std::uint32_t> next_;
  std::deque<std::uint32_t> ready_;
  std::size_t completed_ = 0;
};

/// A rank's memory for one run: buffer b of the program starts at `buffers[b]`.
class HostBuffers {
 public:
  HostBuffers() = default;
  /// `buffers[b]` must hold `program.buffers()[b]` bytes (a null pointer only for an
  /// empty buffer).
  HostBuffers(const RankProgram& program, std::vector<std::byte*> buffers)
      : base_(std::move(buffers)) {
    if (base_.size() != program.buffers().size())
      throw LogicError("host buffers: " + std::to_string(base_.size()) + " pointers for " +
                       std::to_string(program.buffers().size()) + " buffers");
    for (std::size_t b = 0; b < base_.size(); ++b) {
      if (base_[b] == nullptr && program.buffers()[b] != 0)
        throw InputError("host buffers: buffer " + std::to_string(b) + " of " +
                         std::to_string(program.buffers()[b]) + " bytes is a null pointer");
    }
  }
  [[nodiscard]] std::byte* at(const Region& r) const { return base_[r.buffer] + r.offset; }

 private:
  std::vector<std::byte*> base_;
};

/// Runs local step `s` of `program` (a copy, a reduction or the finish) on `mem`.
/// Regions of one step may overlap (an in-place algorithm's shift): a copy moves as
/// memmove does, a reduction reads its source before it writes.
inline void run_local_step(const RankProgram& program, const RankStep& s, const HostBuffers& mem,
                           std::vector<std::byte>& spare) {
  const ReductionSpec red = program.reduction();
  const std::size_t elem = size_of(red.type);
  if (s.op_kind == OpKind::finish) {
    finish_reduction(red.type, red.op, mem.at(s.to), s.to.bytes / elem, program.ranks());
    return;
  }
  if (s.from.bytes != s.to.bytes)
    throw LogicError("host step: a local step from " + std::to_string(s.from.bytes) +
                     " bytes into " + std::to_string(s.to.bytes));
  std::byte* to = mem.at(s.to);
  const std::byte* from = mem.at(s.from);
  if (s.action == RecvAction::copy) {
    if (to != from && s.to.bytes != 0) std::memmove(to, from, s.to.bytes);
    return;
  }
  const bool overlap = s.from.buffer == s.to.buffer && s.from.offset < s.to.offset + s.to.bytes &&
                       s.to.offset < s.from.offset + s.from.bytes;
  if (overlap) {
    spare.assign(from, from + s.from.bytes);
    from = spare.data();
  }
  reduce_into(red.type, red.op, to, from, s.to.bytes / elem);
}

/// Host memory a transport reuses between runs (the receive side of reductions): a run
/// that takes a block and gives it back leaves it for the next run, so a training loop
/// does not fault in fresh pages every step. Thread-safe.
class ScratchPool {
 public:
  std::vector<std::byte> take(std::size_t bytes) {
    {
      const std::lock_guard lock(mutex_);
      const auto it = free_.lower_bound(bytes);
      if (it != free_.end()) {
        std::vector<std::byte> block = std::move(it->second);
        free_.erase(it);
        held_ -= block.size();
        return block;
      }
    }
    return std::vector<std::byte>(bytes);
  }
  void give_back(std::vector<std::byte> block) {
    if (block.empty()) return;
    const std::lock_guard lock(mutex_);
    if (held_ + block.size() > max_held) return;  // freed: the pool stays bounded
    held_ += block.size();
    free_.emplace(block.size(), std::move(block));
  }
  /// The most the pool keeps between runs.
  static constexpr std::size_t max_held = std::size_t{2} << 30;

 private:
  std::mutex mutex_;
  std::multimap<std::size_t, std::vector<std::byte>> free_;
  std::size_t held_ = 0;
};

RAILCC_NAMESPACE_END
