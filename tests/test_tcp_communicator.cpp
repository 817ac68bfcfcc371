// The host backend over TCP (comm/tcp_transport.hpp) through the Communicator, in jobs
// started as torchrun starts them (tests/cli/torchrun_style.sh: a process per rank, the
// ranks meeting at a store on loopback), some grouped into hosts (RAILCC_RANKS_PER_HOST)
// so hierarchical algorithms have both levels. Every collective, algorithm, type and op,
// in place and out of place, on random data, against the exact result computed from
// every rank's input (each rank draws them all): integers and moved data bit for bit,
// floats within the reduction-order tolerance of coll/reference.hpp. Then non-blocking
// calls, many calls in flight, split, send/recv, the plan cache, and the faults: a rank
// that never makes a call, calls that differ, and (run on its own, as it ends the job for
// the rank) a rank whose process exits mid-call.
// Every rank runs every test, in the same order; each test's communicator is split off
// the job's, so a test that breaks its own leaves the others theirs.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "communicator_cases.hpp"
#include "railcc/bootstrap/start.hpp"
#include "railcc/coll/reference.hpp"
#include "railcc/comm/communicator.hpp"
#include "railcc/comm/tcp_transport.hpp"

using namespace railcc;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<TcpHostTransport> job_transport;  // the job's, made in main
RailccSettings job_settings;

/// A communicator of every rank, split off the job's, with `timeout` for its calls.
Communicator world(std::chrono::milliseconds timeout = 60s, bool check_calls = false) {
  CommunicatorOptions o;
  o.settings = job_settings;
  o.settings.timeout = timeout;
  o.settings.check_calls = check_calls;
  o.log = Logger(LogLevel::none);
  return Communicator(job_transport->split(0, job_transport->rank()), o);
}

/// True on every rank if `mine` is true on any (over a communicator of its own).
bool any_rank(bool mine) {
  Communicator c = world(30s);
  std::int32_t v = mine ? 1 : 0;
  c.all_reduce(&v, &v, 1, DataType::int32, ReduceOp::max);
  return v == 1;
}

using railcc_test::Bytes;
using railcc_test::Case;
using railcc_test::describe;

}  // namespace

TEST_CASE("tcp host backend: every collective, algorithm, type and op gives the exact result") {
  Communicator comm = world();
  const int p = comm.size();
  const JobPlacement& place = comm.placement();
  INFO("rank " << comm.rank() << " of " << p << ", " << place.describe());
  CHECK(comm.transport_name() == "host (TCP)");
  const bool hierarchical = place.uniform && place.hosts > 1 && place.max_per_host > 1;
  std::mt19937 rng(23);  // the same draws on every rank
  std::uniform_int_distribution<int> small(0, 300);
  std::size_t cases = 0;
  std::uint64_t seed = 1;
  for (Collective c : {Collective::all_reduce, Collective::reduce_scatter, Collective::all_gather,
                       Collective::broadcast, Collective::reduce, Collective::all_to_all}) {
    for (Algorithm a : algorithms_for(c)) {
      if (a == Algorithm::nvls || (a == Algorithm::hierarchical && !hierarchical)) continue;
      for (DataType t : {DataType::uint8, DataType::int32, DataType::int64, DataType::float16,
                         DataType::bfloat16, DataType::float32, DataType::float64}) {
        for (ReduceOp op : all_reduce_ops) {
          if (!reduces(c) && op != ReduceOp::sum) continue;
          Case k{c, a, t, op, 0, false, 0};
          // Mostly small counts (fewer elements than ranks, uneven splits), now and then
          // a large one (several pipeline chunks per step, payloads read past the stage).
          k.count = rng() % 8 == 0 ? 20'000 + rng() % 50'000 : static_cast<std::size_t>(small(rng));
          k.in_place = c != Collective::all_to_all && rng() % 2 == 0;
          k.root = static_cast<int>(rng() % static_cast<unsigned>(p));
          INFO(describe(k));
          CHECK(railcc_test::exact_result_errors(comm, k, seed++) == 0);
          ++cases;
        }
      }
    }
  }
  MESSAGE(cases << " cases on " << p << " ranks");
}

TEST_CASE("tcp host backend: non-blocking calls, far more than MPI's 32 in flight, complete") {
  Communicator comm = world();
  const int p = comm.size();
  // Sizes from one element to several MiB, so some arrive before they are posted.
  const std::size_t sizes[] = {1, 1000, 700'000, 3};
  constexpr std::size_t calls = 100;
  std::vector<std::vector<std::int64_t>> in(calls), out(calls);
  std::vector<Request> requests;
  for (std::size_t k = 0; k < calls; ++k) {
    const std::size_t n = sizes[k % 4];
    in[k].assign(n, 0);
    for (std::size_t i = 0; i < n; ++i)
      in[k][i] = static_cast<std::int64_t>((comm.rank() + 1) * 1000 + i + k);
    out[k].assign(n, -1);
    requests.push_back(
        comm.iall_reduce(in[k].data(), out[k].data(), n, DataType::int64, ReduceOp::sum));
  }
  // Progress by test() alone, out of order, then wait.
  for (int round = 0; round < 1000 && !requests[2].test(); ++round) requests[99].test();
  for (std::size_t k = calls; k-- > 0;) requests[k].wait();
  for (std::size_t k = 0; k < calls; ++k) {
    for (std::size_t i = 0; i < out[k].size(); ++i) {
      const auto want = static_cast<std::int64_t>(
          1000 * p * (p + 1) / 2 + static_cast<std::int64_t>(p) * static_cast<std::int64_t>(i + k));
      if (out[k][i] != want) {
        INFO("call " << k << " element " << i);
        CHECK(out[k][i] == want);
        break;
      }
    }
  }
}

TEST_CASE("tcp host backend: split by host, then by local index, all-reduces within each part") {
  Communicator comm = world();
  const RankPlacement me = comm.placement().ranks[static_cast<std::size_t>(comm.rank())];
  for (const bool by_host : {true, false}) {
    const int color = static_cast<int>(by_host ? me.host : me.local);
    auto part = comm.split(color, -comm.rank());  // keys reverse the ranks' order
    REQUIRE(part.has_value());
    int expected_size = 0;
    int expected_rank = 0;
    const auto& ranks = comm.placement().ranks;
    for (std::size_t r = 0; r < ranks.size(); ++r) {
      if (static_cast<int>(by_host ? ranks[r].host : ranks[r].local) != color) continue;
      ++expected_size;
      if (static_cast<int>(r) > comm.rank()) ++expected_rank;
    }
    CHECK(part->size() == expected_size);
    CHECK(part->rank() == expected_rank);
    std::vector<double> in(513, comm.rank() + 0.5), out(513);
    part->all_reduce(in.data(), out.data(), in.size(), DataType::float64, ReduceOp::sum);
    double want = 0;  // sums of halves are exact
    for (std::size_t r = 0; r < ranks.size(); ++r)
      if (static_cast<int>(by_host ? ranks[r].host : ranks[r].local) == color)
        want += static_cast<double>(r) + 0.5;
    CHECK(out == std::vector<double>(513, want));
    if (by_host) CHECK(part->placement().hosts == 1);
    // The parent goes on beside it.
    std::int32_t one = 1;
    comm.all_reduce(&one, &one, 1, DataType::int32, ReduceOp::sum);
    CHECK(one == comm.size());
  }
  auto none = comm.split(comm.rank() == 0 ? -1 : 0, 0);
  CHECK(none.has_value() == (comm.rank() != 0));
}

TEST_CASE("tcp host backend: send and recv around the ring, blocking and not") {
  Communicator comm = world();
  const int p = comm.size();
  if (p < 2) return;
  const int next = (comm.rank() + 1) % p;
  const int prev = (comm.rank() + p - 1) % p;
  std::vector<float> mine(400'097, static_cast<float>(comm.rank())), got(400'097, -1.0f);
  Request s = comm.isend(mine.data(), mine.size(), DataType::float32, next);
  Request r = comm.irecv(got.data(), got.size(), DataType::float32, prev);
  r.wait();
  s.wait();
  CHECK(got == std::vector<float>(400'097, static_cast<float>(prev)));
  std::vector<std::int32_t> a(10, comm.rank()), b(10, -1);
  if (comm.rank() % 2 == 0) {
    comm.send(a.data(), a.size(), DataType::int32, next);
    comm.recv(b.data(), b.size(), DataType::int32, prev);
  } else {
    comm.recv(b.data(), b.size(), DataType::int32, prev);
    comm.send(a.data(), a.size(), DataType::int32, next);
  }
  CHECK(b == std::vector<std::int32_t>(10, prev));
}

TEST_CASE("tcp host backend: random exchanges of sends and receives, alone and in batches") {
  Communicator comm = world();
  CHECK(railcc_test::batch_exchange_errors(comm, 17, 200) == 0);
}

TEST_CASE("tcp host backend: a training loop plans once per call shape") {
  Communicator comm = world();
  std::vector<float> grad(10'000, 1.0f);
  for (int step = 0; step < 5; ++step) {
    comm.all_reduce(grad.data(), grad.data(), grad.size(), DataType::float32, ReduceOp::avg);
    comm.all_reduce(grad.data(), grad.data(), 16, DataType::float32, ReduceOp::sum);
  }
  CHECK(comm.cached_plans() == 2);
  CHECK(grad[100] == 1.0f);
}

TEST_CASE("tcp host backend: a rank that never makes the call is named by the others") {
  if (job_transport->size() < 2) return;
  Communicator comm = world(1s);
  const int late = comm.size() - 1;
  std::vector<std::int32_t> buf(100, 1);
  if (comm.rank() == late) {
    std::this_thread::sleep_for(2500ms);  // past the others' timeout; never calls
  } else {
    const auto t0 = std::chrono::steady_clock::now();
    std::string what;
    try {
      comm.all_reduce(buf.data(), buf.data(), buf.size(), DataType::int32, ReduceOp::sum);
    } catch (const PeerError& e) {
      what = e.what();
    }
    const auto took = std::chrono::steady_clock::now() - t0;
    INFO(what);
    CHECK(what.find("all_reduce #0") != std::string::npos);
    CHECK(what.find("made no progress for 1 s") != std::string::npos);
    CHECK(what.find("died, stopped, or did not make this call") != std::string::npos);
    CHECK(took < 2000ms);
    CHECK_THROWS_WITH_AS(
        comm.all_reduce(buf.data(), buf.data(), buf.size(), DataType::int32, ReduceOp::sum),
        doctest::Contains("failed earlier"), PeerError);
  }
}

TEST_CASE("tcp host backend: calls that differ across ranks are named under RAILCC_CHECK_CALLS") {
  if (job_transport->size() < 2) return;
  Communicator comm = world(10s, true);
  std::vector<float> buf(200, 1.0f);
  const std::size_t count = comm.rank() == 1 ? 150 : 100;
  std::string what;
  try {
    comm.all_reduce(buf.data(), buf.data(), count, DataType::float32, ReduceOp::sum);
  } catch (const InputError& e) {
    what = e.what();
  }
  INFO(what);
  CHECK(what.find("rank 1: all_reduce of 150 x float sum in place") != std::string::npos);
  comm.all_reduce(buf.data(), buf.data(), 100, DataType::float32, ReduceOp::sum);
  CHECK(buf[0] == static_cast<float>(comm.size()));
}

TEST_CASE("tcp host backend: without the check, counts that differ fail on every rank") {
  if (job_transport->size() < 2) return;
  Communicator comm = world(2s);
  std::vector<std::int32_t> buf(2000, 1);
  const std::size_t count = comm.rank() == 0 ? 1000 : 1200;
  std::string what;
  CallOptions ring;
  ring.algorithm = Algorithm::ring;
  try {
    comm.all_reduce(buf.data(), buf.data(), count, DataType::int32, ReduceOp::sum, ring);
  } catch (const PeerError& e) {
    what = e.what();
  }
  INFO(what);
  CHECK(!what.empty());
  // Some rank sees a message of the wrong length and says what that means.
  CHECK(any_rank(what.find("different counts or types") != std::string::npos));
}

// Run on its own (ctest's tcp-communicator.exit): the exiting rank leaves the job.
TEST_CASE("tcp host backend: a rank whose process exits mid-call is named at once" *
          doctest::skip(std::getenv("RAILCC_TEST_EXIT") == nullptr)) {
  if (job_transport->size() < 2) return;
  Communicator comm = world(20s);
  const int leaver = comm.size() - 1;
  std::vector<std::int32_t> buf(1 << 16, 1);
  if (comm.rank() == leaver) {
    // Takes the first messages of a collective, then the process ends.
    Request r =
        comm.iall_reduce(buf.data(), buf.data(), buf.size(), DataType::int32, ReduceOp::sum);
    (void)r.test();
    std::this_thread::sleep_for(100ms);
    std::_Exit(0);
  }
  // Everyone else waits for the leaver's data directly.
  const auto t0 = std::chrono::steady_clock::now();
  std::string what;
  try {
    comm.recv(buf.data(), 16, DataType::int32, leaver);
  } catch (const PeerError& e) {
    what = e.what();
  }
  const auto took = std::chrono::steady_clock::now() - t0;
  INFO(what);
  CHECK(what.find("recv") != std::string::npos);
  CHECK(what.find("rank " + std::to_string(leaver) + " closed its connection") !=
        std::string::npos);
  CHECK(took < 5s);  // at once, not after the 20 s timeout
}

int main(int argc, char** argv) {
  const Environment env = Environment::process();
  Job job = start_job(env);
  job_settings = job.settings;
  if (job.launch.world_size < 2) {
    std::fprintf(stderr, "run this under tests/cli/torchrun_style.sh with 2 or more ranks\n");
    return 2;
  }
  job_transport = std::make_unique<TcpHostTransport>(*job.bootstrap, job.address,
                                                     job.settings.bootstrap_timeout, job.log);
  job.bootstrap.reset();
  doctest::Context context(argc, argv);
  const int rc = context.run();
  int worst = rc;
  try {
    Communicator c = world(30s);
    c.all_reduce(&worst, &worst, 1, DataType::int32, ReduceOp::max);
  } catch (const PeerError&) {  // a rank left (the exit test): each reports its own
  }
  job_transport.reset();
  return worst;
}
