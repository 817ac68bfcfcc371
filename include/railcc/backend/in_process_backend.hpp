// railcc/backend/in_process_backend.hpp: ranks as threads of one process, sharing nothing
// but messages.
//
// Each rank is a thread that runs only its projection of the plan (coll/projection.hpp)
// on its own copy of every buffer: it reads and writes its own memory, and learns about
// the other ranks only through messages matched by (source, destination, tag). So it runs
// every collective with real data exactly as a backend with one process per rank would
// (MPI, NCCL), and it is the proof that a projection is complete: a dependency the
// projection failed to carry shows up as wrong data, a message it failed to send as a
// deadlock, which the backend detects and reports instead of hanging.
// Steps run as soon as what they wait for is done (not in plan order), so independent
// channels overlap as they would on hardware. Switch operations (NVLS) of a plan built for
// an NVSwitch fabric run as the projection's messages: their data is the same, only
// their cost differs, and this backend does not offer them to algorithms itself.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "railcc/coll/backend.hpp"
#include "railcc/coll/plan.hpp"
#include "railcc/coll/projection.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/coll/step_tracker.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

/// What one run did.
struct InProcessResult {
  std::size_t steps = 0;     ///< over all ranks
  std::size_t messages = 0;  ///< data, readiness and acknowledgements
  std::size_t bytes = 0;     ///< of data carried by messages
};

struct InProcessConfig {
  /// Largest total buffer memory (bytes over all ranks).
  std::size_t max_data_bytes = std::size_t{4} << 30;
};

class InProcessBackend {
 public:
  explicit InProcessBackend(PlanTarget target, InProcessConfig config = {})
      : config_(config), builder_(without_switches(std::move(target))) {}
  /// `ranks` ranks on hosts of `ranks_per_host` (default: all on one host).
  explicit InProcessBackend(int ranks, int ranks_per_host = 0, InProcessConfig config = {})
      : InProcessBackend(PlanTarget::hosts(ranks, ranks_per_host > 0 ? ranks_per_host : ranks),
                         config) {}

  // ---- buffers ---------------------------------------------------------------------------
  BufferId allocate(std::size_t bytes) {
    const auto p = static_cast<std::size_t>(ranks());
    const std::size_t room = config_.max_data_bytes - allocated_;
    if (bytes > room / p) {
      throw InputError("in-process backend: " + std::to_string(bytes) + " more bytes on each of " +
                       std::to_string(p) + " ranks is over the " +
                       std::to_string(config_.max_data_bytes) + " allowed in all");
    }
    allocated_ += bytes * p;
    data_.emplace_back(p, std::vector<std::byte>(bytes));
    return builder_.allocate(bytes);
  }
  [[nodiscard]] std::size_t buffer_bytes(BufferId b) const { return builder_.buffer_bytes(b); }
  [[nodiscard]] std::size_t max_data_bytes() const { return config_.max_data_bytes; }
  /// A rank's copy of a buffer.
  [[nodiscard]] std::span<std::byte> buffer(int rank, BufferId b) {
    return data_.at(b).at(static_cast<std::size_t>(rank));
  }

  // ---- CollectiveBackend -----------------------------------------------------------------
  [[nodiscard]] int ranks() const { return builder_.ranks(); }
  [[nodiscard]] RankPlacement placement(int rank) const { return builder_.placement(rank); }
  [[nodiscard]] ReductionSpec reduction() const { return builder_.reduction(); }
  void set_reduction(ReductionSpec r) { builder_.set_reduction(r); }
  OpId transfer(int src, Region from, int dst, Region to, RecvAction action,
                std::span<const OpId> deps, std::uint32_t channel = 0) {
    return builder_.transfer(src, from, dst, to, action, deps, channel);
  }
  OpId local(int rank, Region to, Region from, RecvAction action, std::span<const OpId> deps) {
    return builder_.local(rank, to, from, action, deps);
  }
  OpId finish(int rank, Region region, std::span<const OpId> deps) {
    return builder_.finish(rank, region, deps);
  }

  /// Runs what was posted since the last run().
  InProcessResult run() { return run(builder_.take()); }

  /// Runs a plan built elsewhere. Buffers the backend does not have yet are allocated;
  /// those it has must be the plan's sizes.
  InProcessResult run(const Plan& plan) {
    adopt_plan_buffers(*this, data_.size(), plan, "in-process backend");
    const PlanIndex index(plan);
    std::vector<RankProgram> programs;
    programs.reserve(static_cast<std::size_t>(ranks()));
    for (int r = 0; r < ranks(); ++r) programs.push_back(project(plan, index, r));
    return run(programs);
  }

  /// Runs one program per rank, projected elsewhere (program r is rank r's). A program
  /// that waits for a message no other sends is reported as a deadlock (LogicError).
  InProcessResult run(const std::vector<RankProgram>& programs) {
    const auto p = static_cast<std::size_t>(ranks());
    if (programs.size() != p)
      throw InputError("in-process backend: " + std::to_string(programs.size()) + " programs for " +
                       std::to_string(p) + " ranks");
    for (std::size_t r = 0; r < p; ++r) {
      const RankProgram& prog = programs[r];
      if (prog.rank() != static_cast<int>(r) || prog.ranks() != ranks())
        throw InputError("in-process backend: program " + std::to_string(r) + " is rank " +
                         std::to_string(prog.rank()) + "'s of " + std::to_string(prog.ranks()));
      if (prog.buffers().size() > data_.size())
        throw InputError("in-process backend: program " + std::to_string(r) + " uses " +
                         std::to_string(prog.buffers().size()) + " buffers, the backend has " +
                         std::to_string(data_.size()));
      for (std::size_t b = 0; b < prog.buffers().size(); ++b) {
        if (prog.buffers()[b] != buffer_bytes(static_cast<BufferId>(b)))
          throw InputError("in-process backend: program " + std::to_string(r) + "'s buffer " +
                           std::to_string(b) + " has " + std::to_string(prog.buffers()[b]) +
                           " bytes, the backend's " +
                           std::to_string(buffer_bytes(static_cast<BufferId>(b))));
      }
    }
    Exchange exchange(p);
    std::vector<std::thread> threads;
    threads.reserve(p);
    std::vector<InProcessResult> results(p);
    for (std::size_t r = 0; r < p; ++r) {
      threads.emplace_back([&, r] {
        try {
          RankRunner runner(programs[r], exchange, data_, results[r]);
          runner.run();
        } catch (...) {
          exchange.fail(std::current_exception());
        }
        exchange.finished();
      });
    }
    for (auto& t : threads) t.join();
    exchange.rethrow();
    InProcessResult total;
    for (const auto& r : results) {
      total.steps += r.steps;
      total.messages += r.messages;
      total.bytes += r.bytes;
    }
    return total;
  }

  [[nodiscard]] const Plan& plan() const { return builder_.plan(); }

 private:
  static PlanTarget without_switches(PlanTarget t) {
    t.switch_domain.clear();  // algorithms are not offered NVLS here (see above)
    t.repeats_steps = false;
    return t;
  }

  struct Message {
    int src;
    std::uint64_t tag;
    std::vector<std::byte> payload;
  };

  /// Every rank's mailbox behind one lock, which also lets the last rank to block see
  /// that no one can go on (a deadlock) instead of waiting forever.
  class Exchange {
   public:
    explicit Exchange(std::size_t ranks) : boxes_(ranks), running_(ranks) {}

    void send(int dst, Message m) {
      const std::lock_guard lock(mutex_);
      boxes_[static_cast<std::size_t>(dst)].push_back(std::move(m));
      ++queued_;
      wake_.notify_all();
    }
    /// Waits for messages to `rank` and takes them all; empty when the run has failed.
    /// `waiting_for` describes what the rank waits for, for the deadlock report.
    std::deque<Message> receive(int rank, const std::string& waiting_for) {
      std::unique_lock lock(mutex_);
      auto& box = boxes_[static_cast<std::size_t>(rank)];
      while (box.empty() && !error_) {
        // Every other rank still running waits, and no message is on its way to anyone.
        if (waiting_ + 1 == running_ && queued_ == 0) {
          error_ = std::make_exception_ptr(LogicError(
              "in-process backend: no rank can go on (a deadlock): rank " + std::to_string(rank) +
              " waits for " + waiting_for + ", and every other rank still running waits too"));
          wake_.notify_all();
          break;
        }
        ++waiting_;
        wake_.wait(lock);
        --waiting_;
      }
      std::deque<Message> out;
      if (!error_) {
        queued_ -= box.size();
        out.swap(box);
      }
      return out;
    }
    void fail(std::exception_ptr e) {
      const std::lock_guard lock(mutex_);
      if (!error_) error_ = e;
      wake_.notify_all();
    }
    void finished() {
      const std::lock_guard lock(mutex_);
      --running_;
      wake_.notify_all();  // the waiters re-check whether anyone can still send
    }
    void rethrow() {
      if (error_) std::rethrow_exception(error_);
    }

   private:
    std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<std::deque<Message>> boxes_;
    std::size_t running_;
    std::size_t waiting_ = 0;
    std::size_t queued_ = 0;  // messages in boxes, not yet taken
    std::exception_ptr error_;
  };

  /// One rank: starts each step once its waits are done, and completes it once the
  /// messages it expects have come (projection.hpp, rules 3 and 4).
  class RankRunner {
   public:
    RankRunner(const RankProgram& program, Exchange& exchange,
               std::vector<std::vector<std::vector<std::byte>>>& data, InProcessResult& result)
        : program_(program),
          exchange_(exchange),
          data_(data),
          result_(result),
          me_(program.rank()),
          elem_(size_of(program.reduction().type)),
          state_(program.steps().size()),
          tracker_(program) {}

    void run() {
      for (;;) {
        for (bool moved = true; moved;) {
          moved = false;
          if (!early_.empty()) {
            Message m = std::move(early_.front());
            early_.pop_front();
            deliver(std::move(m));
            moved = true;
            continue;
          }
          std::uint32_t i = 0;
          if (tracker_.pop_ready(i)) {
            start(i);
            moved = true;
          }
        }
        if (tracker_.done()) break;
        auto arrived = exchange_.receive(me_, waiting_for());
        if (arrived.empty()) return;  // another rank failed
        for (auto& m : arrived) deliver(std::move(m));
      }
      result_.steps = program_.steps().size();
    }

   private:
    struct StepState {
      std::uint32_t expected = 0;                 // messages still to come in the current phase
      bool all_ready = false;                     // multicast root: every member is ready
      std::vector<std::vector<std::byte>> parts;  // combine: the members' data
    };

    std::span<std::byte> mem(const Region& r) {
      auto& bytes = data_[r.buffer][static_cast<std::size_t>(me_)];
      return std::span<std::byte>(bytes).subspan(r.offset, r.bytes);
    }
    void post(int dst, MessageTag tag, std::vector<std::byte> payload = {}) {
      ++result_.messages;
      result_.bytes += payload.size();
      exchange_.send(dst, Message{me_, tag.packed(), std::move(payload)});
    }
    /// Step i now waits for `count` messages, each matched by (source, tag).
    /// A message that came before its step started is delivered once the step has
    /// registered everything it expects (run() drains `early_`).
    void expect(std::uint32_t i, int src, MessageTag tag) {
      const auto key = std::make_pair(src, tag.packed());
      ++state_[i].expected;
      expecting_.emplace(key, i);
      const auto early = arrived_.find(key);
      if (early != arrived_.end()) {
        early_.push_back(Message{src, tag.packed(), std::move(early->second)});
        arrived_.erase(early);
      }
    }
    void write(const Region& to, std::span<const std::byte> payload, RecvAction action) {
      auto dst = mem(to);
      if (payload.size() != dst.size())
        throw LogicError("in-process backend: a message of " + std::to_string(payload.size()) +
                         " bytes for a region of " + std::to_string(dst.size()));
      if (action == RecvAction::copy) {
        std::copy(payload.begin(), payload.end(), dst.begin());
      } else {
        reduce_into(program_.reduction().type, program_.reduction().op, dst.data(), payload.data(),
                    dst.size() / elem_);
      }
    }

    void start(std::uint32_t i) {
      const RankStep& s = program_.step(i);
      const auto group = program_.group(i);
      const auto n = static_cast<std::uint32_t>(group.size());
      switch (s.kind) {
        case StepKind::local: {
          if (s.op_kind == OpKind::finish) {
            auto region = mem(s.to);
            finish_reduction(program_.reduction().type, program_.reduction().op, region.data(),
                             region.size() / elem_, program_.ranks());
          } else {
            const auto src = mem(s.from);
            const std::vector<std::byte> copy(src.begin(), src.end());  // regions may overlap
            write(s.to, copy, s.action);
          }
          complete(i);
          return;
        }
        case StepKind::send: {
          const auto src = mem(s.from);
          std::vector<std::byte> payload(src.begin(), src.end());
          if (s.op_kind == OpKind::transfer) {
            post(s.peer, PieceTags::transfer_data(s.op), std::move(payload));
            expect(i, s.peer, PieceTags::transfer_ack(s.op));
          } else {  // a member's data for a switch reduction
            post(s.peer, PieceTags::member_first(s.op, s.position), std::move(payload));
            expect(i, s.peer, PieceTags::root_to_member(s.op, n, s.position));
          }
          return;
        }
        case StepKind::recv: expect(i, s.peer, PieceTags::transfer_data(s.op)); return;
        case StepKind::combine:
          state_[i].parts.resize(n);
          for (std::uint32_t k = 0; k < n; ++k) {
            if (group[k] != me_) expect(i, group[k], PieceTags::member_first(s.op, k));
          }
          if (state_[i].expected == 0) finish_combine(i);
          return;
        case StepKind::multicast_root:
          for (std::uint32_t k = 0; k < n; ++k) {
            if (group[k] != me_) expect(i, group[k], PieceTags::member_first(s.op, k));
          }
          if (state_[i].expected == 0) multicast(i);
          return;
        case StepKind::multicast_member:
          post(s.peer, PieceTags::member_first(s.op, s.position));
          expect(i, s.peer, PieceTags::root_to_member(s.op, n, s.position));
          return;
      }
    }

    /// A message step i expected: apply it, and complete the step when its last comes.
    void deliver(Message m) {
      const auto key = std::make_pair(m.src, m.tag);
      const auto it = expecting_.find(key);
      if (it == expecting_.end()) {
        arrived_.emplace(key, std::move(m.payload));  // before the step that takes it started
        return;
      }
      const std::uint32_t i = it->second;
      expecting_.erase(it);
      const RankStep& s = program_.step(i);
      const auto group = program_.group(i);
      const auto n = static_cast<std::uint32_t>(group.size());
      StepState& st = state_[i];
      --st.expected;
      switch (s.kind) {
        case StepKind::recv:
          write(s.to, m.payload, s.action);
          post(s.peer, PieceTags::transfer_ack(s.op));
          complete(i);
          return;
        case StepKind::combine: {
          const auto k = static_cast<std::uint32_t>(m.tag & 0xffffffffu);
          st.parts[k] = std::move(m.payload);
          if (st.expected == 0) finish_combine(i);
          return;
        }
        case StepKind::multicast_root:
          if (st.expected == 0) {
            if (!st.all_ready)
              multicast(i);
            else
              complete(i);  // every member has acknowledged
          }
          return;
        case StepKind::multicast_member:
          write(s.to, m.payload, RecvAction::copy);
          post(s.peer, PieceTags::member_ack(s.op, n, s.position));
          complete(i);
          return;
        case StepKind::send:  // the acknowledgement
          complete(i);
          return;
        case StepKind::local: break;
      }
      throw LogicError("in-process backend: a message for a local step");
    }

    /// The switch reduction at its destination: the group's data in group order.
    void finish_combine(std::uint32_t i) {
      const RankStep& s = program_.step(i);
      const auto group = program_.group(i);
      const auto n = static_cast<std::uint32_t>(group.size());
      auto& parts = state_[i].parts;
      const auto own = mem(s.from);
      std::vector<std::byte> sum;
      for (std::uint32_t k = 0; k < n; ++k) {
        const std::span<const std::byte> part = group[k] == me_
                                                    ? std::span<const std::byte>(own)
                                                    : std::span<const std::byte>(parts[k]);
        if (k == 0)
          sum.assign(part.begin(), part.end());
        else
          reduce_into(program_.reduction().type, program_.reduction().op, sum.data(), part.data(),
                      sum.size() / elem_);
      }
      write(s.to, sum, RecvAction::copy);
      for (std::uint32_t k = 0; k < n; ++k) {
        if (group[k] != me_) post(group[k], PieceTags::root_to_member(s.op, n, k));
      }
      parts.clear();
      complete(i);
    }

    /// The multicast's root, once every member is ready: its data everywhere.
    void multicast(std::uint32_t i) {
      const RankStep& s = program_.step(i);
      const auto group = program_.group(i);
      const auto n = static_cast<std::uint32_t>(group.size());
      const auto src = mem(s.from);
      const std::vector<std::byte> payload(src.begin(), src.end());
      state_[i].all_ready = true;
      write(s.to, payload, RecvAction::copy);
      for (std::uint32_t k = 0; k < n; ++k) {
        if (group[k] == me_) continue;
        post(group[k], PieceTags::root_to_member(s.op, n, k), payload);
        expect(i, group[k], PieceTags::member_ack(s.op, n, k));
      }
      if (state_[i].expected == 0) complete(i);
    }

    void complete(std::uint32_t i) { tracker_.complete(i); }

    std::string waiting_for() const {
      if (expecting_.empty()) return "nothing it can name";
      const auto& [key, i] = *expecting_.begin();
      const RankStep& s = program_.step(i);
      return "piece " + std::to_string(key.second & 0xffffffffu) + " of operation " +
             std::to_string(s.op) + " (its " + std::string(to_string(s.kind)) + ") from rank " +
             std::to_string(key.first);
    }

    struct KeyHash {
      std::size_t operator()(const std::pair<int, std::uint64_t>& k) const {
        return std::hash<std::uint64_t>()(k.second * 0x9e3779b97f4a7c15ULL ^
                                          static_cast<std::uint64_t>(k.first));
      }
    };

    const RankProgram& program_;
    Exchange& exchange_;
    std::vector<std::vector<std::vector<std::byte>>>& data_;
    InProcessResult& result_;
    int me_;
    std::size_t elem_;
    std::vector<StepState> state_;
    StepTracker tracker_;
    std::deque<Message> early_;  // messages whose step has just started to expect them
    std::unordered_map<std::pair<int, std::uint64_t>, std::uint32_t, KeyHash> expecting_;
    std::unordered_map<std::pair<int, std::uint64_t>, std::vector<std::byte>, KeyHash> arrived_;
  };

  InProcessConfig config_;
  PlanBuilder builder_;
  std::vector<std::vector<std::vector<std::byte>>> data_;  // [buffer][rank][byte]
  std::size_t allocated_ = 0;
};

static_assert(CollectiveBackend<InProcessBackend>);

RAILCC_NAMESPACE_END
