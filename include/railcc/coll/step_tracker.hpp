// railcc/coll/step_tracker.hpp: which steps of a rank's program may start, as steps
// complete.
//
// Every backend that runs a RankProgram (coll/projection.hpp) starts a step once the
// steps it waits for have completed (rule 3), in any order, so independent channels
// overlap. The tracker keeps that bookkeeping in arrays sized by the program: the steps
// that wait for each step (CSR), the count each still waits for, and the queue of steps
// ready to start.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "railcc/coll/projection.hpp"
#include "railcc/config.hpp"

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

RAILCC_NAMESPACE_END
