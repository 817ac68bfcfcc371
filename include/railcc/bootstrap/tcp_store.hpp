// railcc/bootstrap/tcp_store.hpp: the bootstrap over TCP: rank 0 listens, every rank
// (rank 0 too) connects, and the server answers each collective once every rank has
// asked for it.
//
// This is how torchrun-launched jobs meet (rank 0 at MASTER_ADDR:MASTER_PORT). The
// server (TcpStoreServer) is one thread in rank 0's process that polls its connections.
// Each client call sends one request and waits for the answer; the server collects the
// requests of one call from every rank, checks they are the same call (kind, and root of
// a broadcast), and answers all of them at once. It fails the job with a PeerError that
// names ranks when:
//  - ranks do not connect within the timeout ("ranks 3, 7 of 8 did not join");
//  - a call is not made by every rank within the timeout after the first made it;
//  - a rank's connection closes before it said goodbye (its process died);
//  - ranks make different calls.
// A client whose server stops answering (rank 0 died) fails after the timeout plus a
// grace period, naming rank 0 and the store's address. Connecting retries until the
// timeout, so ranks may start before rank 0 listens.
// Wire format: a 32-byte header (magic, kind, aux, rank, sequence number, payload
// length; little-endian) and the payload. Blobs up to 1 GiB.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
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

RAILCC_NAMESPACE_BEGIN

namespace detail::tcp {

using namespace detail::wire;
using Clock = std::chrono::steady_clock;

inline constexpr std::uint32_t magic = 0x31424352;  // "RCB1"
inline constexpr std::uint64_t max_payload = std::uint64_t{1} << 30;

enum class Kind : std::uint32_t {
  hello = 1,    ///< client -> server: aux = world size
  welcome = 2,  ///< server -> client: every rank has joined
  all_gather = 3,
  broadcast = 4,  ///< aux = root
  barrier = 5,
  result = 6,   ///< server -> client: the answer to a call
  error = 7,    ///< server -> client: the job failed; payload = why
  goodbye = 8,  ///< client -> server: a clean close
};

[[nodiscard]] inline std::string_view kind_name(Kind k) {
  switch (k) {
    case Kind::hello: return "join";
    case Kind::welcome: return "welcome";
    case Kind::all_gather: return "all_gather";
    case Kind::broadcast: return "broadcast";
    case Kind::barrier: return "barrier";
    case Kind::result: return "result";
    case Kind::error: return "error";
    case Kind::goodbye: return "goodbye";
  }
  return "unknown";
}

struct Header {
  Kind kind{};
  std::uint32_t aux = 0;
  std::uint32_t rank = 0;
  std::uint64_t seq = 0;
  std::uint64_t length = 0;
};
inline constexpr std::size_t header_bytes = 32;

inline std::string frame(const Header& h, std::string_view payload) {
  std::string out(header_bytes + payload.size(), '\0');
  put32(out.data(), magic);
  put32(out.data() + 4, static_cast<std::uint32_t>(h.kind));
  put32(out.data() + 8, h.aux);
  put32(out.data() + 12, h.rank);
  put64(out.data() + 16, h.seq);
  put64(out.data() + 24, payload.size());
  // An empty view may hold no pointer at all, which memcpy must not be given.
  if (!payload.empty()) std::memcpy(out.data() + header_bytes, payload.data(), payload.size());
  return out;
}

/// Bytes received on a connection, cut into frames as they complete.
class Reader {
 public:
  /// Appends what `fd` has (without blocking). False at end of stream or on an error.
  bool fill(int fd) {
    char chunk[65536];
    while (true) {
      const ssize_t got = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
      if (got > 0) {
        buffer_.append(chunk, static_cast<std::size_t>(got));
        continue;
      }
      if (got == 0) return false;
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
  }
  /// The next whole frame, if one has arrived. Throws InputError on a malformed one.
  std::optional<std::pair<Header, std::string>> next() {
    if (buffer_.size() < header_bytes) return std::nullopt;
    if (get32(buffer_.data()) != magic)
      throw InputError("bootstrap: a connection sent bytes that are not railcc's bootstrap");
    Header h;
    h.kind = static_cast<Kind>(get32(buffer_.data() + 4));
    h.aux = get32(buffer_.data() + 8);
    h.rank = get32(buffer_.data() + 12);
    h.seq = get64(buffer_.data() + 16);
    h.length = get64(buffer_.data() + 24);
    if (h.length > max_payload)
      throw InputError("bootstrap: a message of " + std::to_string(h.length) +
                       " bytes, over the 1 GiB a bootstrap blob may have");
    if (buffer_.size() < header_bytes + h.length) return std::nullopt;
    std::string payload = buffer_.substr(header_bytes, h.length);
    buffer_.erase(0, header_bytes + h.length);
    return std::make_pair(h, std::move(payload));
  }

 private:
  std::string buffer_;
};

inline int millis_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, 100));
}

/// Sends all of `bytes` on a non-blocking socket; false if the peer is gone, or has not
/// taken them by `deadline` (a stopped process does not read).
inline bool send_all(int fd, std::string_view bytes,
                     Clock::time_point deadline = Clock::time_point::max()) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (Clock::now() >= deadline) return false;
      pollfd p{fd, POLLOUT, 0};
      (void)::poll(&p, 1, millis_until(deadline));
      continue;
    }
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

struct AddrInfo {
  addrinfo* list = nullptr;
  AddrInfo() = default;
  AddrInfo(const AddrInfo&) = delete;
  AddrInfo& operator=(const AddrInfo&) = delete;
  ~AddrInfo() {
    if (list != nullptr) ::freeaddrinfo(list);
  }
};

inline void resolve(AddrInfo& out, const std::string& host, int port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  const std::string service = std::to_string(port);
  const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &out.list);
  if (rc != 0) {
    throw InputError("bootstrap: cannot resolve the store's host \"" + host +
                     "\": " + ::gai_strerror(rc));
  }
}

class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Socket& operator=(Socket&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

/// One try at connecting to host:port (each address it resolves to), by `deadline`: a
/// non-blocking socket with TCP_NODELAY, or an invalid one and `why` says what failed.
inline Socket connect_once(const std::string& host, int port, Clock::time_point deadline,
                           std::string& why) {
  AddrInfo addrs;
  resolve(addrs, host, port, false);
  for (addrinfo* a = addrs.list; a != nullptr; a = a->ai_next) {
    Socket s(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK, a->ai_protocol));
    if (!s.valid()) continue;
    int rc = ::connect(s.fd(), a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{s.fd(), POLLOUT, 0};
      while ((rc = ::poll(&p, 1, millis_until(deadline))) == 0 && Clock::now() < deadline) {
      }
      int error = rc > 0 ? 0 : ETIMEDOUT;
      socklen_t len = sizeof error;
      if (rc > 0) ::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &error, &len);
      rc = error == 0 ? 0 : -1;
      errno = error;
    }
    if (rc == 0) {
      const int one = 1;
      (void)::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return s;
    }
    why = std::strerror(errno);
  }
  return Socket();
}

/// The numeric address and port of a socket's own end ("10.0.0.7", 41234).
inline std::pair<std::string, int> local_end(int fd) {
  sockaddr_storage self{};
  socklen_t length = sizeof self;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &length) != 0) return {"", 0};
  char host[NI_MAXHOST];
  char service[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<sockaddr*>(&self), length, host, sizeof host, service,
                    sizeof service, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return {"", 0};
  return {host, std::atoi(service)};
}

}  // namespace detail::tcp

/// Rank 0's side of the TCP store: listens, collects each call from every rank, answers.
/// Runs on a thread of its own until every rank has said goodbye, the job has failed, or
/// it is destroyed.
class TcpStoreServer {
 public:
  /// Listens at host:port (port 0: a free port, see port()) for `size` ranks.
  TcpStoreServer(const std::string& host, int port, int size, std::chrono::milliseconds timeout,
                 Logger log = Logger())
      : size_(size), timeout_(timeout), log_(log) {
    using namespace detail::tcp;
    if (size < 1) throw InputError("bootstrap: a job of " + std::to_string(size) + " ranks");
    if (port < 0 || port > 65535)
      throw InputError("bootstrap: port " + std::to_string(port) + " is not in 0..65535");
    AddrInfo addrs;
    resolve(addrs, host, port, true);
    std::string why;
    for (addrinfo* a = addrs.list; a != nullptr && !listener_.valid(); a = a->ai_next) {
      Socket s(::socket(a->ai_family, a->ai_socktype, a->ai_protocol));
      if (!s.valid()) continue;
      const int one = 1;
      (void)::setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(s.fd(), a->ai_addr, a->ai_addrlen) != 0 ||
          ::listen(s.fd(), std::min(size, 4096)) != 0) {
        why = std::strerror(errno);
        // torchrun's own store holds MASTER_PORT on rank 0's host.
        if (errno == EADDRINUSE)
          why +=
              " (another process holds the port, as torchrun's own store does: set "
              "RAILCC_BOOTSTRAP_ADDR to a free port on rank 0's host)";
        continue;
      }
      listener_ = std::move(s);
    }
    if (!listener_.valid()) {
      throw InputError("bootstrap: rank 0 cannot listen at " + host + ":" + std::to_string(port) +
                       ": " + why);
    }
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    ::getsockname(listener_.fd(), reinterpret_cast<sockaddr*>(&bound), &length);
    port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    where_ = host + ":" + std::to_string(port_);
    log_.info("bootstrap: store listening at " + where_ + " for " + std::to_string(size) +
              " ranks");
    thread_ = std::thread([this] { serve(); });
  }
  TcpStoreServer(const TcpStoreServer&) = delete;
  TcpStoreServer& operator=(const TcpStoreServer&) = delete;
  ~TcpStoreServer() {
    // Waits for the ranks' goodbyes up to the timeout, then stops.
    const auto deadline = detail::tcp::Clock::now() + timeout_;
    while (!done_.load() && detail::tcp::Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

  [[nodiscard]] int port() const { return port_; }

 private:
  struct Connection {
    detail::tcp::Socket socket;
    detail::tcp::Reader reader;
    int rank = -1;
    bool said_goodbye = false;
  };
  struct Request {
    detail::tcp::Kind kind{};
    std::uint32_t aux = 0;
    std::string payload;
  };

  void serve() {
    using namespace detail::tcp;
    std::vector<Connection> conns;
    std::vector<int> of_rank(static_cast<std::size_t>(size_), -1);  // rank -> connection
    std::vector<std::optional<Request>> pending(static_cast<std::size_t>(size_));
    int joined = 0, goodbyes = 0, waiting = 0;
    bool welcomed = false, failed = false;
    std::uint64_t seq = 0;
    const auto started = Clock::now();
    auto deadline = started + timeout_;
    std::vector<pollfd> polls;

    const auto fail = [&](const std::string& why) {
      log_.warn(why);
      const std::string msg = frame({Kind::error, 0, 0, seq, 0}, why);
      const auto until = Clock::now() + std::chrono::seconds(1);
      for (Connection& c : conns) {
        if (c.socket.valid() && !c.said_goodbye) (void)send_all(c.socket.fd(), msg, until);
      }
      failed = true;
    };
    // Sends every rank `msg`; false (the job failed) if one does not take it in time.
    const auto to_every_rank = [&](const std::string& msg, const std::string& what) {
      const auto until = Clock::now() + timeout_;
      for (int r = 0; r < size_; ++r) {
        const int c = of_rank[static_cast<std::size_t>(r)];
        if (!send_all(conns[static_cast<std::size_t>(c)].socket.fd(), msg, until)) {
          fail("bootstrap: rank " + std::to_string(r) + " did not take " + what + " within " +
               duration_text(timeout_) + " (its process is stopped or has left)");
          return false;
        }
      }
      return true;
    };
    const auto missing = [&](auto&& has) {
      std::vector<int> out;
      for (int r = 0; r < size_; ++r)
        if (!has(r)) out.push_back(r);
      return out;
    };
    const auto answer = [&]() {
      // Every rank has made call `seq`: the same call?
      const Request& first = *pending[0];
      for (int r = 1; r < size_; ++r) {
        const Request& other = *pending[static_cast<std::size_t>(r)];
        if (other.kind != first.kind || other.aux != first.aux) {
          const auto name = [](const Request& q) {
            std::string s(kind_name(q.kind));
            if (q.kind == Kind::broadcast) s += " from root " + std::to_string(q.aux);
            return s;
          };
          fail("bootstrap: ranks made different calls as call #" + std::to_string(seq) +
               " on the store: rank 0 " + name(first) + ", rank " + std::to_string(r) + " " +
               name(other));
          return;
        }
      }
      std::string payload;
      if (first.kind == Kind::all_gather) {
        std::vector<std::string_view> blobs;
        for (const auto& q : pending) blobs.emplace_back(q->payload);
        payload = pack_blobs(blobs);
      } else if (first.kind == Kind::broadcast) {
        payload = pending[first.aux]->payload;
      }
      if (!to_every_rank(frame({Kind::result, 0, 0, seq, 0}, payload),
                         "the answer to call #" + std::to_string(seq)))
        return;
      for (auto& q : pending) q.reset();
      waiting = 0;
      ++seq;
      deadline = Clock::time_point::max();
    };
    // A frame from connection `ci`.
    const auto take = [&](std::size_t ci, const Header& h, std::string payload) {
      Connection& c = conns[ci];
      if (c.rank < 0) {
        if (h.kind != Kind::hello)
          throw InputError("bootstrap: a connection's first message is not a join");
        if (h.aux != static_cast<std::uint32_t>(size_)) {
          fail("bootstrap: rank " + std::to_string(h.rank) + " joined a job of " +
               std::to_string(h.aux) + " ranks, but the store at " + where_ + " serves " +
               std::to_string(size_));
          return;
        }
        if (h.rank >= static_cast<std::uint32_t>(size_)) {
          fail("bootstrap: a process joined as rank " + std::to_string(h.rank) +
               ", not a rank of " + std::to_string(size_));
          return;
        }
        if (of_rank[h.rank] >= 0) {
          fail("bootstrap: two processes joined as rank " + std::to_string(h.rank));
          return;
        }
        c.rank = static_cast<int>(h.rank);
        of_rank[h.rank] = static_cast<int>(ci);
        if (++joined == size_) {
          log_.info("bootstrap: all " + std::to_string(size_) + " ranks joined in " +
                    std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       Clock::now() - started)
                                       .count()) +
                    " ms");
          welcomed = true;
          if (!to_every_rank(frame({Kind::welcome, 0, 0, 0, 0}, {}), "its welcome")) return;
          deadline = Clock::time_point::max();
        }
        return;
      }
      const auto closed_early = [&](int rank) {
        fail("bootstrap: rank " + std::to_string(rank) +
             " closed its bootstrap without making call #" + std::to_string(seq) +
             ", which other ranks wait in");
      };
      if (h.kind == Kind::goodbye) {
        c.said_goodbye = true;
        ++goodbyes;
        if (waiting > 0 && !pending[static_cast<std::size_t>(c.rank)]) closed_early(c.rank);
        return;
      }
      if (h.kind != Kind::all_gather && h.kind != Kind::broadcast && h.kind != Kind::barrier)
        throw InputError("bootstrap: rank " + std::to_string(c.rank) + " sent an unknown message");
      if (goodbyes > 0) {
        for (const Connection& other : conns) {
          if (other.said_goodbye) {
            closed_early(other.rank);
            return;
          }
        }
      }
      auto& slot = pending[static_cast<std::size_t>(c.rank)];
      if (h.seq != seq || slot) {
        fail("bootstrap: rank " + std::to_string(c.rank) + " made call #" + std::to_string(h.seq) +
             " while the store waited for call #" + std::to_string(seq));
        return;
      }
      if (h.kind == Kind::broadcast && h.aux >= static_cast<std::uint32_t>(size_)) {
        fail("bootstrap: rank " + std::to_string(c.rank) + " broadcast from root " +
             std::to_string(h.aux) + ", not a rank of " + std::to_string(size_));
        return;
      }
      slot = Request{h.kind, h.aux, std::move(payload)};
      if (waiting++ == 0) deadline = Clock::now() + timeout_;
      if (waiting == size_) answer();
    };

    while (!stop_.load() && !failed && goodbyes < size_) {
      polls.clear();
      polls.push_back({listener_.fd(), POLLIN, 0});
      for (const Connection& c : conns) polls.push_back({c.socket.fd(), POLLIN, 0});
      const int ready =
          ::poll(polls.data(), polls.size(),
                 millis_until(std::min(deadline, Clock::now() + std::chrono::milliseconds(100))));
      if (ready < 0 && errno != EINTR) {
        fail(std::string("bootstrap: the store's poll failed: ") + std::strerror(errno));
        break;
      }
      if (polls[0].revents & POLLIN) {
        // Non-blocking: a send to a rank that does not read must not stop the server.
        Socket s(::accept4(listener_.fd(), nullptr, nullptr, SOCK_NONBLOCK));
        if (s.valid()) {
          const int one = 1;
          (void)::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conns.push_back(Connection{std::move(s), {}, -1, false});
          polls.push_back({-1, 0, 0});  // keeps polls aligned with conns below
        }
      }
      for (std::size_t ci = 0; ci + 1 < polls.size() && !failed; ++ci) {
        if (ci >= conns.size() || (polls[ci + 1].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
          continue;
        Connection& c = conns[ci];
        if (!c.socket.valid()) continue;
        const bool open = c.reader.fill(c.socket.fd());
        try {
          while (!failed) {
            auto f = c.reader.next();
            if (!f) break;
            take(ci, f->first, std::move(f->second));
          }
        } catch (const InputError& e) {
          if (c.rank >= 0) {
            fail(std::string(e.what()) + " (rank " + std::to_string(c.rank) + ")");
          } else {
            log_.warn(std::string(e.what()) + ": connection dropped");
            c.socket.reset();
          }
          continue;
        }
        if (!open && !failed) {
          if (c.rank >= 0 && !c.said_goodbye) {
            fail("bootstrap: rank " + std::to_string(c.rank) +
                 " left the job: its connection to the store at " + where_ + " closed " +
                 (welcomed ? "during call #" + std::to_string(seq) : "before every rank joined") +
                 " (its process exited or failed)");
          }
          c.socket.reset();
        }
      }
      if (failed || Clock::now() < deadline) continue;
      if (!welcomed) {
        fail("bootstrap: ranks " +
             list_ranks(missing([&](int r) { return of_rank[static_cast<std::size_t>(r)] >= 0; })) +
             " of " + std::to_string(size_) + " did not join the store at " + where_ + " within " +
             duration_text(timeout_));
      } else if (waiting > 0) {
        const auto first =
            std::find_if(pending.begin(), pending.end(), [](auto& q) { return q.has_value(); });
        fail("bootstrap: call #" + std::to_string(seq) + " (" +
             std::string(kind_name((*first)->kind)) + ") timed out after " +
             duration_text(timeout_) + ": ranks " + list_ranks(missing([&](int r) {
               return pending[static_cast<std::size_t>(r)].has_value();
             })) +
             " of " + std::to_string(size_) + " did not make it");
      }
    }
    done_.store(true);
  }

  int size_;
  std::chrono::milliseconds timeout_;
  Logger log_;
  detail::tcp::Socket listener_;
  int port_ = 0;
  std::string where_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

/// Where the store is and how long any wait may take.
struct TcpStoreOptions {
  std::string host = "127.0.0.1";
  /// 0 only with a server made beforehand: TcpStoreServer picks a free port, and its
  /// port() is what the other ranks need (rank 0's store blocks until they join).
  int port = 0;
  std::chrono::milliseconds timeout{std::chrono::seconds(120)};
  Logger log{};
};

/// One rank's connection to the store. Rank 0 also runs the server unless it is handed
/// one (a test that must know the port before the other ranks start).
class TcpStore final : public Bootstrap {
 public:
  TcpStore(int rank, int size, TcpStoreOptions options,
           std::unique_ptr<TcpStoreServer> server = nullptr)
      : rank_(rank), size_(size), options_(std::move(options)), server_(std::move(server)) {
    using namespace detail::tcp;
    if (size < 1 || rank < 0 || rank >= size) {
      throw InputError("bootstrap: rank " + std::to_string(rank) + " of a job of " +
                       std::to_string(size) + " ranks");
    }
    options_.log.set_rank(rank);
    if (rank == 0 && !server_) {
      server_ = std::make_unique<TcpStoreServer>(options_.host, options_.port, size,
                                                 options_.timeout, options_.log);
    }
    if (server_) options_.port = server_->port();
    where_ = options_.host + ":" + std::to_string(options_.port);
    connect();
    send(Kind::hello, static_cast<std::uint32_t>(size), {});
    (void)receive("join", Kind::welcome);
    options_.log.info("bootstrap: joined the store at " + where_ + " as rank " +
                      std::to_string(rank) + " of " + std::to_string(size));
  }
  TcpStore(const TcpStore&) = delete;
  TcpStore& operator=(const TcpStore&) = delete;
  ~TcpStore() override {
    if (socket_.valid() && !broken_)
      (void)detail::tcp::send_all(
          socket_.fd(),
          detail::tcp::frame(
              {detail::tcp::Kind::goodbye, 0, static_cast<std::uint32_t>(rank_), seq_, 0}, {}));
    socket_.reset();
    server_.reset();  // rank 0: waits for the others' goodbyes (up to the timeout)
  }

  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return size_; }
  /// The address this rank reached the store from: one the other ranks can reach it at
  /// too (the store's host routes to it), for a transport to listen on.
  [[nodiscard]] std::string local_address() const {
    return detail::tcp::local_end(socket_.fd()).first;
  }

  std::vector<std::string> all_gather(std::string_view mine) override {
    auto blobs = detail::wire::unpack_blobs(call(detail::tcp::Kind::all_gather, 0, mine), size_);
    if (!blobs) throw broken("all_gather: the store's answer is malformed");
    return std::move(*blobs);
  }
  std::string broadcast(std::string_view blob, int root) override {
    detail::wire::check_root(root, size_);
    return call(detail::tcp::Kind::broadcast, static_cast<std::uint32_t>(root),
                root == rank_ ? blob : std::string_view{});
  }
  void barrier() override { (void)call(detail::tcp::Kind::barrier, 0, {}); }

 private:
  PeerError broken(const std::string& why) {
    broken_ = true;
    return PeerError("bootstrap: rank " + std::to_string(rank_) + ": " + why);
  }
  /// The job's failure as the store sent it (it names the ranks), and where this rank was.
  PeerError told(const std::string& why, std::string_view what) {
    broken_ = true;
    return PeerError(why + "; rank " + std::to_string(rank_) + " was in " + std::string(what));
  }

  void connect() {
    using namespace detail::tcp;
    const auto deadline = Clock::now() + options_.timeout;
    auto pause = std::chrono::milliseconds(5);
    std::string why = "no address";
    while (true) {
      socket_ = connect_once(options_.host, options_.port, deadline, why);
      if (socket_.valid()) return;
      if (Clock::now() + pause >= deadline) {
        broken_ = true;
        throw PeerError("bootstrap: rank " + std::to_string(rank_) +
                        " could not reach the store at " + where_ + " within " +
                        duration_text(options_.timeout) + " (" + why +
                        "): rank 0 listens there; is it running, and is the address right?");
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(200));
    }
  }

  void send(detail::tcp::Kind kind, std::uint32_t aux, std::string_view payload) {
    using namespace detail::tcp;
    const auto grace = std::max(options_.timeout / 2, std::chrono::milliseconds(2000));
    const auto deadline = Clock::now() + options_.timeout + grace;
    if (!send_all(socket_.fd(),
                  frame({kind, aux, static_cast<std::uint32_t>(rank_), seq_, 0}, payload),
                  deadline)) {
      if (Clock::now() >= deadline) {
        throw broken("the store at " + where_ + " (rank 0) did not take this rank's " +
                     std::string(kind_name(kind)) + " within " +
                     duration_text(options_.timeout + grace) + ": rank 0 may have stopped");
      }
      // The store may have said why it closed before it did.
      if (!reader_.fill(socket_.fd())) closed_ = true;
      try {
        while (auto f = reader_.next()) {
          if (f->first.kind == Kind::error)
            throw told(f->second, std::string(kind_name(kind)) + " #" + std::to_string(seq_));
        }
      } catch (const InputError& e) {
        throw broken(e.what());
      }
      throw broken("the store at " + where_ +
                   " (rank 0) closed the connection: rank 0 has exited or failed");
    }
  }

  /// The answer to what was just sent: `expected`, or the job's failure as a PeerError.
  std::string receive(std::string_view what, detail::tcp::Kind expected) {
    using namespace detail::tcp;
    // The server times a call out after `timeout` and says who is missing; past that and
    // a grace period, the server itself is gone.
    const auto grace = std::max(options_.timeout / 2, std::chrono::milliseconds(2000));
    const auto deadline = Clock::now() + options_.timeout + grace;
    while (true) {
      std::optional<std::pair<Header, std::string>> f;
      try {
        f = reader_.next();
      } catch (const InputError& e) {
        throw broken(e.what());
      }
      if (f) {
        if (f->first.kind == Kind::error) throw told(f->second, what);
        if (f->first.kind != expected)
          throw broken("the store answered " + std::string(what) + " with a " +
                       std::string(kind_name(f->first.kind)));
        return std::move(f->second);
      }
      // Frames received before the store closed the connection (an answer, or an error
      // that says why it closed) come first.
      if (closed_) {
        throw broken("the store at " + where_ + " (rank 0) closed the connection during " +
                     std::string(what) + ": rank 0 has exited or failed");
      }
      if (Clock::now() >= deadline) {
        throw broken("the store at " + where_ + " (rank 0) did not answer " + std::string(what) +
                     " within " + duration_text(options_.timeout + grace) +
                     ": rank 0 may have stopped");
      }
      pollfd p{socket_.fd(), POLLIN, 0};
      (void)::poll(&p, 1, millis_until(deadline));
      if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0 && !reader_.fill(socket_.fd()))
        closed_ = true;
    }
  }

  std::string call(detail::tcp::Kind kind, std::uint32_t aux, std::string_view payload) {
    if (broken_)
      throw PeerError("bootstrap: rank " + std::to_string(rank_) +
                      ": an earlier bootstrap call failed; the job cannot go on");
    const std::string what =
        std::string(detail::tcp::kind_name(kind)) + " #" + std::to_string(seq_);
    send(kind, aux, payload);
    std::string out = receive(what, detail::tcp::Kind::result);
    ++seq_;
    return out;
  }

  int rank_;
  int size_;
  TcpStoreOptions options_;
  std::unique_ptr<TcpStoreServer> server_;
  std::string where_;
  detail::tcp::Socket socket_;
  detail::tcp::Reader reader_;
  std::uint64_t seq_ = 0;
  bool broken_ = false;
  bool closed_ = false;  ///< the store closed the connection (frames before it may remain)
};

RAILCC_NAMESPACE_END
