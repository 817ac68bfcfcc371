// The host backend (mpi/host_transport.hpp) through the Communicator, under mpirun with
// 2-8 processes, some runs grouped into hosts (RAILCC_RANKS_PER_HOST) so hierarchical
// algorithms have both levels. Every collective, algorithm, type and op, in place and
// out of place, on random data, against MPI's own collectives on the same data: integers
// bit for bit, floats within the reduction-order tolerance of coll/reference.hpp (MPI's
// result is held to it too), and the types and ops MPI lacks (16-bit floats, avg) against
// the exact reduction of every rank's input. Then non-blocking calls, split, send/recv,
// the plan cache, and the faults: a rank that never makes a call, calls that differ.
// Every rank runs every test, in the same order.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "check_contains.hpp"
#include "communicator_cases.hpp"
#include "railcc/coll/reference.hpp"
#include "railcc/mpi/communicator.hpp"

using namespace railcc;
using namespace std::chrono_literals;

namespace {

int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

/// The communicator every test starts from: the job's environment (RAILCC_RANKS_PER_HOST
/// from the test's command), quiet logs.
Communicator world(std::chrono::milliseconds timeout = 60s, bool check_calls = false) {
  CommunicatorOptions o;
  o.settings = RailccSettings::from(Environment::process());
  o.settings.timeout = timeout;
  o.settings.check_calls = check_calls;
  o.log = Logger(LogLevel::none);
  return Communicator(std::make_unique<MpiHostTransport>(MPI_COMM_WORLD, 60s, o.log), o);
}

/// MPI's type for railcc's, where it has one: unsigned for the wrapping ops on integers
/// (signed overflow is undefined in MPI's C loops; railcc's integers wrap). 8-bit sums and
/// products are left to the exact reference: Open MPI 4.1's AVX reductions saturate them
/// instead of wrapping (open-mpi/ompi issue 8045, closed as wontfix).
MPI_Datatype mpi_type(DataType t, ReduceOp op) {
  const bool wraps = op == ReduceOp::sum || op == ReduceOp::prod || op == ReduceOp::avg;
  switch (t) {
    case DataType::uint8: return wraps ? MPI_DATATYPE_NULL : MPI_UINT8_T;
    case DataType::int32: return wraps ? MPI_UINT32_T : MPI_INT32_T;
    case DataType::int64: return wraps ? MPI_UINT64_T : MPI_INT64_T;
    case DataType::float32: return MPI_FLOAT;
    case DataType::float64: return MPI_DOUBLE;
    default: return MPI_DATATYPE_NULL;
  }
}
MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg: return MPI_SUM;
    case ReduceOp::prod: return MPI_PROD;
    case ReduceOp::min: return MPI_MIN;
    case ReduceOp::max: return MPI_MAX;
  }
  return MPI_OP_NULL;
}

using railcc_test::Bytes;
using railcc_test::Case;
using railcc_test::describe;

/// One output element against MPI's and the exact reduction of `inputs` (every rank's
/// element), as the file's header says.
bool element_ok(DataType t, ReduceOp op, const std::vector<const std::byte*>& inputs,
                const std::byte* got, const std::byte* mpi) {
  const ExpectedElement x = expected_reduction(t, op, inputs);
  if (!element_matches(t, x, got)) return false;
  if (mpi == nullptr) return true;
  if (!is_floating(t)) return std::memcmp(got, mpi, size_of(t)) == 0;
  return element_matches(t, x, mpi);
}

/// Runs one case on `comm` and MPI; returns the elements that differ (0: pass).
std::size_t run_case(Communicator& comm, const Case& k, std::uint64_t seed) {
  const int p = comm.size();
  const int me = comm.rank();
  const auto P = static_cast<std::size_t>(p);
  const std::size_t e = size_of(k.type);
  const auto [in_elems, out_elems] = buffer_elements(k.c, k.count, P);
  const std::size_t in_bytes = in_elems * e;
  const std::size_t out_bytes = out_elems * e;
  // Every rank's input, the same on every rank (each draws all of them).
  std::vector<Bytes> inputs(P, Bytes(in_bytes));
  for (std::size_t r = 0; r < P; ++r) {
    std::mt19937_64 rng(seed * 1000 + r);
    for (std::size_t i = 0; i < in_elems; ++i)
      random_element(k.type, k.op, inputs[r].data() + i * e, rng, P);
  }
  const Bytes& mine = inputs[static_cast<std::size_t>(me)];

  // railcc, in place or not, as NCCL lays the buffers out.
  bool input_kept = true;
  const Bytes out = call_case(comm, k, mine, out_bytes, input_kept);
  const std::size_t at = static_cast<std::size_t>(me) * k.count * e;
  std::size_t bad = input_kept ? 0 : 1;  // the input is read, never written

  // MPI on the same data.
  Bytes ref(out_bytes);
  const int n = static_cast<int>(k.count);
  const MPI_Datatype mt = mpi_type(k.type, k.op);
  const bool mpi_reduces = mt != MPI_DATATYPE_NULL && k.op != ReduceOp::avg;
  switch (k.c) {
    case Collective::all_reduce:
      if (mpi_reduces) MPI_Allreduce(mine.data(), ref.data(), n, mt, mpi_op(k.op), MPI_COMM_WORLD);
      break;
    case Collective::reduce_scatter:
      if (mpi_reduces)
        MPI_Reduce_scatter_block(mine.data(), ref.data(), n, mt, mpi_op(k.op), MPI_COMM_WORLD);
      break;
    case Collective::reduce:
      if (mpi_reduces)
        MPI_Reduce(mine.data(), ref.data(), n, mt, mpi_op(k.op), k.root, MPI_COMM_WORLD);
      break;
    case Collective::all_gather:
      MPI_Allgather(mine.data(), n * static_cast<int>(e), MPI_BYTE, ref.data(),
                    n * static_cast<int>(e), MPI_BYTE, MPI_COMM_WORLD);
      break;
    case Collective::broadcast:
      if (me == k.root) ref = mine;
      MPI_Bcast(ref.data(), n * static_cast<int>(e), MPI_BYTE, k.root, MPI_COMM_WORLD);
      break;
    case Collective::all_to_all:
      MPI_Alltoall(mine.data(), n * static_cast<int>(e), MPI_BYTE, ref.data(),
                   n * static_cast<int>(e), MPI_BYTE, MPI_COMM_WORLD);
      break;
    case Collective::send_recv: break;
  }

  if (!reduces(k.c)) return bad + (out == ref ? 0 : 1);
  if (k.c == Collective::reduce && me != k.root) return bad;  // nothing to check
  std::vector<const std::byte*> each(P);
  for (std::size_t i = 0; i < out_elems; ++i) {
    const std::size_t src = k.c == Collective::reduce_scatter ? at / e + i : i;
    for (std::size_t r = 0; r < P; ++r) each[r] = inputs[r].data() + src * e;
    if (!element_ok(k.type, k.op, each, out.data() + i * e,
                    mpi_reduces ? ref.data() + i * e : nullptr))
      ++bad;
  }
  return bad;
}

}  // namespace

TEST_CASE("host backend: every collective, algorithm, type and op matches MPI's") {
  Communicator comm = world();
  const int p = comm.size();
  const JobPlacement& place = comm.placement();
  INFO("rank " << comm.rank() << " of " << p << ", " << place.describe());
  const bool hierarchical = place.uniform && place.hosts > 1 && place.max_per_host > 1;
  // The same draws on every rank.
  std::mt19937 rng(17);
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
          // Mostly small counts (every chunking edge: fewer elements than ranks, uneven
          // splits), now and then a large one (several pipeline chunks per step).
          k.count = rng() % 8 == 0 ? 20'000 + rng() % 50'000 : static_cast<std::size_t>(small(rng));
          k.in_place = c != Collective::all_to_all && rng() % 2 == 0;
          k.root = static_cast<int>(rng() % static_cast<unsigned>(p));
          INFO(describe(k));
          CHECK(run_case(comm, k, seed++) == 0);
          ++cases;
        }
      }
    }
  }
  MESSAGE(cases << " cases on " << p << " ranks");
}

TEST_CASE("host backend: non-blocking calls in flight together complete with the right data") {
  Communicator comm = world();
  const int p = comm.size();
  const std::size_t sizes[] = {1, 1000, 70'000, 3};
  std::vector<std::vector<std::int64_t>> in(4), out(4);
  std::vector<Request> requests;
  for (std::size_t k = 0; k < 4; ++k) {
    in[k].assign(sizes[k], 0);
    for (std::size_t i = 0; i < sizes[k]; ++i)
      in[k][i] = static_cast<std::int64_t>((comm.rank() + 1) * 1000 + i + k);
    out[k].assign(sizes[k], -1);
    requests.push_back(
        comm.iall_reduce(in[k].data(), out[k].data(), sizes[k], DataType::int64, ReduceOp::sum));
  }
  // Progress by test() alone, out of order, then wait.
  for (int round = 0; round < 1000 && !requests[2].test(); ++round) requests[3].test();
  for (auto& r : requests) r.wait();
  for (std::size_t k = 0; k < 4; ++k) {
    for (std::size_t i = 0; i < sizes[k]; ++i) {
      const auto want = static_cast<std::int64_t>(
          1000 * p * (p + 1) / 2 + static_cast<std::int64_t>(p) * static_cast<std::int64_t>(i + k));
      if (out[k][i] != want) {
        CHECK(out[k][i] == want);
        break;
      }
    }
  }
}

TEST_CASE("host backend: 32 collectives may be in flight; a 33rd is refused, nothing lost") {
  Communicator comm = world();
  std::vector<std::vector<std::int32_t>> bufs(33, std::vector<std::int32_t>(64, 1));
  std::vector<Request> requests;
  for (std::size_t k = 0; k < 32; ++k)
    requests.push_back(
        comm.iall_reduce(bufs[k].data(), bufs[k].data(), 64, DataType::int32, ReduceOp::sum));
  CHECK_THROWS_WITH_AS(
      comm.iall_reduce(bufs[32].data(), bufs[32].data(), 64, DataType::int32, ReduceOp::sum),
      doctest::Contains("32 collectives are in flight"), InputError);
  for (auto& r : requests) r.wait();
  for (std::size_t k = 0; k < 32; ++k) CHECK(bufs[k][63] == comm.size());
  // Once they completed, the next call runs (as call #32 on every rank).
  comm.all_reduce(bufs[32].data(), bufs[32].data(), 64, DataType::int32, ReduceOp::sum);
  CHECK(bufs[32][0] == comm.size());
}

TEST_CASE("host backend: split by host, then by local index, all-reduces within each part") {
  Communicator comm = world();
  const RankPlacement me = comm.placement().ranks[static_cast<std::size_t>(comm.rank())];
  for (const bool by_host : {true, false}) {
    const int color = static_cast<int>(by_host ? me.host : me.local);
    auto part = comm.split(color, comm.rank());
    REQUIRE(part.has_value());
    MPI_Comm mpi_part = MPI_COMM_NULL;
    MPI_Comm_split(MPI_COMM_WORLD, color, comm.rank(), &mpi_part);
    int mpi_size = 0;
    MPI_Comm_size(mpi_part, &mpi_size);
    CHECK(part->size() == mpi_size);
    std::vector<double> in(513, comm.rank() + 0.5), out(513), ref(513);
    part->all_reduce(in.data(), out.data(), in.size(), DataType::float64, ReduceOp::sum);
    MPI_Allreduce(in.data(), ref.data(), 513, MPI_DOUBLE, MPI_SUM, mpi_part);
    CHECK(out == ref);  // sums of halves are exact
    // A part keeps its ranks' hosts.
    if (by_host) CHECK(part->placement().hosts == 1);
    MPI_Comm_free(&mpi_part);
  }
  // A negative color: no communicator on this rank.
  auto none = comm.split(comm.rank() == 0 ? -1 : 0, 0);
  CHECK(none.has_value() == (comm.rank() != 0));
}

TEST_CASE("host backend: send and recv around the ring, blocking and not") {
  Communicator comm = world();
  const int p = comm.size();
  if (p < 2) return;
  const int next = (comm.rank() + 1) % p;
  const int prev = (comm.rank() + p - 1) % p;
  std::vector<float> mine(4097, static_cast<float>(comm.rank())), got(4097, -1.0f);
  Request s = comm.isend(mine.data(), mine.size(), DataType::float32, next);
  Request r = comm.irecv(got.data(), got.size(), DataType::float32, prev);
  r.wait();
  s.wait();
  CHECK(got == std::vector<float>(4097, static_cast<float>(prev)));
  // Blocking, in order: even ranks send first.
  std::vector<std::int32_t> a(10, comm.rank()), b(10, -1);
  if (comm.rank() % 2 == 0) {
    comm.send(a.data(), a.size(), DataType::int32, next);
    comm.recv(b.data(), b.size(), DataType::int32, prev);
  } else {
    comm.recv(b.data(), b.size(), DataType::int32, prev);
    comm.send(a.data(), a.size(), DataType::int32, next);
  }
  CHECK(b == std::vector<std::int32_t>(10, prev));
  CHECK_THROWS_AS(comm.send(a.data(), 1, DataType::int32, comm.rank()), InputError);
  CHECK_THROWS_AS(comm.send(a.data(), 1, DataType::int32, p), InputError);
}

TEST_CASE("host backend: random exchanges of sends and receives, alone and in batches") {
  Communicator comm = world();
  CHECK(railcc_test::batch_exchange_errors(comm, 17, 200) == 0);
}

TEST_CASE("host backend: a training loop plans once per call shape") {
  Communicator comm = world();
  std::vector<float> grad(10'000, 1.0f);
  for (int step = 0; step < 5; ++step) {
    comm.all_reduce(grad.data(), grad.data(), grad.size(), DataType::float32, ReduceOp::avg);
    comm.all_reduce(grad.data(), grad.data(), 16, DataType::float32, ReduceOp::sum);
  }
  CHECK(comm.cached_plans() == 2);
  CHECK(grad[100] == 1.0f);  // avg of ones, five times
}

TEST_CASE("host backend: bad arguments are named before anything runs") {
  Communicator comm = world();
  std::vector<float> buf(64);
  CHECK_THROWS_WITH_AS(comm.all_reduce(nullptr, buf.data(), 64, DataType::float32, ReduceOp::sum),
                       doctest::Contains("sendbuff is null"), InputError);
  CHECK_THROWS_WITH_AS(
      comm.all_reduce(buf.data(), buf.data() + 1, 32, DataType::float32, ReduceOp::sum),
      doctest::Contains("overlap"), InputError);
  CHECK_THROWS_WITH_AS(comm.broadcast(buf.data(), buf.data(), 8, DataType::float32, comm.size()),
                       doctest::Contains("root"), InputError);
  CallOptions nvls;
  nvls.algorithm = Algorithm::nvls;
  CHECK_THROWS_AS(
      comm.all_reduce(buf.data(), buf.data(), 8, DataType::float32, ReduceOp::sum, nvls),
      InputError);
  CallOptions wrong;
  wrong.algorithm = Algorithm::bruck;
  CHECK_THROWS_WITH_AS(
      comm.all_reduce(buf.data(), buf.data(), 8, DataType::float32, ReduceOp::sum, wrong),
      doctest::Contains("does not apply"), InputError);
  // Nothing ran: the communicator still works.
  comm.all_reduce(buf.data(), buf.data(), 8, DataType::float32, ReduceOp::sum);
}

TEST_CASE("host backend: a rank that never makes the call is named by the others") {
  if (world_size() < 2) return;
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
    // Who it waits for depends on the algorithm; the late rank is always among them
    // for its neighbours, and on the others some rank waiting on it is.
    CHECK(what.find("died, stopped, or did not make this call") != std::string::npos);
    CHECK(took < 2000ms);
    // A communicator whose call failed refuses the next at once.
    CHECK_THROWS_WITH_AS(
        comm.all_reduce(buf.data(), buf.data(), buf.size(), DataType::int32, ReduceOp::sum),
        doctest::Contains("failed earlier"), PeerError);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("host backend: a rank that stops mid-collective is named, and nobody hangs") {
  if (world_size() < 2) return;
  Communicator comm = world(1s);
  const int stopper = comm.size() - 1;
  std::vector<std::int32_t> buf(1 << 20, 1);
  CallOptions ring;
  ring.algorithm = Algorithm::ring;
  // The stopper starts the call, takes what has arrived (test), and stops. The others
  // start 300 ms later: had they been first, that one test() could take everything they
  // sent and finish the stopper's part, and the call would complete everywhere (it did
  // on a loaded machine, five times in a row). If it still completes, the next call is
  // tried, up to five.
  bool seen = false;
  for (int attempt = 0; attempt < 5 && !seen; ++attempt) {
    std::string what;
    if (comm.rank() != stopper) std::this_thread::sleep_for(300ms);
    const auto t0 = std::chrono::steady_clock::now();
    try {
      Request r = comm.iall_reduce(buf.data(), buf.data(), buf.size(), DataType::int32,
                                   ReduceOp::sum, ring);
      if (comm.rank() == stopper && !r.test())
        std::this_thread::sleep_for(2500ms);  // a stopped or stuck process
      r.wait();
    } catch (const PeerError& e) {
      what = e.what();
    }
    const auto took = std::chrono::steady_clock::now() - t0;
    const bool waiter = comm.rank() != stopper;
    const int failed = waiter && !what.empty() ? 1 : 0;
    int any_failed = 0;
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any_failed == 0) continue;  // the call completed on every rank that did not stop
    seen = true;
    INFO(what);
    if (failed == 1) {
      const std::string call =
          "all_reduce #" + std::to_string(attempt) + " (ring, 1048576 x int32 sum)";
      CHECK(what.find(call) != std::string::npos);
      CHECK(what.find("made no progress for 1 s") != std::string::npos);
      CHECK(took < 2400ms);  // within the timeout, not after the stop
    }
    // The stopped rank's neighbour in the ring (which one depends on the placement) waits
    // for it and names it.
    const std::string named = "from rank " + std::to_string(stopper);
    const int names = waiter && what.find(named) != std::string::npos ? 1 : 0;
    int any = 0;
    MPI_Allreduce(&names, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    CHECK(any == 1);
  }
  CHECK(seen);
}

TEST_CASE("host backend: calls that differ across ranks are named under RAILCC_CHECK_CALLS") {
  if (world_size() < 2) return;
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
  CHECK(what.find("the ranks made different calls") != std::string::npos);
  CHECK(what.find("rank 1: all_reduce of 150 x float sum in place") != std::string::npos);
  // The same calls then run.
  comm.all_reduce(buf.data(), buf.data(), 100, DataType::float32, ReduceOp::sum);
  CHECK(buf[0] == static_cast<float>(comm.size()));
}

TEST_CASE("host backend: without the check, counts that differ fail on every rank, never hang") {
  if (world_size() < 2) return;
  Communicator comm = world(1s);
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
  // Some rank sees a message of the wrong size and says what that means.
  const int saw = what.find("different counts or types") != std::string::npos ? 1 : 0;
  int any = 0;
  MPI_Allreduce(&saw, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  CHECK(any == 1);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  doctest::Context context(argc, argv);
  const int rc = context.run();
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
