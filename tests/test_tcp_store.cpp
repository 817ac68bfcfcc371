// The TCP store (bootstrap/tcp_store.hpp) on loopback: every rank a thread of this test,
// rank 0's thread holding the server. Calls against a plain reference (the blobs
// themselves), and every failure named: a rank that never joins, one that dies or leaves
// mid-call, ranks that make different calls, a store that is not there.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "check_contains.hpp"
#include "railcc/bootstrap/tcp_store.hpp"
#include "railcc/bootstrap/wire.hpp"

using namespace railcc;
using namespace std::chrono_literals;

namespace {

struct Outcome {
  std::vector<std::string> errors;  // per rank; empty: no error
};

/// Runs `body(store)` on ranks 0..size-1 (those in `start`; all when empty), each on its
/// own thread with its own store, rank 0's holding a server on a free loopback port.
Outcome run_job(int size, std::chrono::milliseconds timeout,
                const std::function<void(TcpStore&)>& body, std::vector<int> start = {}) {
  if (start.empty())
    for (int r = 0; r < size; ++r) start.push_back(r);
  auto server =
      std::make_unique<TcpStoreServer>("127.0.0.1", 0, size, timeout, Logger(LogLevel::none));
  const int port = server->port();
  Outcome out;
  out.errors.resize(static_cast<std::size_t>(size));
  std::vector<std::thread> threads;
  for (const int r : start) {
    std::unique_ptr<TcpStoreServer> mine = r == 0 ? std::move(server) : nullptr;
    threads.emplace_back([&, r, mine = std::move(mine)]() mutable {
      try {
        TcpStoreOptions options;
        options.port = port;
        options.timeout = timeout;
        options.log = Logger(LogLevel::none);
        TcpStore store(r, size, options, std::move(mine));
        body(store);
      } catch (const std::exception& e) {
        out.errors[static_cast<std::size_t>(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

/// A socket to the store that speaks the wire format by hand (a process that dies).
detail::tcp::Socket raw_client(int port) {
  detail::tcp::AddrInfo addrs;
  detail::tcp::resolve(addrs, "127.0.0.1", port, false);
  for (int attempt = 0; attempt < 200; ++attempt) {
    detail::tcp::Socket s(::socket(addrs.list->ai_family, SOCK_STREAM, 0));
    if (::connect(s.fd(), addrs.list->ai_addr, addrs.list->ai_addrlen) == 0) return s;
    std::this_thread::sleep_for(5ms);
  }
  FAIL("no connection to the store");
  return {};
}

}  // namespace

TEST_CASE("Wire: an all-gather's blobs packed and unpacked; malformed answers refused") {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 100; ++trial) {
    std::vector<std::string> blobs(
        static_cast<std::size_t>(std::uniform_int_distribution<int>(0, 9)(rng)));
    for (auto& b : blobs) {
      b.resize(static_cast<std::size_t>(std::uniform_int_distribution<int>(0, 40)(rng)));
      for (char& ch : b) ch = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
    }
    const std::vector<std::string_view> views(blobs.begin(), blobs.end());
    const std::string packed = detail::wire::pack_blobs(views);
    const int n = static_cast<int>(blobs.size());
    CHECK(detail::wire::unpack_blobs(packed, n) == blobs);
    if (!packed.empty()) CHECK(!detail::wire::unpack_blobs(packed.substr(0, packed.size() - 1), n));
    CHECK(!detail::wire::unpack_blobs(packed + "x", n));
    CHECK(!detail::wire::unpack_blobs(packed, n + 1));
  }
  CHECK(detail::wire::list_ranks({2, 5}) == "2, 5");
  std::vector<int> many(20);
  for (int i = 0; i < 20; ++i) many[static_cast<std::size_t>(i)] = i;
  CHECK(detail::wire::list_ranks(many) ==
        "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 and 4 more");
  CHECK(detail::wire::duration_text(120s) == "120 s");
  CHECK(detail::wire::duration_text(300ms) == "300 ms");
}

TEST_CASE("TCP store: random calls on random jobs give every rank the reference's answers") {
  std::mt19937 rng(11);
  for (int job = 0; job < 12; ++job) {
    const int size = std::uniform_int_distribution<int>(1, 8)(rng);
    // The calls, the same on every rank: 0 all-gather, 1 broadcast, 2 barrier. Blobs of
    // 0-300 bytes (zero bytes among them), one per rank and call.
    const int calls = std::uniform_int_distribution<int>(1, 12)(rng);
    std::vector<int> kind(static_cast<std::size_t>(calls)), root(static_cast<std::size_t>(calls));
    std::vector<std::vector<std::string>> blob(static_cast<std::size_t>(calls));
    for (int c = 0; c < calls; ++c) {
      kind[static_cast<std::size_t>(c)] = std::uniform_int_distribution<int>(0, 2)(rng);
      root[static_cast<std::size_t>(c)] = std::uniform_int_distribution<int>(0, size - 1)(rng);
      for (int r = 0; r < size; ++r) {
        std::string b(static_cast<std::size_t>(std::uniform_int_distribution<int>(0, 300)(rng)),
                      '\0');
        for (char& ch : b) ch = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
        blob[static_cast<std::size_t>(c)].push_back(std::move(b));
      }
    }
    std::atomic<int> wrong{0};
    const Outcome o = run_job(size, 10s, [&](TcpStore& store) {
      const auto r = static_cast<std::size_t>(store.rank());
      for (std::size_t c = 0; c < static_cast<std::size_t>(calls); ++c) {
        if (kind[c] == 0) {
          if (store.all_gather(blob[c][r]) != blob[c]) ++wrong;
        } else if (kind[c] == 1) {
          if (store.broadcast(blob[c][r], root[c]) != blob[c][static_cast<std::size_t>(root[c])])
            ++wrong;
        } else {
          store.barrier();
        }
      }
    });
    CAPTURE(job);
    CAPTURE(size);
    for (const auto& e : o.errors) CHECK(e.empty());
    CHECK(wrong.load() == 0);
  }
}

TEST_CASE("TCP store: a barrier holds every rank until the last arrives") {
  std::atomic<int> arrived{0};
  std::atomic<int> early{0};
  const Outcome o = run_job(4, 10s, [&](TcpStore& store) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20 * store.rank()));
    ++arrived;
    store.barrier();
    if (arrived.load() != 4) ++early;
  });
  for (const auto& e : o.errors) CHECK(e.empty());
  CHECK(early.load() == 0);
}

TEST_CASE("TCP store: a rank that never joins is named, within the timeout") {
  const auto begin = std::chrono::steady_clock::now();
  const Outcome o = run_job(4, 300ms, [](TcpStore&) {}, {0, 1, 3});
  const auto took = std::chrono::steady_clock::now() - begin;
  for (const int r : {0, 1, 3}) {
    CAPTURE(r);
    CHECK_CONTAINS(o.errors[static_cast<std::size_t>(r)],
                   "ranks 2 of 4 did not join the store at 127.0.0.1:");
    CHECK_CONTAINS(o.errors[static_cast<std::size_t>(r)], "within 300 ms");
  }
  CHECK(took < 5s);  // the timeout, not a hang (generous for a loaded machine)
}

TEST_CASE("TCP store: a rank that is late to a call is named") {
  const Outcome o = run_job(3, 300ms, [](TcpStore& store) {
    store.barrier();
    if (store.rank() == 1) std::this_thread::sleep_for(1200ms);
    (void)store.all_gather("x");
  });
  for (const int r : {0, 2}) {
    CAPTURE(r);
    CHECK_CONTAINS(o.errors[static_cast<std::size_t>(r)],
                   "call #1 (all_gather) timed out after 300 ms: ranks 1 of 3 did not make it");
  }
  // Rank 1 comes after the job has failed: it learns why.
  CHECK_CONTAINS(o.errors[1], "bootstrap:");
}

TEST_CASE("TCP store: ranks that make different calls are named") {
  const Outcome o = run_job(3, 5s, [](TcpStore& store) {
    if (store.rank() == 2) {
      (void)store.broadcast("b", 1);
    } else {
      (void)store.all_gather("a");
    }
  });
  for (const auto& e : o.errors)
    CHECK_CONTAINS(e,
                   "ranks made different calls as call #0 on the store: rank 0 all_gather, "
                   "rank 2 broadcast from root 1");
}

TEST_CASE("TCP store: a rank whose process dies mid-job is named") {
  // Rank 2 joins by hand and closes its connection without a goodbye, as a process that
  // exits or is killed does.
  auto server = std::make_unique<TcpStoreServer>("127.0.0.1", 0, 3, 5s, Logger(LogLevel::none));
  const int port = server->port();
  std::vector<std::string> errors(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    std::unique_ptr<TcpStoreServer> mine = r == 0 ? std::move(server) : nullptr;
    ranks.emplace_back([&, r, mine = std::move(mine)]() mutable {
      try {
        TcpStoreOptions options;
        options.port = port;
        options.timeout = 5s;
        options.log = Logger(LogLevel::none);
        TcpStore store(r, 3, options, std::move(mine));
        (void)store.all_gather("a");
      } catch (const PeerError& e) {
        errors[static_cast<std::size_t>(r)] = e.what();
      }
    });
  }
  {
    detail::tcp::Socket dying = raw_client(port);
    const std::string hello = detail::tcp::frame({detail::tcp::Kind::hello, 3, 2, 0, 0}, {});
    REQUIRE(detail::tcp::send_all(dying.fd(), hello));
    std::this_thread::sleep_for(100ms);
  }  // closed
  for (auto& t : ranks) t.join();
  for (const auto& e : errors) {
    CHECK_CONTAINS(e, "rank 2 left the job: its connection to the store at 127.0.0.1:");
    CHECK_CONTAINS(e, "(its process exited or failed)");
  }
}

TEST_CASE("TCP store: a rank that stops reading is named") {
  // Rank 1 joins by hand, asks for an all-gather of 32 MiB and never reads: its answer
  // does not fit the socket's buffers, so the server cannot give it; after the timeout it
  // fails the job naming rank 1. Rank 0 took its answer first, and learns of the failure
  // at its next call.
  auto server = std::make_unique<TcpStoreServer>("127.0.0.1", 0, 2, 2s, Logger(LogLevel::none));
  const int port = server->port();
  std::string first, second;
  std::thread rank0([&, mine = std::move(server)]() mutable {
    try {
      TcpStoreOptions options;
      options.port = port;
      options.timeout = 2s;
      options.log = Logger(LogLevel::none);
      TcpStore store(0, 2, options, std::move(mine));
      first = store.all_gather("x")[0];
      store.barrier();
    } catch (const PeerError& e) {
      second = e.what();
    }
  });
  detail::tcp::Socket stopped = raw_client(port);
  REQUIRE(detail::tcp::send_all(stopped.fd(),
                                detail::tcp::frame({detail::tcp::Kind::hello, 2, 1, 0, 0}, {})));
  REQUIRE(detail::tcp::send_all(stopped.fd(),
                                detail::tcp::frame({detail::tcp::Kind::all_gather, 0, 1, 0, 0},
                                                   std::string(std::size_t{32} << 20, 'b'))));
  rank0.join();
  CHECK(first == "x");
  CHECK_CONTAINS(second,
                 "rank 1 did not take the answer to call #0 within 2 s (its process is "
                 "stopped or has left)");
}

TEST_CASE("TCP store: a rank that closes its bootstrap while others wait is named") {
  const Outcome o = run_job(3, 5s, [](TcpStore& store) {
    if (store.rank() != 1) (void)store.all_gather("a");
  });
  CHECK(o.errors[1].empty());
  for (const int r : {0, 2})
    CHECK_CONTAINS(o.errors[static_cast<std::size_t>(r)],
                   "rank 1 closed its bootstrap without making call #0, which other ranks wait in");
}

TEST_CASE("TCP store: bad joins and a store that is not there") {
  SUBCASE("a rank of another job size") {
    auto server = std::make_unique<TcpStoreServer>("127.0.0.1", 0, 2, 5s, Logger(LogLevel::none));
    TcpStoreOptions options;
    options.port = server->port();
    options.timeout = 5s;
    std::string error;
    std::thread other([&] {
      try {
        TcpStore store(1, 3, options);
      } catch (const PeerError& e) {
        error = e.what();
      }
    });
    other.join();
    CHECK_CONTAINS(error, "rank 1 joined a job of 3 ranks, but the store at 127.0.0.1:");
    CHECK_CONTAINS(error, "serves 2");
  }
  SUBCASE("bytes that are not the bootstrap's are dropped; the job goes on") {
    auto server = std::make_unique<TcpStoreServer>("127.0.0.1", 0, 2, 5s, Logger(LogLevel::none));
    const int port = server->port();
    {
      detail::tcp::Socket junk = raw_client(port);
      REQUIRE(detail::tcp::send_all(junk.fd(), std::string(64, 'z')));
      std::this_thread::sleep_for(50ms);
    }
    std::vector<std::string> got(2);
    std::vector<std::thread> ranks;
    for (int r = 0; r < 2; ++r) {
      std::unique_ptr<TcpStoreServer> mine = r == 0 ? std::move(server) : nullptr;
      ranks.emplace_back([&, r, mine = std::move(mine)]() mutable {
        TcpStoreOptions options;
        options.port = port;
        options.timeout = 5s;
        TcpStore store(r, 2, options, std::move(mine));
        got[static_cast<std::size_t>(r)] = store.broadcast("root's", 0);
      });
    }
    for (auto& t : ranks) t.join();
    CHECK(got == std::vector<std::string>{"root's", "root's"});
  }
  SUBCASE("no store listening") {
    // A port that was free a moment ago.
    int port = 0;
    {
      TcpStoreServer probe("127.0.0.1", 0, 1, 100ms, Logger(LogLevel::none));
      port = probe.port();
    }
    TcpStoreOptions options;
    options.port = port;
    options.timeout = 300ms;
    const auto begin = std::chrono::steady_clock::now();
    std::string error;
    try {
      TcpStore store(1, 2, options);
    } catch (const PeerError& e) {
      error = e.what();
    }
    CHECK_CONTAINS(error, "rank 1 could not reach the store at 127.0.0.1:" + std::to_string(port) +
                              " within 300 ms");
    CHECK(std::chrono::steady_clock::now() - begin < 5s);
  }
  SUBCASE("arguments") {
    TcpStoreOptions options;
    CHECK_THROWS_AS(TcpStore(2, 2, options), InputError);
    CHECK_THROWS_AS(TcpStoreServer("127.0.0.1", 70000, 2, 1s), InputError);
    CHECK_THROWS_AS(TcpStoreServer("no-such-host.invalid", 0, 2, 1s), InputError);
  }
  SUBCASE("a port another process holds (torchrun's own store holds MASTER_PORT)") {
    TcpStoreServer first("127.0.0.1", 0, 1, 100ms, Logger(LogLevel::none));
    CHECK_THROWS_WITH_AS(TcpStoreServer("127.0.0.1", first.port(), 2, 1s),
                         doctest::Contains("set RAILCC_BOOTSTRAP_ADDR to a free port"), InputError);
  }
}
