// railcc/mpi/host_transport.hpp: the host backend: a rank's program of a plan run on host
// memory with MPI point-to-point messages and reductions on the CPU.
//
// How a program becomes MPI calls (coll/projection.hpp has the program's rules):
//  - a step starts once the steps it waits for have completed (StepTracker), in any
//    order, so the plan's channels overlap;
//  - a send posts MPI_Isend of its region straight from the caller's memory and
//    MPI_Irecv of the receiver's zero-byte acknowledgement; it completes when both have
//    (rule 4: a send completes once the receiver has written the data, so a step that
//    waits for it may overwrite what the receiver will read next);
//  - a receive that copies posts MPI_Irecv straight into its region; one that reduces
//    receives into scratch memory reused between runs (ScratchPool), then reduces it in
//    with the vectorised loops of reduce_op.hpp. Either then sends the acknowledgement;
//  - local steps (copies, reductions, the finish of avg) run at once;
//  - MPI_Testsome polls every request in flight. wait() yields the core between polls
//    when nothing moved, and sleeps in short naps once nothing has moved for 10 ms,
//    since ranks may share cores.
// Tags: a collective's messages carry its call number (modulo 32, the calls a
// communicator lets be in flight at once) and the operation and piece; a
// point-to-point call's carry its number between that pair. A plan of more than 2^23
// operations does not fit and is an InputError; a message carries at most 2^31 - 1 bytes
// (MPI's int count), and a larger one is an InputError that says to use more channels.
// Errors: a message of another size than the step expects (counts or types that differ
// across ranks) is a PeerError naming the rank and the call; a run that goes its timeout
// with nothing arriving or leaving fails naming the ranks it waits for. The transport is
// broken after a failure: messages of the failed run may still arrive, so every later run
// fails at once. The communicator's MPI errors return instead of aborting
// (MPI_ERRORS_RETURN), so they become exceptions that name the call.
#pragma once

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "railcc/bootstrap/wire.hpp"
#include "railcc/comm/host_steps.hpp"
#include "railcc/comm/transport.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/log.hpp"
#include "railcc/mpi/bootstrap.hpp"
#include "railcc/mpi/mpi_api.hpp"

RAILCC_NAMESPACE_BEGIN

namespace detail::mpi_host {

using Clock = std::chrono::steady_clock;

/// Collective calls a communicator may have in flight: their numbers modulo this are in
/// the tags, so no two in flight share one.
inline constexpr std::uint64_t runs_in_flight = 32;
inline constexpr std::uint32_t max_operations = 1u << 23;
inline constexpr int point_to_point_bit = 1 << 29;

inline int tag_of(const RunInfo& info, OpId op, bool ack) {
  const int piece = ack ? 1 : 0;
  // Point to point: the operation is the message's number between the pair, in order;
  // MPI keeps one source's messages of one tag in order, so wrapping is safe.
  if (info.point_to_point)
    return point_to_point_bit | static_cast<int>((op % (1u << 22)) << 1) | piece;
  return static_cast<int>((info.sequence % runs_in_flight) << 24 | (std::uint64_t{op} << 1)) |
         piece;
}

/// What the transport and its runs share: the communicator, the scratch pool, and the
/// failure that broke it.
struct State {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int size = 0;
  ScratchPool pool;
  std::optional<std::string> broken;
  ~State() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized == 0 && comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
  }
};

inline void check(int rc, const std::string& what) {
  if (rc != MPI_SUCCESS)
    throw PeerError("host transport: " + what + ": " + detail::mpi_api::error_text(rc));
}

class Run final : public TransportRun {
 public:
  Run(std::shared_ptr<State> state, std::shared_ptr<const RankProgram> program,
      std::vector<std::byte*> buffers, RunInfo info)
      : state_(std::move(state)),
        program_(std::move(program)),
        mem_(*program_, std::move(buffers)),
        info_(std::move(info)),
        tracker_(*program_),
        outstanding_(program_->steps().size(), 0) {
    if (state_->broken)
      throw PeerError(info_.label + ": the communicator failed earlier (" + *state_->broken +
                      "); a job whose collective failed cannot go on");
    if (!info_.point_to_point && !program_->steps().empty() &&
        program_->steps().back().op >= max_operations)
      throw InputError("host transport: " + info_.label + " has " +
                       std::to_string(program_->steps().back().op + 1) +
                       " operations, more than its message tags tell apart (" +
                       std::to_string(max_operations) + ")");
    last_progress_ = Clock::now();
    advance();
  }
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  ~Run() override {
    // A request dropped before it completed: MPI must not go on writing into memory this
    // run gives back, so it is waited for (within its timeout) or abandoned as failed.
    if (!done() && !failed_) {
      try {
        wait();
      } catch (...) {  // NOLINT(bugprone-empty-catch): the failure is recorded in state_
      }
    }
  }

  bool test() override {
    if (failed_) throw PeerError(*failed_);
    if (done()) return true;
    if (!advance() && Clock::now() - last_progress_ > info_.timeout) fail();
    return done();
  }

  void wait() override {
    int idle = 0;
    while (!test()) {
      // Nothing moved: give the core to ranks that share it every 16 polls; nap once 10 ms
      // have passed without progress (a late or slow peer, not a message in flight).
      // Measured on 4 ranks over 2 cores: napping after 1 ms instead took a small
      // all-reduce from 80 to 110 us, yielding on every poll to 190 us.
      if (Clock::now() - last_progress_ > std::chrono::milliseconds(10))
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      else if (++idle % 16 == 0)
        std::this_thread::yield();
    }
  }

 private:
  enum class Piece : std::uint8_t { data_out, ack_in, data_in, ack_out };
  struct Pending {
    std::uint32_t step = 0;
    Piece piece = Piece::data_out;
    std::vector<std::byte> scratch;
  };

  [[nodiscard]] bool done() const { return tracker_.done() && requests_.empty(); }

  /// Starts what is ready and takes in what completed; true if anything moved.
  bool advance() {
    bool moved = false;
    for (;;) {
      bool now = start_ready();
      now = poll() || now;
      if (!now) break;
      moved = true;
    }
    if (moved) last_progress_ = Clock::now();
    return moved;
  }

  bool start_ready() {
    bool started = false;
    std::uint32_t i = 0;
    while (tracker_.pop_ready(i)) {
      start(i);
      started = true;
    }
    return started;
  }

  void start(std::uint32_t i) {
    const RankStep& s = program_->step(i);
    switch (s.kind) {
      case StepKind::local:
        run_local_step(*program_, s, mem_, spare_);
        tracker_.complete(i);
        return;
      case StepKind::send: {
        post_send(mem_.at(s.from), s.from.bytes, s.peer, tag_of(info_, s.op, false), i,
                  Piece::data_out);
        post_recv(nullptr, 0, s.peer, tag_of(info_, s.op, true), i, Piece::ack_in, {});
        outstanding_[i] = 2;
        return;
      }
      case StepKind::recv: {
        if (s.action == RecvAction::copy) {
          post_recv(mem_.at(s.to), s.to.bytes, s.peer, tag_of(info_, s.op, false), i,
                    Piece::data_in, {});
        } else {
          std::vector<std::byte> scratch = state_->pool.take(s.to.bytes);
          std::byte* into = scratch.data();
          post_recv(into, s.to.bytes, s.peer, tag_of(info_, s.op, false), i, Piece::data_in,
                    std::move(scratch));
        }
        outstanding_[i] = 1;
        return;
      }
      case StepKind::combine:
      case StepKind::multicast_root:
      case StepKind::multicast_member: break;
    }
    throw LogicError("host transport: " + info_.label + " has a " + std::string(to_string(s.kind)) +
                     " step; plans for host memory are built without NVSwitch reduction");
  }

  static int count_of(std::size_t bytes, const std::string& label) {
    if (bytes > static_cast<std::size_t>(INT_MAX))
      throw InputError("host transport: " + label + " sends a message of " + std::to_string(bytes) +
                       " bytes, more than MPI's int count carries: use more channels");
    return static_cast<int>(bytes);
  }

  void post_send(const std::byte* from, std::size_t bytes, int peer, int tag, std::uint32_t step,
                 Piece piece) {
    MPI_Request r = MPI_REQUEST_NULL;
    check(MPI_Isend(from, count_of(bytes, info_.label), MPI_BYTE, peer, tag, state_->comm, &r),
          info_.label + ": MPI_Isend to rank " + std::to_string(peer));
    requests_.push_back(r);
    pending_.push_back(Pending{step, piece, {}});
  }
  void post_recv(std::byte* into, std::size_t bytes, int peer, int tag, std::uint32_t step,
                 Piece piece, std::vector<std::byte> scratch) {
    MPI_Request r = MPI_REQUEST_NULL;
    check(MPI_Irecv(into, count_of(bytes, info_.label), MPI_BYTE, peer, tag, state_->comm, &r),
          info_.label + ": MPI_Irecv from rank " + std::to_string(peer));
    requests_.push_back(r);
    pending_.push_back(Pending{step, piece, std::move(scratch)});
  }

  /// Takes in every completed request; true if any had.
  bool poll() {
    if (requests_.empty()) return false;
    const auto n = static_cast<int>(requests_.size());
    indices_.resize(requests_.size());
    statuses_.resize(requests_.size());
    int completed = 0;
    const int rc = MPI_Testsome(n, requests_.data(), &completed, indices_.data(), statuses_.data());
    if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) check(rc, info_.label + ": MPI_Testsome");
    if (completed == MPI_UNDEFINED || completed == 0) return false;
    for (int k = 0; k < completed; ++k) {
      const auto at = static_cast<std::size_t>(indices_[static_cast<std::size_t>(k)]);
      const MPI_Status& st = statuses_[static_cast<std::size_t>(k)];
      if (rc == MPI_ERR_IN_STATUS && st.MPI_ERROR != MPI_SUCCESS && st.MPI_ERROR != MPI_ERR_PENDING)
        on_error(pending_[at], st);
      taken(pending_[at], st);
    }
    // Completed requests are MPI_REQUEST_NULL now; requests posted above came after.
    std::size_t keep = 0;
    for (std::size_t k = 0; k < requests_.size(); ++k) {
      if (requests_[k] == MPI_REQUEST_NULL) continue;
      if (keep != k) {
        requests_[keep] = requests_[k];
        pending_[keep] = std::move(pending_[k]);
      }
      ++keep;
    }
    requests_.resize(keep);
    pending_.resize(keep);
    return true;
  }

  void taken(Pending& p, const MPI_Status& st) {
    const std::uint32_t step = p.step;  // p moves if the vectors below grow
    const RankStep& s = program_->step(step);
    switch (p.piece) {
      case Piece::data_out:
      case Piece::ack_in:
        if (--outstanding_[step] == 0) tracker_.complete(step);
        return;
      case Piece::ack_out: return;
      case Piece::data_in: {
        int got = 0;
        MPI_Get_count(&st, MPI_BYTE, &got);
        if (static_cast<std::size_t>(got) != s.to.bytes)
          mismatch(s, std::to_string(got) + " bytes");
        if (s.action == RecvAction::reduce) {
          const ReductionSpec red = program_->reduction();
          reduce_into(red.type, red.op, mem_.at(s.to), p.scratch.data(),
                      s.to.bytes / size_of(red.type));
          state_->pool.give_back(std::move(p.scratch));
        }
        MPI_Request r = MPI_REQUEST_NULL;
        check(MPI_Isend(nullptr, 0, MPI_BYTE, s.peer, tag_of(info_, s.op, true), state_->comm, &r),
              info_.label + ": MPI_Isend to rank " + std::to_string(s.peer));
        requests_.push_back(r);
        pending_.push_back(Pending{step, Piece::ack_out, {}});
        tracker_.complete(step);
        return;
      }
    }
  }

  [[noreturn]] void mismatch(const RankStep& s, const std::string& got) {
    failed("rank " + std::to_string(state_->rank) + " expected " + std::to_string(s.to.bytes) +
           " bytes from rank " + std::to_string(s.peer) + " and got " + got +
           ": the ranks called it with different counts or types (RAILCC_CHECK_CALLS=1 "
           "names them)");
  }

  [[noreturn]] void on_error(const Pending& p, const MPI_Status& st) {
    const RankStep& s = program_->step(p.step);
    if (st.MPI_ERROR == MPI_ERR_TRUNCATE) mismatch(s, "more");
    failed("a message with rank " + std::to_string(s.peer) +
           " failed: " + detail::mpi_api::error_text(st.MPI_ERROR));
  }

  /// The run went its timeout without progress: name whom it waits for.
  [[noreturn]] void fail() {
    // What each request in flight waits for: data a peer sends, a peer's acknowledgement
    // that it has written what this rank sent, a peer taking data this rank sends.
    std::vector<int> data_from;
    std::vector<int> acks_from;
    std::vector<int> taken_by;
    for (const Pending& p : pending_) {
      const int peer = program_->step(p.step).peer;
      if (p.piece == Piece::data_in) data_from.push_back(peer);
      if (p.piece == Piece::ack_in) acks_from.push_back(peer);
      if (p.piece == Piece::data_out) taken_by.push_back(peer);
    }
    failed(no_progress_text(state_->rank, info_.timeout, std::move(data_from), std::move(acks_from),
                            std::move(taken_by)));
  }

  /// Ends the run as failed and breaks the transport: receives are cancelled, sends
  /// abandoned to MPI (they read memory the caller keeps until the job ends).
  [[noreturn]] void failed(const std::string& why) {
    const std::string message = info_.label + ": " + why;
    failed_ = message;
    state_->broken = message;
    for (std::size_t k = 0; k < requests_.size(); ++k) {
      if (requests_[k] == MPI_REQUEST_NULL) continue;
      if (pending_[k].piece == Piece::data_in || pending_[k].piece == Piece::ack_in) {
        MPI_Cancel(&requests_[k]);
        MPI_Wait(&requests_[k], MPI_STATUS_IGNORE);
      } else {
        MPI_Request_free(&requests_[k]);
      }
    }
    requests_.clear();
    pending_.clear();
    throw PeerError(message);
  }

  std::shared_ptr<State> state_;
  std::shared_ptr<const RankProgram> program_;
  RankBuffers mem_;
  RunInfo info_;
  StepTracker tracker_;
  std::vector<std::uint8_t> outstanding_;  // per step: its requests not completed yet
  std::vector<MPI_Request> requests_;
  std::vector<Pending> pending_;  // parallel to requests_
  std::vector<int> indices_;
  std::vector<MPI_Status> statuses_;
  std::vector<std::byte> spare_;
  Clock::time_point last_progress_;
  std::optional<std::string> failed_;
};

}  // namespace detail::mpi_host

/// The host backend's transport over an MPI communicator.
class MpiHostTransport final : public Transport {
 public:
  /// Over a private duplicate of `comm` (collective over `comm`; MPI must be initialised
  /// and stay so while this lives). `bootstrap_timeout` bounds its bootstrap's waits.
  MpiHostTransport(MPI_Comm comm, std::chrono::milliseconds bootstrap_timeout,
                   Logger log = Logger())
      : state_(std::make_shared<detail::mpi_host::State>()),
        bootstrap_(std::make_unique<MpiBootstrap>(comm, bootstrap_timeout, log)),
        bootstrap_timeout_(bootstrap_timeout),
        log_(log) {
    using detail::mpi_host::check;
    check(MPI_Comm_dup(comm, &state_->comm), "MPI_Comm_dup");
    check(MPI_Comm_set_errhandler(state_->comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    MPI_Comm_rank(state_->comm, &state_->rank);
    MPI_Comm_size(state_->comm, &state_->size);
    void* value = nullptr;
    int present = 0;
    // MPI_TAG_UB is cached on MPI_COMM_WORLD alone; it holds for every communicator.
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &value, &present);
    const int tag_ub = present != 0 ? *static_cast<int*>(value) : 32767;
    if (tag_ub < (1 << 30) - 1)
      throw InputError("host transport: this MPI's largest tag is " + std::to_string(tag_ub) +
                       "; railcc's messages need tags up to 2^30 - 1");
  }

  [[nodiscard]] int rank() const override { return state_->rank; }
  [[nodiscard]] int size() const override { return state_->size; }
  [[nodiscard]] std::string name() const override { return "host (MPI)"; }
  Bootstrap& bootstrap() override { return *bootstrap_; }
  [[nodiscard]] int max_in_flight() const override {
    return static_cast<int>(detail::mpi_host::runs_in_flight);
  }

  std::unique_ptr<TransportRun> start(std::shared_ptr<const RankProgram> program,
                                      std::vector<std::byte*> buffers,
                                      const RunInfo& info) override {
    check_program_fits(*program, rank(), size());
    return std::make_unique<detail::mpi_host::Run>(state_, std::move(program), std::move(buffers),
                                                   info);
  }

  std::unique_ptr<Transport> split(int color, int key) override {
    // MPI_Comm_split cannot time out: the bootstrap's barrier, which can, first makes
    // sure every rank has come to it.
    bootstrap_->barrier();
    MPI_Comm part = MPI_COMM_NULL;
    detail::mpi_host::check(
        MPI_Comm_split(state_->comm, color < 0 ? MPI_UNDEFINED : color, key, &part),
        "MPI_Comm_split");
    if (part == MPI_COMM_NULL) return nullptr;
    auto out = std::make_unique<MpiHostTransport>(part, bootstrap_timeout_, log_);
    MPI_Comm_free(&part);
    return out;
  }

 private:
  std::shared_ptr<detail::mpi_host::State> state_;
  std::unique_ptr<MpiBootstrap> bootstrap_;
  std::chrono::milliseconds bootstrap_timeout_;
  Logger log_;
};

RAILCC_NAMESPACE_END
