// railcc/comm/tcp_mesh.hpp: a TCP connection between every pair of a job's ranks, and
// the tagged messages the host backend's TCP transport (tcp_transport.hpp) sends on them.
//
// Built once per job, collectively over a bootstrap: every rank listens on a free port
// at its address (the one it reached the bootstrap's store from), the addresses and a
// job nonce are all-gathered, rank i connects to every rank below it and accepts every
// rank above it. Connections are made before anyone accepts (the kernel's backlog holds
// them), so the order cannot deadlock. A job of P ranks holds P - 1 connections per
// rank: meant for host-memory jobs of up to a few hundred ranks, as MPI's TCP transport.
//
// Messages carry a key (communicator id, sequence number, operation, kind) and a length;
// a receiver matches them to what it posted by key and sending rank, as MPI matches
// tags. A message whose receive is posted is read straight into its memory; one that
// arrives first is kept until it is posted (as MPI's unexpected messages). Sends are not
// copied: their memory must stay until the mesh says they left.
// Progress happens only in progress(): one poll() over every connection, then as much
// reading and writing as the sockets take without blocking. progress(wait) blocks in
// poll() up to `wait` when there is nothing to do, so ranks that share cores sleep
// instead of spinning.
// Peers: a rank that destroys its mesh says goodbye first; one whose connection closes
// without that (its process exited or was killed) or sends bytes that are not railcc's is
// dead, with the reason. Users of the mesh (runs, bootstraps) look at the peers they wait
// for and fail naming them; the mesh itself goes on for the others, so a communicator
// split off without the dead rank still works.
// Thread safety: every public call takes the mesh's lock (recursive: a listener called
// back from progress() may send), so communicators that share a mesh may be used from
// different threads.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "railcc/bootstrap/bootstrap.hpp"
#include "railcc/bootstrap/tcp_store.hpp"
#include "railcc/bootstrap/wire.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/log.hpp"

RAILCC_NAMESPACE_BEGIN

/// What a message is: matched with what a receiver posted by this and the sending rank.
struct MeshKey {
  std::uint64_t comm = 0;  ///< the communicator (transports split off get their own)
  std::uint64_t seq = 0;   ///< the call's number (or the bootstrap call's)
  std::uint32_t op = 0;    ///< the plan's operation (or the bootstrap call's kind)
  std::uint32_t kind = 0;  ///< MeshKind
  auto operator<=>(const MeshKey&) const = default;
};

enum class MeshKind : std::uint32_t {
  data = 1,       ///< a collective's data
  ack = 2,        ///< a collective's acknowledgement that data was written
  p2p_data = 3,   ///< a send/recv call's data
  p2p_ack = 4,    ///< and its acknowledgement
  bootstrap = 5,  ///< a bootstrap call's blob
  hello = 6,      ///< a new connection: seq = the connecting rank, comm = the job's nonce
  goodbye = 7,    ///< the rank destroyed its mesh: not a failure
};

/// Told what happened to a message it sent or posted (tokens are its own). Called from
/// progress(), post() and send(), under the mesh's lock.
class MeshListener {
 public:
  MeshListener() = default;
  MeshListener(const MeshListener&) = delete;
  MeshListener& operator=(const MeshListener&) = delete;
  virtual ~MeshListener() = default;
  /// A send's bytes are all with the kernel: its memory may be reused.
  virtual void sent(std::uint64_t token) = 0;
  /// A posted message has arrived: in the posted memory when `buffered` is null, else in
  /// `buffered` (it arrived before it was posted; valid during the call only).
  virtual void received(std::uint64_t token, const std::byte* buffered) = 0;
  /// A posted message arrived with `bytes`, not the length posted (ranks that disagree on
  /// counts or types); its bytes were dropped.
  virtual void refused(std::uint64_t token, std::uint64_t bytes) = 0;
};

namespace detail::mesh {

using Clock = std::chrono::steady_clock;
inline constexpr std::uint32_t magic = 0x314d4352;  // "RCM1"
inline constexpr std::size_t header_bytes = 40;
inline constexpr std::size_t stage_bytes = std::size_t{64} << 10;
/// Payloads this long or longer are read straight into their memory, past the stage.
inline constexpr std::size_t direct_read_bytes = 4096;

using Header = std::array<char, header_bytes>;

inline Header encode(const MeshKey& k, std::uint64_t length) {
  using namespace detail::wire;
  Header h{};
  put32(h.data(), magic);
  put32(h.data() + 4, k.kind);
  put64(h.data() + 8, k.comm);
  put64(h.data() + 16, k.seq);
  put32(h.data() + 24, k.op);
  put32(h.data() + 28, 0);
  put64(h.data() + 32, length);
  return h;
}

/// One message on its way out.
struct Out {
  Header header{};
  std::size_t header_sent = 0;
  const std::byte* data = nullptr;  ///< the next byte to send
  std::size_t left = 0;             ///< payload bytes not sent yet
  std::vector<std::byte> owned;     ///< the payload, when the mesh keeps it
  MeshListener* who = nullptr;
  std::uint64_t token = 0;
};

/// A posted receive.
struct Posted {
  std::byte* into = nullptr;
  std::uint64_t bytes = 0;
  MeshListener* who = nullptr;
  std::uint64_t token = 0;
};

/// The message being read from a connection.
struct In {
  bool active = false;
  MeshKey key;
  std::uint64_t length = 0;
  std::uint64_t got = 0;
  std::byte* into = nullptr;        ///< null: the bytes are dropped
  std::vector<std::byte> buffered;  ///< an unexpected message's bytes
  bool unexpected = false;
  MeshListener* who = nullptr;  ///< posted: told when it is whole
  std::uint64_t token = 0;
};

enum class PeerState : std::uint8_t { open, departed, dead };

struct Peer {
  detail::tcp::Socket socket;
  PeerState state = PeerState::open;
  bool said_goodbye = false;
  std::string why;  ///< dead: why
  std::deque<Out> out;
  In in;
  std::vector<char> stage;
  std::size_t stage_begin = 0;
  std::size_t stage_end = 0;
};

}  // namespace detail::mesh

class TcpMesh {
 public:
  /// Collective over `bootstrap`'s ranks: listens at `host` (a numeric address of this
  /// machine the others can reach), exchanges addresses, connects every pair. Fails with a
  /// PeerError naming the ranks that did not connect within `timeout`.
  TcpMesh(Bootstrap& bootstrap, const std::string& host, std::chrono::milliseconds timeout,
          Logger log = Logger())
      : rank_(bootstrap.rank()), size_(bootstrap.size()), log_(log) {
    using namespace detail::tcp;
    peers_.resize(static_cast<std::size_t>(size_));
    Socket listener = listen_at(host);
    const auto [bound_host, port] = local_end(listener.fd());
    std::uint64_t nonce = 0;
    if (rank_ == 0) nonce = (std::uint64_t{std::random_device{}()} << 32) | std::random_device{}();
    std::string nonce_blob(8, '\0');
    detail::wire::put64(nonce_blob.data(), nonce);
    nonce = detail::wire::get64(bootstrap.broadcast(nonce_blob, 0).data());
    const std::vector<std::string> where =
        bootstrap.all_gather(std::to_string(port) + " " + bound_host);
    const auto deadline = Clock::now() + timeout;
    for (int r = 0; r < rank_; ++r)
      connect_to(r, where[static_cast<std::size_t>(r)], nonce, deadline, timeout);
    accept_from_above(listener, nonce, deadline, timeout);
    for (auto& p : peers_) p.stage.resize(detail::mesh::stage_bytes);
    log_.info("tcp mesh: connected to " + std::to_string(size_ - 1) + " ranks; listening at " +
              bound_host + ":" + std::to_string(port));
    // Every connection is made: nothing may fail on a rank before its peers finished too.
    bootstrap.barrier();
  }
  TcpMesh(const TcpMesh&) = delete;
  TcpMesh& operator=(const TcpMesh&) = delete;
  /// Says goodbye to every peer, sends what is queued (up to 5 s), and closes.
  ~TcpMesh() {
    const std::lock_guard lock(mutex_);
    for (int r = 0; r < size_; ++r) {
      if (r != rank_ && peer(r).state == detail::mesh::PeerState::open)
        queue(r, {0, 0, 0, static_cast<std::uint32_t>(MeshKind::goodbye)}, nullptr, 0, {}, nullptr,
              0);
    }
    const auto deadline = detail::mesh::Clock::now() + std::chrono::seconds(5);
    while (detail::mesh::Clock::now() < deadline && anything_to_send()) (void)progress_locked(10);
    for (auto& p : peers_) {
      if (!p.socket.valid()) continue;
      ::shutdown(p.socket.fd(), SHUT_WR);
      // Unread bytes would make close() reset the connection and drop what is queued.
      char drop[4096];
      while (::recv(p.socket.fd(), drop, sizeof drop, MSG_DONTWAIT) > 0) {
      }
      p.socket.reset();
    }
  }

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  /// Held by a caller that keeps state its listeners change (a run's test()).
  std::recursive_mutex& mutex() { return mutex_; }

  /// Sends `bytes` at `data` to `peer` (not copied: it must stay until `who`->sent(token)).
  /// False if the peer is gone (see state()).
  bool send(int peer_rank, const MeshKey& key, const std::byte* data, std::size_t bytes,
            MeshListener* who, std::uint64_t token) {
    const std::lock_guard lock(mutex_);
    if (peer(peer_rank).state != detail::mesh::PeerState::open) return false;
    queue(peer_rank, key, data, bytes, {}, who, token);
    return true;
  }
  /// Sends a copy of `payload` (acknowledgements, bootstrap blobs); nobody is told.
  bool send_copy(int peer_rank, const MeshKey& key, std::vector<std::byte> payload) {
    const std::lock_guard lock(mutex_);
    if (peer(peer_rank).state != detail::mesh::PeerState::open) return false;
    queue(peer_rank, key, nullptr, 0, std::move(payload), nullptr, 0);
    return true;
  }

  /// Posts a receive of `bytes` into `into` for `key` from `peer`. A message that has
  /// already arrived is delivered now (who->received or refused, before this returns).
  void post(int peer_rank, const MeshKey& key, std::byte* into, std::uint64_t bytes,
            MeshListener* who, std::uint64_t token) {
    const std::lock_guard lock(mutex_);
    const Match m{peer_rank, key};
    if (const auto it = unexpected_.find(m); it != unexpected_.end()) {
      std::vector<std::byte> data = std::move(it->second);
      unexpected_.erase(it);
      deliver(detail::mesh::Posted{into, bytes, who, token}, data);
      return;
    }
    posted_[m] = detail::mesh::Posted{into, bytes, who, token};
  }
  /// A message that has arrived for `key` from `peer` (nobody posted it), taken.
  std::optional<std::vector<std::byte>> take(int peer_rank, const MeshKey& key) {
    const std::lock_guard lock(mutex_);
    const auto it = unexpected_.find(Match{peer_rank, key});
    if (it == unexpected_.end()) return std::nullopt;
    std::vector<std::byte> data = std::move(it->second);
    unexpected_.erase(it);
    return data;
  }

  /// Forgets everything of `who`: its posted receives (a message being read for one is
  /// dropped), its sends not started (one partly sent is finished from a copy, so the
  /// connection stays in step). After this the mesh never calls `who` again.
  void cancel(MeshListener* who) {
    const std::lock_guard lock(mutex_);
    std::erase_if(posted_, [&](const auto& e) { return e.second.who == who; });
    for (auto& p : peers_) {
      std::erase_if(p.out,
                    [&](const detail::mesh::Out& o) { return o.who == who && o.header_sent == 0; });
      for (detail::mesh::Out& o : p.out) {
        if (o.who != who) continue;
        if (o.owned.empty() && o.left > 0) {
          o.owned.assign(o.data, o.data + o.left);
          o.data = o.owned.data();
        }
        o.who = nullptr;
      }
      if (p.in.active && p.in.who == who) {
        p.in.who = nullptr;
        if (!p.in.unexpected) p.in.into = nullptr;
      }
    }
  }

  /// Moves whatever the connections take and give without blocking, or, when nothing
  /// moved, waits up to `wait_ms` for something to. True if anything moved.
  bool progress(int wait_ms = 0) {
    const std::lock_guard lock(mutex_);
    return progress_locked(wait_ms);
  }

  [[nodiscard]] detail::mesh::PeerState state(int peer_rank) {
    const std::lock_guard lock(mutex_);
    return peer(peer_rank).state;
  }
  /// Why `peer` is gone ("" while it is open).
  [[nodiscard]] std::string why_gone(int peer_rank) {
    const std::lock_guard lock(mutex_);
    const detail::mesh::Peer& p = peer(peer_rank);
    if (p.state == detail::mesh::PeerState::departed)
      return "rank " + std::to_string(peer_rank) + " destroyed its communicator";
    return p.why;
  }
  /// Changes each time a peer goes: a caller rescans its peers only then.
  [[nodiscard]] std::uint64_t departures() {
    const std::lock_guard lock(mutex_);
    return departures_;
  }

 private:
  struct Match {
    int peer = 0;
    MeshKey key;
    auto operator<=>(const Match&) const = default;
  };

  detail::mesh::Peer& peer(int r) {
    if (r < 0 || r >= size_ || r == rank_)
      throw LogicError("tcp mesh: rank " + std::to_string(rank_) + " has no connection to rank " +
                       std::to_string(r));
    return peers_[static_cast<std::size_t>(r)];
  }

  detail::tcp::Socket listen_at(const std::string& host) {
    using namespace detail::tcp;
    AddrInfo addrs;
    resolve(addrs, host, 0, true);
    std::string why = "no address";
    for (addrinfo* a = addrs.list; a != nullptr; a = a->ai_next) {
      Socket s(::socket(a->ai_family, a->ai_socktype, a->ai_protocol));
      if (!s.valid()) continue;
      if (::bind(s.fd(), a->ai_addr, a->ai_addrlen) == 0 &&
          ::listen(s.fd(), std::min(size_, 4096)) == 0)
        return s;
      why = std::strerror(errno);
    }
    throw InputError("tcp mesh: rank " + std::to_string(rank_) + " cannot listen at " + host +
                     ": " + why);
  }

  void connect_to(int r, const std::string& where, std::uint64_t nonce,
                  detail::mesh::Clock::time_point deadline, std::chrono::milliseconds timeout) {
    using namespace detail::tcp;
    const std::size_t space = where.find(' ');
    const int port = std::atoi(where.substr(0, space).c_str());
    const std::string host = space == std::string::npos ? "" : where.substr(space + 1);
    std::string why = "no address";
    Socket s = connect_once(host, port, deadline, why);
    if (!s.valid())
      throw PeerError("tcp mesh: rank " + std::to_string(rank_) + " could not connect to rank " +
                      std::to_string(r) + " at " + host + ":" + std::to_string(port) + " within " +
                      detail::wire::duration_text(timeout) + " (" + why + ")");
    const detail::mesh::Header hello = detail::mesh::encode(
        {nonce, static_cast<std::uint64_t>(rank_), 0, static_cast<std::uint32_t>(MeshKind::hello)},
        0);
    if (!send_all(s.fd(), std::string_view(hello.data(), hello.size()), deadline))
      throw PeerError("tcp mesh: rank " + std::to_string(r) + " did not take rank " +
                      std::to_string(rank_) + "'s connection within " +
                      detail::wire::duration_text(timeout));
    peers_[static_cast<std::size_t>(r)].socket = std::move(s);
  }

  /// Accepts the ranks above this one; each says who it is in a hello with the nonce.
  /// Connections that say something else are dropped.
  void accept_from_above(const detail::tcp::Socket& listener, std::uint64_t nonce,
                         detail::mesh::Clock::time_point deadline,
                         std::chrono::milliseconds timeout) {
    using namespace detail::tcp;
    int missing = size_ - 1 - rank_;
    struct Joining {
      Socket socket;
      std::string bytes;
    };
    std::vector<Joining> joining;
    while (missing > 0) {
      if (detail::mesh::Clock::now() >= deadline) {
        std::vector<int> absent;
        for (int r = rank_ + 1; r < size_; ++r)
          if (!peers_[static_cast<std::size_t>(r)].socket.valid()) absent.push_back(r);
        throw PeerError("tcp mesh: rank" + std::string(absent.size() == 1 ? " " : "s ") +
                        detail::wire::list_ranks(absent) + " did not connect to rank " +
                        std::to_string(rank_) + " within " + detail::wire::duration_text(timeout));
      }
      std::vector<pollfd> polls{{listener.fd(), POLLIN, 0}};
      for (const Joining& j : joining) polls.push_back({j.socket.fd(), POLLIN, 0});
      if (::poll(polls.data(), polls.size(), millis_until(deadline)) <= 0) continue;
      if ((polls[0].revents & POLLIN) != 0) {
        Socket s(::accept4(listener.fd(), nullptr, nullptr, SOCK_NONBLOCK));
        if (s.valid()) {
          const int one = 1;
          (void)::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          joining.push_back({std::move(s), {}});
        }
      }
      for (std::size_t k = 1; k < polls.size(); ++k) {
        if (polls[k].revents == 0) continue;
        Joining& j = joining[k - 1];
        char chunk[detail::mesh::header_bytes];
        const ssize_t got = ::recv(j.socket.fd(), chunk, sizeof chunk - j.bytes.size(), 0);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
        if (got <= 0) {
          j.socket.reset();
          continue;
        }
        j.bytes.append(chunk, static_cast<std::size_t>(got));
        if (j.bytes.size() < detail::mesh::header_bytes) continue;
        using namespace detail::wire;
        const std::uint64_t from = get64(j.bytes.data() + 16);
        const bool hello =
            get32(j.bytes.data()) == detail::mesh::magic &&
            get32(j.bytes.data() + 4) == static_cast<std::uint32_t>(MeshKind::hello) &&
            get64(j.bytes.data() + 8) == nonce;
        if (hello && from > static_cast<std::uint64_t>(rank_) &&
            from < static_cast<std::uint64_t>(size_) &&
            !peers_[static_cast<std::size_t>(from)].socket.valid()) {
          peers_[static_cast<std::size_t>(from)].socket = std::move(j.socket);
          --missing;
        } else {
          log_.warn("tcp mesh: dropped a connection that is not a rank of this job");
          j.socket.reset();
        }
      }
      std::erase_if(joining, [](const Joining& j) { return !j.socket.valid(); });
    }
  }

  void queue(int r, const MeshKey& key, const std::byte* data, std::size_t bytes,
             std::vector<std::byte> owned, MeshListener* who, std::uint64_t token) {
    detail::mesh::Peer& p = peer(r);
    detail::mesh::Out o;
    o.header = detail::mesh::encode(key, owned.empty() ? bytes : owned.size());
    o.owned = std::move(owned);
    o.data = o.owned.empty() ? data : o.owned.data();
    o.left = o.owned.empty() ? bytes : o.owned.size();
    o.who = who;
    o.token = token;
    p.out.push_back(std::move(o));
    // An idle connection takes a small message at once: no wait for the next progress().
    if (p.out.size() == 1) write(r, p);
  }

  [[nodiscard]] bool anything_to_send() const {
    return std::any_of(peers_.begin(), peers_.end(), [](const detail::mesh::Peer& p) {
      return p.state != detail::mesh::PeerState::dead && p.socket.valid() && !p.out.empty();
    });
  }

  bool progress_locked(int wait_ms) {
    polls_.clear();
    poll_rank_.clear();
    for (int r = 0; r < size_; ++r) {
      detail::mesh::Peer& p = peers_[static_cast<std::size_t>(r)];
      if (!p.socket.valid()) continue;
      const short events = static_cast<short>(POLLIN | (p.out.empty() ? 0 : POLLOUT));
      polls_.push_back({p.socket.fd(), events, 0});
      poll_rank_.push_back(r);
    }
    if (polls_.empty()) return false;
    int ready = ::poll(polls_.data(), polls_.size(), 0);
    if (ready == 0 && wait_ms > 0) ready = ::poll(polls_.data(), polls_.size(), wait_ms);
    if (ready <= 0) return false;
    bool moved = false;
    for (std::size_t k = 0; k < polls_.size(); ++k) {
      const short ev = polls_[k].revents;
      if (ev == 0) continue;
      const int r = poll_rank_[k];
      detail::mesh::Peer& p = peers_[static_cast<std::size_t>(r)];
      if ((ev & POLLOUT) != 0) moved = write(r, p) || moved;
      if ((ev & (POLLIN | POLLHUP | POLLERR)) != 0 && p.socket.valid()) moved = read(r, p) || moved;
    }
    return moved;
  }

  /// Writes what the connection takes; true if any bytes went.
  bool write(int r, detail::mesh::Peer& p) {
    bool moved = false;
    while (!p.out.empty() && p.socket.valid()) {
      std::array<iovec, 64> iov{};
      std::size_t n = 0;
      for (std::size_t m = 0; m < p.out.size() && n + 2 <= iov.size(); ++m) {
        detail::mesh::Out& o = p.out[m];
        if (o.header_sent < detail::mesh::header_bytes)
          iov[n++] = {o.header.data() + o.header_sent, detail::mesh::header_bytes - o.header_sent};
        if (o.left > 0) iov[n++] = {const_cast<std::byte*>(o.data), o.left};
      }
      msghdr msg{};
      msg.msg_iov = iov.data();
      msg.msg_iovlen = n;
      const ssize_t sent = ::sendmsg(p.socket.fd(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return moved;
      if (sent <= 0) {
        closed(r, p, std::strerror(errno));
        return true;
      }
      moved = true;
      auto left = static_cast<std::size_t>(sent);
      while (left > 0) {
        detail::mesh::Out& o = p.out.front();
        const std::size_t h = std::min(left, detail::mesh::header_bytes - o.header_sent);
        o.header_sent += h;
        left -= h;
        const std::size_t d = std::min(left, o.left);
        o.data += d;
        o.left -= d;
        left -= d;
        if (o.header_sent == detail::mesh::header_bytes && o.left == 0) {
          MeshListener* who = o.who;
          const std::uint64_t token = o.token;
          p.out.pop_front();
          if (who != nullptr) who->sent(token);
        }
      }
    }
    return moved;
  }

  /// Reads what the connection has; true if any bytes came.
  bool read(int r, detail::mesh::Peer& p) {
    bool moved = false;
    while (p.socket.valid()) {
      detail::mesh::In& in = p.in;
      const std::size_t staged = p.stage_end - p.stage_begin;
      if (in.active && staged > 0) {
        const auto n =
            static_cast<std::size_t>(std::min<std::uint64_t>(staged, in.length - in.got));
        if (in.into != nullptr) std::memcpy(in.into + in.got, p.stage.data() + p.stage_begin, n);
        in.got += n;
        p.stage_begin += n;
        if (in.got == in.length) whole(r, p);
        continue;
      }
      if (!in.active && staged >= detail::mesh::header_bytes) {
        begin(r, p);
        continue;
      }
      // Nothing whole staged: read more, straight into the message's memory when it is
      // large, else into the stage.
      ssize_t got = 0;
      if (in.active && in.into != nullptr &&
          in.length - in.got >= detail::mesh::direct_read_bytes) {
        got = ::recv(p.socket.fd(), in.into + in.got, static_cast<std::size_t>(in.length - in.got),
                     MSG_DONTWAIT);
        if (got > 0) {
          in.got += static_cast<std::uint64_t>(got);
          moved = true;
          if (in.got == in.length) whole(r, p);
          continue;
        }
      } else {
        if (p.stage_begin > 0) {
          std::memmove(p.stage.data(), p.stage.data() + p.stage_begin, staged);
          p.stage_begin = 0;
          p.stage_end = staged;
        }
        got = ::recv(p.socket.fd(), p.stage.data() + p.stage_end, p.stage.size() - p.stage_end,
                     MSG_DONTWAIT);
        if (got > 0) {
          p.stage_end += static_cast<std::size_t>(got);
          moved = true;
          continue;
        }
      }
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return moved;
      closed(r, p, got == 0 ? "" : std::strerror(errno));
      return true;
    }
    return moved;
  }

  /// A header is staged: where its payload goes.
  void begin(int r, detail::mesh::Peer& p) {
    using namespace detail::wire;
    const char* h = p.stage.data() + p.stage_begin;
    detail::mesh::In& in = p.in;
    if (get32(h) != detail::mesh::magic) {
      dead(p, "rank " + std::to_string(r) + " sent bytes that are not railcc's messages");
      return;
    }
    in = detail::mesh::In{};
    in.active = true;
    in.key = MeshKey{get64(h + 8), get64(h + 16), get32(h + 24), get32(h + 4)};
    in.length = get64(h + 32);
    p.stage_begin += detail::mesh::header_bytes;
    if (in.key.kind == static_cast<std::uint32_t>(MeshKind::goodbye)) {
      p.said_goodbye = true;
      in.active = false;
      return;
    }
    const auto it = posted_.find(Match{r, in.key});
    if (it != posted_.end() && it->second.bytes == in.length) {
      in.into = it->second.into;
      in.who = it->second.who;
      in.token = it->second.token;
      posted_.erase(it);
    } else if (it != posted_.end()) {
      MeshListener* who = it->second.who;
      const std::uint64_t token = it->second.token;
      posted_.erase(it);
      who->refused(token, in.length);  // the bytes are dropped (into stays null)
    } else {
      in.unexpected = true;
      in.buffered.resize(static_cast<std::size_t>(in.length));
      in.into = in.buffered.data();
    }
    if (in.length == 0) whole(r, p);
  }

  /// The message being read is whole.
  void whole(int r, detail::mesh::Peer& p) {
    detail::mesh::In in = std::move(p.in);
    p.in = detail::mesh::In{};
    if (in.unexpected) {
      const Match m{r, in.key};
      // Posted while it was being read?
      if (const auto it = posted_.find(m); it != posted_.end()) {
        const detail::mesh::Posted posted = it->second;
        posted_.erase(it);
        deliver(posted, in.buffered);
      } else {
        unexpected_[m] = std::move(in.buffered);
      }
      return;
    }
    if (in.who != nullptr) in.who->received(in.token, nullptr);
  }

  static void deliver(const detail::mesh::Posted& posted, const std::vector<std::byte>& data) {
    if (data.size() != posted.bytes) {
      posted.who->refused(posted.token, data.size());
      return;
    }
    posted.who->received(posted.token, data.data());
  }

  void closed(int r, detail::mesh::Peer& p, const std::string& error) {
    if (p.said_goodbye && !p.in.active) {
      p.state = detail::mesh::PeerState::departed;
      p.socket.reset();
      p.out.clear();
      ++departures_;
      return;
    }
    dead(p, "rank " + std::to_string(r) + " closed its connection" +
                (error.empty() ? "" : " (" + error + ")") +
                (p.in.active ? " in the middle of a message" : "") +
                ": its process exited, was killed, or failed");
  }

  void dead(detail::mesh::Peer& p, std::string why) {
    p.state = detail::mesh::PeerState::dead;
    p.why = std::move(why);
    p.socket.reset();
    p.out.clear();
    p.in = detail::mesh::In{};
    ++departures_;
  }

  int rank_;
  int size_;
  Logger log_;
  std::recursive_mutex mutex_;
  std::vector<detail::mesh::Peer> peers_;
  std::map<Match, detail::mesh::Posted> posted_;
  std::map<Match, std::vector<std::byte>> unexpected_;
  std::vector<pollfd> polls_;
  std::vector<int> poll_rank_;
  std::uint64_t departures_ = 0;
};

RAILCC_NAMESPACE_END
