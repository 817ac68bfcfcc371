// railcc/mpi/bootstrap.hpp: the bootstrap over MPI (MpiBootstrap), for jobs that mpirun
// or srun started with MPI initialised: no address to agree on, and the same named
// failures as the TCP store.
//
// MPI's own collectives cannot time out, and a rank that never makes one hangs every
// other rank in it. So the calls go through rank 0 as the TCP store's do, over a private
// duplicate of the communicator, with point-to-point messages that are polled
// (MPI_Iprobe) against a deadline:
//  - every rank but 0 sends its request (the call's kind, its root, its number and its
//    blob) to rank 0, then polls for rank 0's answer;
//  - rank 0 collects the requests of the call until every rank's has come or the
//    timeout has passed, checks they are the same call, and sends each rank the answer,
//    or an error naming the ranks that did not make the call, or that made another, to
//    every rank; the call then throws a PeerError on every rank with that message;
//  - a rank whose answer does not come within the timeout and a grace period fails,
//    naming rank 0.
// A job is broken after a failure: later calls throw at once. Blobs up to 1 GiB (MPI
// counts are ints). A rank whose process dies is Open MPI's to report (mpirun ends the
// job and names it); one that stops or is late is named here.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "railcc/bootstrap/bootstrap.hpp"
#include "railcc/bootstrap/wire.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/log.hpp"
#include "railcc/mpi/mpi_api.hpp"

RAILCC_NAMESPACE_BEGIN

namespace detail::mpi_boot {

using namespace detail::wire;

using Clock = std::chrono::steady_clock;
inline constexpr int request_tag = 1;
inline constexpr int answer_tag = 2;

enum class Kind : std::uint32_t {
  all_gather = 1,
  broadcast = 2,
  barrier = 3,
  answer = 4,
  error = 5
};

inline std::string kind_name(Kind k) {
  switch (k) {
    case Kind::all_gather: return "all_gather";
    case Kind::broadcast: return "broadcast";
    case Kind::barrier: return "barrier";
    case Kind::answer: return "answer";
    case Kind::error: return "error";
  }
  return "unknown";
}

/// A 24-byte little-endian header (kind, aux, sequence number, then 8 spare) and the
/// payload.
struct Message {
  Kind kind{};
  std::uint32_t aux = 0;
  std::uint64_t seq = 0;
  std::string payload;
};
inline constexpr std::size_t header_bytes = 24;

inline std::string encode(const Message& m) {
  std::string out(header_bytes + m.payload.size(), '\0');
  put32(out.data(), static_cast<std::uint32_t>(m.kind));
  put32(out.data() + 4, m.aux);
  put64(out.data() + 8, m.seq);
  std::copy(m.payload.begin(), m.payload.end(), out.begin() + header_bytes);
  return out;
}
inline Message decode(const std::string& bytes) {
  if (bytes.size() < header_bytes) throw PeerError("bootstrap (MPI): a message cut short");
  Message m;
  m.kind = static_cast<Kind>(get32(bytes.data()));
  m.aux = get32(bytes.data() + 4);
  m.seq = get64(bytes.data() + 8);
  m.payload = bytes.substr(header_bytes);
  return m;
}

inline void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  throw PeerError(std::string("bootstrap (MPI): ") + what +
                  " failed: " + detail::mpi_api::error_text(rc));
}

}  // namespace detail::mpi_boot

class MpiBootstrap final : public Bootstrap {
 public:
  /// Over a duplicate of `comm` (MPI must be initialised; it must stay so while this
  /// lives). `timeout`: how long a call may wait for the other ranks (docs/env.md,
  /// RAILCC_BOOTSTRAP_TIMEOUT).
  MpiBootstrap(MPI_Comm comm, std::chrono::milliseconds timeout, Logger log = Logger())
      : timeout_(timeout), log_(log) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized == 0)
      throw InputError("bootstrap (MPI): MPI is not initialised (call MPI_Init first)");
    detail::mpi_boot::check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    log_.set_rank(rank_);
  }
  MpiBootstrap(const MpiBootstrap&) = delete;
  MpiBootstrap& operator=(const MpiBootstrap&) = delete;
  ~MpiBootstrap() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized == 0 && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }

  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return size_; }

  std::vector<std::string> all_gather(std::string_view mine) override {
    auto blobs =
        detail::wire::unpack_blobs(call(detail::mpi_boot::Kind::all_gather, 0, mine), size_);
    if (!blobs) throw fail_here("all_gather: rank 0's answer is malformed");
    return std::move(*blobs);
  }
  std::string broadcast(std::string_view blob, int root) override {
    detail::wire::check_root(root, size_);
    return call(detail::mpi_boot::Kind::broadcast, static_cast<std::uint32_t>(root),
                root == rank_ ? blob : std::string_view{});
  }
  void barrier() override { (void)call(detail::mpi_boot::Kind::barrier, 0, {}); }

 private:
  PeerError fail_here(const std::string& why) {
    broken_ = true;
    return PeerError("bootstrap (MPI): rank " + std::to_string(rank_) + ": " + why);
  }

  /// Polls for a message from `source` (MPI_ANY_SOURCE: any) with `tag` until
  /// `deadline`; its bytes and its source, or nothing at the deadline.
  std::optional<std::pair<std::string, int>> poll_receive(
      int source, int tag, detail::mpi_boot::Clock::time_point deadline) {
    auto pause = std::chrono::microseconds(20);
    while (true) {
      int flag = 0;
      MPI_Status status;
      detail::mpi_boot::check(MPI_Iprobe(source, tag, comm_, &flag, &status), "MPI_Iprobe");
      if (flag != 0) {
        int count = 0;
        MPI_Get_count(&status, MPI_BYTE, &count);
        std::string bytes(static_cast<std::size_t>(count), '\0');
        detail::mpi_boot::check(MPI_Recv(bytes.data(), count, MPI_BYTE, status.MPI_SOURCE, tag,
                                         comm_, MPI_STATUS_IGNORE),
                                "MPI_Recv");
        return std::make_pair(std::move(bytes), status.MPI_SOURCE);
      }
      if (detail::mpi_boot::Clock::now() >= deadline) return std::nullopt;
      // Ranks may share cores (oversubscribed): do not spin.
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
  }

  /// Sends each of `to` its message and waits until they have left (or `deadline`).
  void send_all(const std::vector<std::pair<int, std::string>>& to,
                detail::mpi_boot::Clock::time_point deadline) {
    std::vector<MPI_Request> requests(to.size(), MPI_REQUEST_NULL);
    for (std::size_t i = 0; i < to.size(); ++i) {
      detail::mpi_boot::check(
          MPI_Isend(to[i].second.data(), static_cast<int>(to[i].second.size()), MPI_BYTE,
                    to[i].first, detail::mpi_boot::answer_tag, comm_, &requests[i]),
          "MPI_Isend");
    }
    while (true) {
      int done = 0;
      detail::mpi_boot::check(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done,
                                          MPI_STATUSES_IGNORE),
                              "MPI_Testall");
      if (done != 0) return;
      if (detail::mpi_boot::Clock::now() >= deadline) {
        // A rank that stopped never takes its answer: leave the sends to MPI.
        for (MPI_Request& r : requests)
          if (r != MPI_REQUEST_NULL) MPI_Request_free(&r);
        return;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  std::string call(detail::mpi_boot::Kind kind, std::uint32_t aux, std::string_view payload) {
    using namespace detail::mpi_boot;
    if (broken_) {
      throw PeerError("bootstrap (MPI): rank " + std::to_string(rank_) +
                      ": an earlier bootstrap call failed; the job cannot go on");
    }
    if (payload.size() > (std::size_t{1} << 30))
      throw InputError("bootstrap (MPI): a blob of " + std::to_string(payload.size()) +
                       " bytes, over the 1 GiB a bootstrap blob may have");
    const std::uint64_t seq = seq_++;
    const std::string what = kind_name(kind) + " #" + std::to_string(seq);
    const Message mine{kind, aux, seq, std::string(payload)};
    if (rank_ != 0) {
      const std::string bytes = encode(mine);
      MPI_Request request = MPI_REQUEST_NULL;
      check(MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, 0, request_tag, comm_,
                      &request),
            "MPI_Isend");
      const auto grace = std::max(timeout_ / 2, std::chrono::milliseconds(2000));
      const auto answer = poll_receive(0, answer_tag, Clock::now() + timeout_ + grace);
      if (!answer) {
        MPI_Request_free(&request);
        throw fail_here("rank 0 did not answer " + what + " within " +
                        duration_text(timeout_ + grace) + ": rank 0 may have stopped");
      }
      Message m = decode(answer->first);
      if (m.kind == Kind::error) {
        // Rank 0 may have given up before it took this rank's request.
        MPI_Request_free(&request);
        broken_ = true;
        throw PeerError(m.payload + "; rank " + std::to_string(rank_) + " was in " + what);
      }
      MPI_Wait(&request, MPI_STATUS_IGNORE);
      if (m.kind != Kind::answer || m.seq != seq)
        throw fail_here("rank 0 answered " + what + " out of turn");
      return std::move(m.payload);
    }
    // Rank 0: every rank's request for this call.
    std::vector<std::optional<Message>> got(static_cast<std::size_t>(size_));
    got[0] = mine;
    int arrived = 1;
    const auto deadline = Clock::now() + timeout_;
    std::string failure;
    while (arrived < size_ && failure.empty()) {
      auto bytes = poll_receive(MPI_ANY_SOURCE, request_tag, deadline);
      if (!bytes) {
        std::vector<int> missing;
        for (int r = 0; r < size_; ++r)
          if (!got[static_cast<std::size_t>(r)]) missing.push_back(r);
        failure = "bootstrap (MPI): call #" + std::to_string(seq) + " (" + kind_name(kind) +
                  ") timed out after " + duration_text(timeout_) + ": ranks " +
                  list_ranks(missing) + " of " + std::to_string(size_) + " did not make it";
        break;
      }
      Message m = decode(bytes->first);
      const int from = bytes->second;
      if (m.seq != seq || got[static_cast<std::size_t>(from)]) {
        failure = "bootstrap (MPI): rank " + std::to_string(from) + " made call #" +
                  std::to_string(m.seq) + " while rank 0 made call #" + std::to_string(seq);
        break;
      }
      if (m.kind != kind || m.aux != aux) {
        const auto name = [](const Message& q) {
          std::string s = kind_name(q.kind);
          if (q.kind == Kind::broadcast) s += " from root " + std::to_string(q.aux);
          return s;
        };
        failure = "bootstrap (MPI): ranks made different calls as call #" + std::to_string(seq) +
                  ": rank 0 " + name(mine) + ", rank " + std::to_string(from) + " " + name(m);
        break;
      }
      got[static_cast<std::size_t>(from)] = std::move(m);
      ++arrived;
    }
    std::vector<std::pair<int, std::string>> answers;
    if (!failure.empty()) {
      log_.warn(failure);
      broken_ = true;
      const std::string error = encode({Kind::error, 0, seq, failure});
      for (int r = 1; r < size_; ++r) answers.emplace_back(r, error);
      send_all(answers, Clock::now() + std::chrono::milliseconds(500));
      throw PeerError(failure);
    }
    std::string result;
    if (kind == Kind::all_gather) {
      std::vector<std::string_view> blobs;
      for (const auto& q : got) blobs.emplace_back(q->payload);
      result = pack_blobs(blobs);
    } else if (kind == Kind::broadcast) {
      result = got[aux]->payload;
    }
    const std::string answer = encode({Kind::answer, 0, seq, result});
    for (int r = 1; r < size_; ++r) answers.emplace_back(r, answer);
    send_all(answers, Clock::now() + timeout_);
    return result;
  }

  std::chrono::milliseconds timeout_;
  Logger log_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  std::uint64_t seq_ = 0;
  bool broken_ = false;
};

RAILCC_NAMESPACE_END
