// railcc/comm/tcp_transport.hpp: the host backend over TCP: a rank's program of a plan run
// on host memory with messages on the job's TCP mesh (tcp_mesh.hpp), for jobs that have
// no MPI (torchrun starts every process alone).
//
// The program runs as on MPI (mpi/host_transport.hpp), step by step as its waits complete:
//  - a send hands its region to the mesh straight from the caller's memory and posts the
//    receiver's acknowledgement; it completes once both are done (rule 4: the receiver has
//    written the data);
//  - a receive that copies is read straight into its region; one that reduces is read
//    into scratch reused between runs (ScratchPool), then reduced in. A message that came
//    before its receive was posted is copied or reduced from the mesh's buffer. Either way
//    the receiver then sends the acknowledgement;
//  - local steps run at once.
// Messages are keyed by the communicator's id, the call's number (all 64 bits, so any
// number of collectives may be in flight), the plan operation and the piece.
// Progress: test() moves what the sockets take without blocking; wait() blocks in poll()
// when nothing moves, so ranks sharing a core sleep rather than spin.
// Errors, each a PeerError naming the call: a rank the run waits for whose connection
// closed (it exited or was killed: named at once, not after the timeout) or that destroyed
// its communicator; a message of another length than the step expects (counts or types
// that differ across ranks); no progress for the run's timeout. The transport is broken
// after a failure, as the MPI one is.
// split() gives a transport over the same mesh with an id of its own (a hash of the
// parent's id, the split's number and the color: 64 bits, so two communicators that share
// a pair of ranks collide with odds of 2^-64), and a bootstrap over the mesh.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "railcc/bootstrap/bootstrap.hpp"
#include "railcc/bootstrap/wire.hpp"
#include "railcc/comm/host_steps.hpp"
#include "railcc/comm/tcp_mesh.hpp"
#include "railcc/comm/transport.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/log.hpp"

RAILCC_NAMESPACE_BEGIN

namespace detail::tcp_host {

using Clock = std::chrono::steady_clock;
inline constexpr std::uint64_t world_comm = 1;

/// splitmix64's finaliser: a child communicator's id from its parent's and its split.
inline std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  std::uint64_t z = a + 0x9e3779b97f4a7c15ULL * (b + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// One communicator over the mesh: its id and its ranks' places in the mesh.
struct Group {
  std::shared_ptr<TcpMesh> mesh;
  std::uint64_t comm = world_comm;
  std::vector<int> members;  ///< communicator rank -> mesh rank
  int rank = 0;

  [[nodiscard]] int size() const { return static_cast<int>(members.size()); }
  [[nodiscard]] int at(int r) const { return members[static_cast<std::size_t>(r)]; }
  /// Why communicator rank `r` can no longer take part, naming it as this communicator
  /// does; "" while it can.
  [[nodiscard]] std::string gone(int r) const {
    if (mesh->state(at(r)) == detail::mesh::PeerState::open) return "";
    std::string why = mesh->why_gone(at(r));
    if (at(r) != r)
      why =
          "rank " + std::to_string(r) + " (rank " + std::to_string(at(r)) + " of the job): " + why;
    return why;
  }
};

}  // namespace detail::tcp_host

/// A bootstrap over the mesh, for a communicator split off (the job's first one meets at
/// the TCP store). Every wait has the timeout, and a rank whose connection closed is named
/// at once.
class MeshBootstrap final : public Bootstrap {
 public:
  MeshBootstrap(detail::tcp_host::Group group, std::chrono::milliseconds timeout)
      : group_(std::move(group)), timeout_(timeout) {}

  [[nodiscard]] int rank() const override { return group_.rank; }
  [[nodiscard]] int size() const override { return group_.size(); }

  std::vector<std::string> all_gather(std::string_view mine) override {
    return exchange(Call::all_gather, mine);
  }
  std::string broadcast(std::string_view blob, int root) override {
    detail::wire::check_root(root, size());
    const std::uint64_t seq = calls_++;
    if (root == rank()) {
      for (int r = 0; r < size(); ++r)
        if (r != rank()) send(r, seq, Call::broadcast, blob);
      return std::string(blob);
    }
    return std::move(collect(seq, Call::broadcast, {root}).front());
  }
  void barrier() override { (void)exchange(Call::barrier, {}); }

 private:
  enum class Call : std::uint32_t { all_gather = 1, broadcast = 2, barrier = 3 };
  static std::string_view call_name(Call c) {
    return c == Call::all_gather ? "all_gather" : c == Call::broadcast ? "broadcast" : "barrier";
  }

  [[nodiscard]] MeshKey key(std::uint64_t seq, Call c) const {
    return {group_.comm, seq, static_cast<std::uint32_t>(c),
            static_cast<std::uint32_t>(MeshKind::bootstrap)};
  }

  std::vector<std::string> exchange(Call c, std::string_view mine) {
    const std::uint64_t seq = calls_++;
    std::vector<int> others;
    for (int r = 0; r < size(); ++r) {
      if (r == rank()) continue;
      send(r, seq, c, mine);
      others.push_back(r);
    }
    std::vector<std::string> got = collect(seq, c, others);
    std::vector<std::string> out;
    out.reserve(static_cast<std::size_t>(size()));
    std::size_t k = 0;
    for (int r = 0; r < size(); ++r)
      out.push_back(r == rank() ? std::string(mine) : std::move(got[k++]));
    return out;
  }

  void send(int r, std::uint64_t seq, Call c, std::string_view blob) {
    std::vector<std::byte> bytes(blob.size());
    if (!blob.empty()) std::memcpy(bytes.data(), blob.data(), blob.size());
    if (!group_.mesh->send_copy(group_.at(r), key(seq, c), std::move(bytes)))
      throw failure(seq, c, group_.gone(r));
  }

  /// The blobs of call `seq` from `from`, in that order.
  std::vector<std::string> collect(std::uint64_t seq, Call c, const std::vector<int>& from) {
    std::vector<std::optional<std::string>> got(from.size());
    std::size_t have = 0;
    const auto deadline = detail::tcp_host::Clock::now() + timeout_;
    std::uint64_t seen = ~std::uint64_t{0};
    while (true) {
      for (std::size_t k = 0; k < from.size(); ++k) {
        if (got[k]) continue;
        if (auto b = group_.mesh->take(group_.at(from[k]), key(seq, c))) {
          got[k] = std::string(reinterpret_cast<const char*>(b->data()), b->size());
          ++have;
        }
      }
      if (have == from.size()) break;
      if (const std::uint64_t now = group_.mesh->departures(); now != seen) {
        seen = now;
        for (std::size_t k = 0; k < from.size(); ++k) {
          if (got[k]) continue;
          if (std::string why = group_.gone(from[k]); !why.empty()) throw failure(seq, c, why);
        }
      }
      if (detail::tcp_host::Clock::now() >= deadline) throw late(seq, c, from, got);
      (void)group_.mesh->progress(10);
    }
    std::vector<std::string> out;
    out.reserve(got.size());
    for (auto& g : got) out.push_back(std::move(*g));
    return out;
  }

  PeerError failure(std::uint64_t seq, Call c, const std::string& why) const {
    return PeerError("bootstrap: rank " + std::to_string(rank()) + " in " +
                     std::string(call_name(c)) + " #" + std::to_string(seq) + ": " + why);
  }

  /// Ranks that did not make call `seq` in time; one that made another call is named so.
  PeerError late(std::uint64_t seq, Call c, const std::vector<int>& from,
                 const std::vector<std::optional<std::string>>& got) {
    std::vector<int> missing;
    for (std::size_t k = 0; k < from.size(); ++k) {
      if (got[k]) continue;
      for (const Call other : {Call::all_gather, Call::broadcast, Call::barrier}) {
        if (other != c && group_.mesh->take(group_.at(from[k]), key(seq, other)))
          return failure(seq, c,
                         "rank " + std::to_string(from[k]) + " made a " +
                             std::string(call_name(other)) +
                             " there: the ranks made different bootstrap calls");
      }
      missing.push_back(from[k]);
    }
    return failure(seq, c,
                   "rank" + std::string(missing.size() == 1 ? " " : "s ") +
                       detail::wire::list_ranks(missing) + " did not make it within " +
                       detail::wire::duration_text(timeout_));
  }

  detail::tcp_host::Group group_;
  std::chrono::milliseconds timeout_;
  std::uint64_t calls_ = 0;
};

namespace detail::tcp_host {

/// What a transport and its runs share.
struct State {
  Group group;
  ScratchPool pool;
  std::optional<std::string> broken;
};

class Run final : public TransportRun, public MeshListener {
 public:
  Run(std::shared_ptr<State> state, std::shared_ptr<const RankProgram> program,
      std::vector<std::byte*> buffers, RunInfo info)
      : state_(std::move(state)),
        mesh_(state_->group.mesh),
        program_(std::move(program)),
        mem_(*program_, std::move(buffers)),
        info_(std::move(info)),
        tracker_(*program_),
        outstanding_(program_->steps().size(), 0),
        open_(program_->steps().size(), 0) {
    if (state_->broken)
      throw PeerError(info_.label + ": the communicator failed earlier (" + *state_->broken +
                      "); a job whose collective failed cannot go on");
    const std::lock_guard lock(mesh_->mutex());
    last_progress_ = Clock::now();
    advance(0);
  }
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  ~Run() override {
    // A run dropped before it completed: the mesh must not go on writing into memory the
    // caller takes back, so it is waited for (within its timeout), or failed and
    // cancelled.
    if (!done() && !failed_) {
      try {
        wait();
      } catch (...) {  // NOLINT(bugprone-empty-catch): failed() cancelled it with the mesh
      }
    }
  }

  bool test() override {
    const std::lock_guard lock(mesh_->mutex());
    return step(0);
  }

  void wait() override {
    const std::lock_guard lock(mesh_->mutex());
    // Polls without blocking (yielding the core between) while messages are flowing,
    // then blocks in poll() for up to 10 ms at a time: a message wakes it at once, and
    // the timeout is checked between.
    while (!step(Clock::now() - last_progress_ < spin ? 0 : 10)) std::this_thread::yield();
  }

  // MeshListener: called under the mesh's lock.
  void sent(std::uint64_t token) override { piece_done(token); }
  void received(std::uint64_t token, const std::byte* buffered) override {
    const auto i = static_cast<std::uint32_t>(token >> 2);
    if (piece_of(token) != Piece::data_in) {
      piece_done(token);
      return;
    }
    const RankStep& s = program_->step(i);
    const ReductionSpec red = program_->reduction();
    if (s.action == RecvAction::reduce) {
      const auto it = scratch_.find(i);
      const std::byte* from = buffered != nullptr ? buffered : it->second.data();
      reduce_into(red.type, red.op, mem_.at(s.to), from, s.to.bytes / size_of(red.type));
      if (it != scratch_.end()) {
        state_->pool.give_back(std::move(it->second));
        scratch_.erase(it);
      }
    } else if (buffered != nullptr && s.to.bytes != 0) {
      std::memcpy(mem_.at(s.to), buffered, s.to.bytes);
    }
    // The acknowledgement; a peer gone by now is found by the scan in step().
    (void)mesh_->send_copy(state_->group.at(s.peer), key(s.op, true), {});
    piece_done(token);
  }
  void refused(std::uint64_t token, std::uint64_t bytes) override {
    const RankStep& s = program_->step(static_cast<std::uint32_t>(token >> 2));
    open_[token >> 2] &= static_cast<std::uint8_t>(~(1u << (token & 3)));
    if (!error_)
      error_ = "rank " + std::to_string(state_->group.rank) + " expected " +
               std::to_string(s.to.bytes) + " bytes from rank " + std::to_string(s.peer) +
               " and got " + std::to_string(bytes) +
               ": the ranks called it with different counts or types (RAILCC_CHECK_CALLS=1 "
               "names them)";
  }

 private:
  /// How long wait() polls without blocking after the last progress: a peer's answer
  /// usually comes within it, and a blocked process wakes later than a polling one. On 4
  /// ranks over 2 cores a small all-reduce took about 210 us with 1 ms, 250-340 us with
  /// none or 5 ms (noisy).
  static constexpr std::chrono::microseconds spin{1000};
  enum class Piece : std::uint8_t { data_out = 0, ack_in = 1, data_in = 2 };
  static Piece piece_of(std::uint64_t token) { return static_cast<Piece>(token & 3); }
  static std::uint64_t token_of(std::uint32_t step, Piece p) {
    return (std::uint64_t{step} << 2) | static_cast<std::uint64_t>(p);
  }

  [[nodiscard]] bool done() const { return tracker_.done(); }

  [[nodiscard]] MeshKey key(OpId op, bool ack) const {
    MeshKind kind = info_.point_to_point ? (ack ? MeshKind::p2p_ack : MeshKind::p2p_data)
                                         : (ack ? MeshKind::ack : MeshKind::data);
    return {state_->group.comm, info_.sequence, op, static_cast<std::uint32_t>(kind)};
  }

  void piece_done(std::uint64_t token) {
    const auto i = static_cast<std::uint32_t>(token >> 2);
    open_[i] &= static_cast<std::uint8_t>(~(1u << (token & 3)));
    last_progress_ = Clock::now();
    if (--outstanding_[i] == 0) tracker_.complete(i);
  }

  /// One round: start what is ready, move bytes (waiting up to `wait_ms` when nothing
  /// moved), check the peers and the timeout. True once the run is done.
  bool step(int wait_ms) {
    if (failed_) throw PeerError(*failed_);
    if (done()) return true;
    advance(wait_ms);
    if (done()) return true;
    if (const std::uint64_t now = mesh_->departures(); now != departures_seen_) {
      departures_seen_ = now;
      check_peers();
    }
    if (Clock::now() - last_progress_ > info_.timeout) timed_out();
    return false;
  }

  void advance(int wait_ms) {
    for (bool first = true;; first = false) {
      const bool started = start_ready();
      if (error_) failed(*error_);
      if (done()) return;
      const bool moved = mesh_->progress(started || !first ? 0 : wait_ms);
      if (error_) failed(*error_);
      if (!started && !moved) return;
    }
  }

  bool start_ready() {
    bool started = false;
    std::uint32_t i = 0;
    while (tracker_.pop_ready(i)) {
      start(i);
      started = true;
      last_progress_ = Clock::now();
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
        outstanding_[i] = 2;
        open_[i] = 0b011;
        const int to = state_->group.at(s.peer);
        mesh_->post(to, key(s.op, true), nullptr, 0, this, token_of(i, Piece::ack_in));
        if (!mesh_->send(to, key(s.op, false), mem_.at(s.from), s.from.bytes, this,
                         token_of(i, Piece::data_out)))
          failed(state_->group.gone(s.peer));
        return;
      }
      case StepKind::recv: {
        outstanding_[i] = 1;
        open_[i] = 0b100;
        std::byte* into = mem_.at(s.to);
        if (s.action == RecvAction::reduce) {
          into = scratch_.emplace(i, state_->pool.take(s.to.bytes)).first->second.data();
        }
        mesh_->post(state_->group.at(s.peer), key(s.op, false), into, s.to.bytes, this,
                    token_of(i, Piece::data_in));
        return;
      }
      case StepKind::combine:
      case StepKind::multicast_root:
      case StepKind::multicast_member: break;
    }
    throw LogicError("host transport: " + info_.label + " has a " + std::string(to_string(s.kind)) +
                     " step; plans for host memory are built without NVSwitch reduction");
  }

  /// A peer went: fail if this run still waits on it.
  void check_peers() {
    for (std::size_t i = 0; i < open_.size(); ++i) {
      if (open_[i] == 0) continue;
      const int peer = program_->step(static_cast<std::uint32_t>(i)).peer;
      if (std::string why = state_->group.gone(peer); !why.empty()) failed(why);
    }
  }

  [[noreturn]] void timed_out() {
    std::vector<int> data_from;
    std::vector<int> acks_from;
    std::vector<int> taken_by;
    for (std::size_t i = 0; i < open_.size(); ++i) {
      const int peer = program_->step(static_cast<std::uint32_t>(i)).peer;
      if ((open_[i] & 0b100) != 0) data_from.push_back(peer);
      if ((open_[i] & 0b010) != 0) acks_from.push_back(peer);
      if ((open_[i] & 0b001) != 0) taken_by.push_back(peer);
    }
    failed(no_progress_text(state_->group.rank, info_.timeout, std::move(data_from),
                            std::move(acks_from), std::move(taken_by)));
  }

  /// Ends the run as failed, breaks the transport, and takes the run back from the mesh.
  [[noreturn]] void failed(const std::string& why) {
    const std::string message = info_.label + ": " + why;
    failed_ = message;
    state_->broken = message;
    mesh_->cancel(this);
    for (auto& [step, block] : scratch_) state_->pool.give_back(std::move(block));
    scratch_.clear();
    throw PeerError(message);
  }

  std::shared_ptr<State> state_;
  std::shared_ptr<TcpMesh> mesh_;
  std::shared_ptr<const RankProgram> program_;
  RankBuffers mem_;
  RunInfo info_;
  StepTracker tracker_;
  std::vector<std::uint8_t> outstanding_;  ///< per step: its pieces not done yet
  std::vector<std::uint8_t> open_;         ///< per step: which pieces (bits of Piece)
  std::map<std::uint32_t, std::vector<std::byte>> scratch_;  ///< reducing receives
  std::vector<std::byte> spare_;
  Clock::time_point last_progress_;
  std::uint64_t departures_seen_ = 0;
  std::optional<std::string> error_;  ///< set by a listener call; thrown by the run
  std::optional<std::string> failed_;
};

}  // namespace detail::tcp_host

/// The host backend's transport over TCP.
class TcpHostTransport final : public Transport {
 public:
  /// The job's transport: connects every pair of `bootstrap`'s ranks (collective over
  /// it), each listening at its `address` (start_job's Job::address). The bootstrap is
  /// needed only while this is built. `timeout` bounds the connecting and the
  /// transport's own bootstrap calls.
  TcpHostTransport(Bootstrap& bootstrap, const std::string& address,
                   std::chrono::milliseconds timeout, Logger log = Logger())
      : TcpHostTransport(
            detail::tcp_host::Group{std::make_shared<TcpMesh>(bootstrap, address, timeout, log),
                                    detail::tcp_host::world_comm, all_ranks(bootstrap.size()),
                                    bootstrap.rank()},
            timeout, log) {}

  [[nodiscard]] int rank() const override { return state_->group.rank; }
  [[nodiscard]] int size() const override { return state_->group.size(); }
  [[nodiscard]] std::string name() const override { return "host (TCP)"; }
  Bootstrap& bootstrap() override { return bootstrap_; }
  /// Messages carry the whole call number: any number may be in flight.
  [[nodiscard]] int max_in_flight() const override { return 1 << 30; }

  std::unique_ptr<TransportRun> start(std::shared_ptr<const RankProgram> program,
                                      std::vector<std::byte*> buffers,
                                      const RunInfo& info) override {
    check_program_fits(*program, rank(), size());
    return std::make_unique<detail::tcp_host::Run>(state_, std::move(program), std::move(buffers),
                                                   info);
  }

  std::unique_ptr<Transport> split(int color, int key) override {
    std::string mine(8, '\0');
    detail::wire::put32(mine.data(), static_cast<std::uint32_t>(color));
    detail::wire::put32(mine.data() + 4, static_cast<std::uint32_t>(key));
    const std::vector<std::string> all = bootstrap_.all_gather(mine);
    const std::uint64_t number = splits_++;
    if (color < 0) return nullptr;
    std::vector<std::pair<int, int>> chosen;  // (key, rank) of this color
    for (int r = 0; r < size(); ++r) {
      const std::string& b = all[static_cast<std::size_t>(r)];
      if (static_cast<int>(detail::wire::get32(b.data())) == color)
        chosen.emplace_back(static_cast<int>(detail::wire::get32(b.data() + 4)), r);
    }
    std::sort(chosen.begin(), chosen.end());
    detail::tcp_host::Group child;
    child.mesh = state_->group.mesh;
    child.comm = detail::tcp_host::mix(detail::tcp_host::mix(state_->group.comm, number),
                                       static_cast<std::uint64_t>(color));
    for (const auto& [k, r] : chosen) {
      if (r == rank()) child.rank = static_cast<int>(child.members.size());
      child.members.push_back(state_->group.at(r));
    }
    return std::unique_ptr<Transport>(new TcpHostTransport(std::move(child), timeout_, log_));
  }

 private:
  TcpHostTransport(detail::tcp_host::Group group, std::chrono::milliseconds timeout, Logger log)
      : state_(std::make_shared<detail::tcp_host::State>()),
        bootstrap_(group, timeout),
        timeout_(timeout),
        log_(log) {
    state_->group = std::move(group);
  }

  static std::vector<int> all_ranks(int size) {
    std::vector<int> r(static_cast<std::size_t>(size));
    std::iota(r.begin(), r.end(), 0);
    return r;
  }

  std::shared_ptr<detail::tcp_host::State> state_;
  MeshBootstrap bootstrap_;
  std::chrono::milliseconds timeout_;
  Logger log_;
  std::uint64_t splits_ = 0;
};

RAILCC_NAMESPACE_END
