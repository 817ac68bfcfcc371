// railcc/comm/host_steps.hpp: what every transport that runs a rank's program on host
// memory shares: which steps may start, the local steps themselves, and reusable scratch.
//
// A transport runs a RankProgram (coll/projection.hpp) with a StepTracker
// (coll/step_tracker.hpp) saying which steps may start. Local steps (copies, reductions
// and finishes within the rank's memory) run the same on every host transport, so they
// are here, with the scratch memory transports keep between runs.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "railcc/bootstrap/wire.hpp"
#include "railcc/coll/backend.hpp"
#include "railcc/coll/projection.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/coll/step_tracker.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

/// A rank's memory for one run: buffer b of the program starts at `buffers[b]`. Only
/// addresses: host memory, or a device's for the transports that run on one.
class RankBuffers {
 public:
  RankBuffers() = default;
  /// `buffers[b]` must hold `program.buffers()[b]` bytes (a null pointer only for an
  /// empty buffer).
  RankBuffers(const RankProgram& program, std::vector<std::byte*> buffers)
      : base_(std::move(buffers)) {
    if (base_.size() != program.buffers().size())
      throw LogicError("rank buffers: " + std::to_string(base_.size()) + " pointers for " +
                       std::to_string(program.buffers().size()) + " buffers");
    for (std::size_t b = 0; b < base_.size(); ++b) {
      if (base_[b] == nullptr && program.buffers()[b] != 0)
        throw InputError("rank buffers: buffer " + std::to_string(b) + " of " +
                         std::to_string(program.buffers()[b]) + " bytes is a null pointer");
    }
  }
  [[nodiscard]] std::byte* at(const Region& r) const { return base_[r.buffer] + r.offset; }

 private:
  std::vector<std::byte*> base_;
};

/// A transport runs only the program of its own rank in a job of its size.
inline void check_program_fits(const RankProgram& program, int rank, int size) {
  if (program.ranks() != size || program.rank() != rank)
    throw LogicError("host transport: rank " + std::to_string(program.rank()) + "'s program of " +
                     std::to_string(program.ranks()) + " ranks on rank " + std::to_string(rank) +
                     " of " + std::to_string(size));
}

/// Runs local step `s` of `program` (a copy, a reduction or the finish) on `mem`.
/// Regions of one step may overlap (an in-place algorithm's shift): a copy moves as
/// memmove does, a reduction reads its source before it writes.
inline void run_local_step(const RankProgram& program, const RankStep& s, const RankBuffers& mem,
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
  if (overlaps(s.from, s.to)) {
    spare.assign(from, from + s.from.bytes);
    from = spare.data();
  }
  reduce_into(red.type, red.op, to, from, s.to.bytes / elem);
}

/// Why a run that went `timeout` without progress on `rank` fails: whom it waits for.
/// `data_from`: ranks whose data has not arrived; `acks_from`: ranks that have not said
/// they wrote what this rank sent; `taken_by`: ranks that have not taken this rank's data.
inline std::string no_progress_text(int rank, std::chrono::milliseconds timeout,
                                    std::vector<int> data_from, std::vector<int> acks_from,
                                    std::vector<int> taken_by) {
  auto tidy = [](std::vector<int>& v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  };
  tidy(data_from);
  tidy(acks_from);
  tidy(taken_by);
  std::vector<int> all = data_from;
  all.insert(all.end(), acks_from.begin(), acks_from.end());
  all.insert(all.end(), taken_by.begin(), taken_by.end());
  tidy(all);
  std::string waits;
  auto add = [&](const std::vector<int>& ranks, const std::string& what) {
    if (ranks.empty()) return;
    waits += (waits.empty() ? "" : ", ") + what + (ranks.size() == 1 ? " " : "s ") +
             detail::wire::list_ranks(ranks);
  };
  add(data_from, "data from rank");
  add(acks_from, "acknowledgements from rank");
  add(taken_by, "its data to be taken by rank");
  if (waits.empty()) waits = "nothing it can name";
  return "made no progress for " + detail::wire::duration_text(timeout) + " on rank " +
         std::to_string(rank) + ", waiting for " + waits + ": " +
         (all.size() == 1 ? "that rank" : "one of those ranks") +
         ", or one it waits for, died, stopped, or did not make this call";
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
