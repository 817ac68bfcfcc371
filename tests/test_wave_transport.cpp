// comm/wave_transport.hpp through the Communicator, with ranks as threads on a host
// device that matches groups as NCCL does (host_wave_device.hpp): every collective and
// algorithm gives the exact result; the tuner delegates to the library exactly where it
// predicts the library no slower; the plan's scratch is the transport's, allocated once
// per call shape; a caller's stream is used and the call returns once queued; a run that
// never completes aborts the device and names the call and its peers; split and
// point-to-point calls work.
#include <doctest/doctest.h>

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "check_contains.hpp"
#include "communicator_cases.hpp"
#include "host_wave_device.hpp"
#include "railcc/coll/reference.hpp"
#include "railcc/comm/communicator.hpp"
#include "railcc/comm/wave_transport.hpp"
#include "railcc/nccl/lanes.hpp"

using namespace railcc;
using railcc_test::Case;
using railcc_test::HostWaveDevice;

namespace {

struct ThreadJob {
  std::shared_ptr<railcc_test::ThreadGroups> registry =
      std::make_shared<railcc_test::ThreadGroups>();
  std::shared_ptr<railcc_test::DeviceLog> log = std::make_shared<railcc_test::DeviceLog>();
};

/// Runs fn(comm) on `p` ranks as threads, `per_host` ranks to a host; returns each
/// rank's exception text ("" where it returned).
std::vector<std::string> run_ranks(int p, int per_host, ThreadJob& job,
                                   const std::function<void(Communicator&)>& fn,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                   int lanes = 1) {
  auto group = job.registry->get("world", p);
  std::vector<std::string> errors(static_cast<std::size_t>(p));
  std::vector<std::thread> threads;
  for (int r = 0; r < p; ++r) {
    threads.emplace_back([&, r] {
      try {
        CommunicatorOptions o;
        o.settings.ranks_per_host = per_host;
        o.settings.timeout = timeout;
        o.log = Logger(LogLevel::none);
        auto device =
            std::make_unique<HostWaveDevice>(job.registry, group, r, job.log, "world", lanes);
        Communicator comm(std::make_unique<WaveTransport>(std::move(device)), o);
        fn(comm);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  return errors;
}

HostWaveDevice& device_of(Communicator& comm) {
  return static_cast<HostWaveDevice&>(dynamic_cast<WaveTransport&>(comm.transport()).device());
}

/// A ring all-reduce of 64 int32; if it fails, a second one, whose error goes to
/// `later[rank]` (it must fail at once), then the first's error is thrown on.
void two_calls(Communicator& comm, std::vector<std::string>& later) {
  std::vector<std::int32_t> v(64, 1);
  CallOptions o;
  o.algorithm = Algorithm::ring;
  try {
    comm.all_reduce(v.data(), v.data(), 64, DataType::int32, ReduceOp::sum, o);
  } catch (const PeerError&) {
    try {
      comm.all_reduce(v.data(), v.data(), 64, DataType::int32, ReduceOp::sum, o);
    } catch (const PeerError& again) {
      later[static_cast<std::size_t>(comm.rank())] = again.what();
    }
    throw;
  }
}

}  // namespace

TEST_CASE(
    "wave transport: every collective and algorithm gives the exact result, in NCCL's groups") {
  // 6 ranks on hosts of 3 (hierarchical has both levels) and 5 ranks on one host; then 6
  // ranks again on a device of 3 lanes, where a call's channels default to one per lane.
  struct Job {
    int p, per_host, lanes;
  };
  for (const Job& job_shape : {Job{6, 3, 1}, Job{5, 5, 1}, Job{6, 3, 3}}) {
    const int p = job_shape.p;
    const int lanes = job_shape.lanes;
    CAPTURE(p);
    CAPTURE(lanes);
    ThreadJob job;
    std::atomic<std::size_t> cases{0};
    std::vector<std::size_t> bad(static_cast<std::size_t>(p), 0);
    const auto errors = run_ranks(
        p, job_shape.per_host, job,
        [&](Communicator& comm) {
          if (comm.explain(Collective::all_reduce, 1 << 20, DataType::float32).channels != lanes)
            ++bad[static_cast<std::size_t>(comm.rank())];
          const bool hierarchical = comm.placement().hosts > 1;
          std::mt19937 rng(5);  // the same draws on every rank
          std::uint64_t seed = 1;
          for (Collective c :
               {Collective::all_reduce, Collective::reduce_scatter, Collective::all_gather,
                Collective::broadcast, Collective::reduce, Collective::all_to_all}) {
            for (Algorithm a : algorithms_for(c)) {
              if (a == Algorithm::nvls || (a == Algorithm::hierarchical && !hierarchical)) continue;
              for (DataType t : {DataType::int32, DataType::float32, DataType::bfloat16}) {
                for (ReduceOp op : all_reduce_ops) {
                  if (!reduces(c) && op != ReduceOp::sum) continue;
                  Case k{c, a, t, op, 0, false, 0};
                  k.count = rng() % 6 == 0 ? 3000 + rng() % 5000 : rng() % 40;
                  k.in_place = c != Collective::all_to_all && rng() % 2 == 0;
                  k.root = static_cast<int>(rng() % static_cast<unsigned>(p));
                  bad[static_cast<std::size_t>(comm.rank())] +=
                      railcc_test::exact_result_errors(comm, k, seed++);
                  if (comm.rank() == 0) ++cases;
                }
              }
            }
          }
        },
        std::chrono::seconds(60), lanes);
    for (const auto& e : errors) CHECK(e == "");
    for (std::size_t b : bad) CHECK(b == 0);
    CHECK(cases > 100);
    // Reductions received into scratch, and plans with scratch buffers: device memory.
    CHECK(job.log->allocated > 0);
    // On lanes, groups ran on the other lanes' communicators, and lanes waited for
    // each other; on one lane, never.
    CHECK((job.log->lane_groups > 0) == (lanes > 1));
    CHECK((job.log->lane_waits > 0) == (lanes > 1));
  }
}

TEST_CASE("wave transport: the tuner delegates to the library exactly where it is no slower") {
  std::vector<std::string> lines;
  int delegated = 0;
  int kept = 0;
  // Two ranks, where the library's ring is as fast as any plan, and four on one host,
  // where railcc's halving and doubling is predicted faster.
  for (int p : {2, 4}) {
    CAPTURE(p);
    ThreadJob job;
    std::vector<std::size_t> bad(static_cast<std::size_t>(p), 0);
    std::vector<int> natives_expected(static_cast<std::size_t>(p), 0);
    const auto errors = run_ranks(p, p, job, [&](Communicator& comm) {
      const auto me = static_cast<std::size_t>(comm.rank());
      const auto inter = inter_host_algorithms().front();
      for (std::size_t count : {std::size_t{16}, std::size_t{4096}, std::size_t{1} << 20}) {
        const std::size_t bytes = count * 4;
        const PlanChoice choice = comm.explain(Collective::all_reduce, count, DataType::int32);
        // The library's ring against every plan railcc would run here.
        const Picoseconds ring =
            comm.model().predict(Collective::all_reduce, Algorithm::ring, inter, bytes);
        bool no_slower = true;
        for (Algorithm a : algorithms_for(Collective::all_reduce)) {
          if (a == Algorithm::nvls || a == Algorithm::hierarchical) continue;
          no_slower =
              no_slower && ring <= comm.model().predict(Collective::all_reduce, a, inter, bytes);
        }
        if (me == 0) {
          lines.push_back(std::to_string(p) + " ranks, " + std::to_string(count) + ": " +
                          choice.name() + ": " + choice.why);
          (choice.native() ? delegated : kept)++;
        }
        if (choice.native() != no_slower) ++bad[me];
        if (choice.native() && choice.name() != "HOSTLIB:ring") ++bad[me];
        natives_expected[me] += choice.native() ? 1 : 0;
        // The call runs where the choice says, with the exact result.
        std::vector<std::int32_t> in(count), out(count);
        for (std::size_t i = 0; i < count; ++i) in[i] = static_cast<std::int32_t>(i * 7 + me);
        comm.all_reduce(in.data(), out.data(), count, DataType::int32, ReduceOp::sum);
        const std::size_t ranks = static_cast<std::size_t>(comm.size());
        for (std::size_t i = 0; i < count; ++i) {
          const auto want = static_cast<std::int32_t>(ranks * i * 7 + ranks * (ranks - 1) / 2);
          if (out[i] != want) ++bad[me];
        }
        // A call that names its algorithm keeps railcc's plan.
        CallOptions named;
        named.algorithm = Algorithm::ring;
        if (comm.explain(Collective::all_reduce, count, DataType::int32, named).native()) ++bad[me];
      }
    });
    for (const auto& e : errors) CHECK(e == "");
    for (std::size_t b : bad) CHECK(b == 0);
    // Each delegated call ran the library's collective once on every rank.
    int expected = 0;
    for (int n : natives_expected) expected += n;
    CHECK(job.log->natives == expected);
  }
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  INFO(all);
  // Both outcomes happen, so the test sees the rule from both sides.
  CHECK(delegated > 0);
  CHECK(kept > 0);
  CHECK_CONTAINS(lines.front(), "delegated to HOSTLIB");
}

TEST_CASE(
    "wave transport: scratch is allocated once per call shape, and a caller's stream is used") {
  ThreadJob job;
  std::vector<std::size_t> after_first(3), after_more(3);
  std::vector<int> saw_stream(3, 0);
  const auto errors = run_ranks(3, 3, job, [&](Communicator& comm) {
    std::vector<float> in(3 * 1000, 1.0f), out(1000);
    CallOptions o;
    o.algorithm = Algorithm::ring;
    comm.reduce_scatter(in.data(), out.data(), 1000, DataType::float32, ReduceOp::sum, o);
    comm.transport().bootstrap().barrier();
    after_first[static_cast<std::size_t>(comm.rank())] = job.log->allocated;
    for (int i = 0; i < 5; ++i)
      comm.reduce_scatter(in.data(), out.data(), 1000, DataType::float32, ReduceOp::sum, o);
    comm.transport().bootstrap().barrier();
    after_more[static_cast<std::size_t>(comm.rank())] = job.log->allocated;
    // On the caller's stream the request is complete once queued.
    // The host device never dereferences a stream: any address names the caller's.
    int callers_stream = 0;
    o.stream = &callers_stream;
    Request r =
        comm.ireduce_scatter(in.data(), out.data(), 1000, DataType::float32, ReduceOp::sum, o);
    saw_stream[static_cast<std::size_t>(comm.rank())] =
        (device_of(comm).stream() == &callers_stream && r.test() && out[0] == 3.0f) ? 1 : 0;
  });
  for (const auto& e : errors) CHECK(e == "");
  CHECK(after_first[0] > 0);
  CHECK(after_more == after_first);
  CHECK(saw_stream == std::vector<int>{1, 1, 1});
}

TEST_CASE("wave transport: a run that never completes aborts the device and names the call") {
  ThreadJob job;
  std::vector<std::string> later(2);
  const auto errors = run_ranks(
      2, 2, job,
      [&](Communicator& comm) {
        device_of(comm).stall();  // this rank's device never gets anywhere
        two_calls(comm, later);
      },
      std::chrono::milliseconds(300));
  for (int r = 0; r < 2; ++r) {
    CAPTURE(r);
    CHECK_CONTAINS(errors[static_cast<std::size_t>(r)],
                   "all_reduce #0 (ring, 64 x int32 sum): did not complete in 300 ms on rank " +
                       std::to_string(r) + " (host waves (test)), which exchanges data with rank " +
                       std::to_string(1 - r) + " in it");
    CHECK_CONTAINS(errors[static_cast<std::size_t>(r)], "the communicator was aborted");
    CHECK_CONTAINS(later[static_cast<std::size_t>(r)],
                   "all_reduce #1 (ring, 64 x int32 sum): the communicator was aborted after "
                   "all_reduce #0 (ring, 64 x int32 sum) failed");
  }
  CHECK(job.log->aborts == 2);
}

TEST_CASE("wave transport: a group a peer never joins aborts the device and names the call") {
  ThreadJob job;
  job.registry->timeout = std::chrono::milliseconds(300);
  std::vector<std::string> later(2);
  const auto errors = run_ranks(
      2, 2, job,
      [&](Communicator& comm) {
        if (comm.rank() == 1) device_of(comm).stall();  // rank 1 never joins a group
        two_calls(comm, later);
      },
      std::chrono::milliseconds(300));
  // Rank 0 waited in its first group; rank 1's device never got anywhere.
  CHECK_CONTAINS(errors[0],
                 "all_reduce #0 (ring, 64 x int32 sum): rank 0's group waited 300 ms for ranks 1 "
                 "on rank 0; the communicator was aborted");
  CHECK_CONTAINS(errors[1], "all_reduce #0 (ring, 64 x int32 sum): did not complete in 300 ms");
  for (const auto& l : later) CHECK_CONTAINS(l, "the communicator was aborted after all_reduce #0");
  CHECK(job.log->aborts == 2);
}

TEST_CASE("wave transport: buffers too small or not device memory are refused before queuing") {
  ThreadJob job;
  std::vector<std::vector<std::byte>> memory(2, std::vector<std::byte>(256));
  for (auto& m : memory) job.log->device_memory.emplace_back(m.data(), m.size());
  std::vector<std::string> small(2), host(2), p2p(2), fine(2);
  const auto errors = run_ranks(2, 2, job, [&](Communicator& comm) {
    const auto me = static_cast<std::size_t>(comm.rank());
    auto* mine = memory[me].data();
    auto error_of = [&](auto&& call) {
      try {
        call();
      } catch (const InputError& e) {
        return std::string(e.what());
      }
      return std::string();
    };
    // 64 floats fit the 256 bytes from their start, not from 4 bytes in; 65 do not fit.
    fine[me] = error_of([&] { comm.all_reduce(mine, mine, 64, DataType::float32, ReduceOp::sum); });
    small[me] = error_of(
        [&] { comm.all_reduce(mine + 4, mine + 4, 64, DataType::float32, ReduceOp::sum); });
    std::vector<float> outside(64);
    host[me] = error_of(
        [&] { comm.all_reduce(outside.data(), mine, 64, DataType::float32, ReduceOp::sum); });
    p2p[me] = error_of([&] { comm.send(mine, 65, DataType::float32, 1 - comm.rank()); });
  });
  for (const auto& e : errors) CHECK(e == "");
  for (int r = 0; r < 2; ++r) {
    CAPTURE(r);
    const auto i = static_cast<std::size_t>(r);
    CHECK(fine[i] == "");
    CHECK(small[i] == "all_reduce on rank " + std::to_string(r) +
                          ": sendbuff has 252 bytes from its address to the end of its "
                          "allocation, and the call needs 256");
    CHECK(host[i] == "all_reduce on rank " + std::to_string(r) +
                         ": sendbuff is host memory; this transport takes device memory "
                         "(cudaMalloc, or managed memory)");
    CHECK(p2p[i] == "send on rank " + std::to_string(r) +
                        ": the buffer has 256 bytes from its address to the end of its "
                        "allocation, and the call needs 260");
  }
}

TEST_CASE("wave transport: split and point-to-point calls") {
  ThreadJob job;
  std::vector<std::size_t> bad(4, 0);
  const auto errors = run_ranks(4, 2, job, [&](Communicator& comm) {
    const int me = comm.rank();
    // Even and odd ranks, each a communicator of two.
    auto half = comm.split(me % 2, me);
    if (!half || half->size() != 2) {
      ++bad[static_cast<std::size_t>(me)];
      return;
    }
    std::int64_t v = me;
    CallOptions o;
    o.algorithm = Algorithm::ring;
    half->all_reduce(&v, &v, 1, DataType::int64, ReduceOp::sum, o);
    if (v != (me % 2 == 0 ? 0 + 2 : 1 + 3)) ++bad[static_cast<std::size_t>(me)];
    // The node and rail communicators: hosts of two, so ranks {0,1}, {2,3} share a host
    // and ranks {0,2}, {1,3} a rail.
    Communicator node = comm.split_by_host();
    Communicator rail = comm.split_by_rail();
    std::int64_t n = me;
    std::int64_t r = me;
    node.all_reduce(&n, &n, 1, DataType::int64, ReduceOp::sum, o);
    rail.all_reduce(&r, &r, 1, DataType::int64, ReduceOp::sum, o);
    if (node.size() != 2 || n != (me / 2 == 0 ? 0 + 1 : 2 + 3)) ++bad[static_cast<std::size_t>(me)];
    if (rail.size() != 2 || r != (me % 2 == 0 ? 0 + 2 : 1 + 3)) ++bad[static_cast<std::size_t>(me)];
    if (node.placement().hosts != 1 || rail.placement().hosts != 2)
      ++bad[static_cast<std::size_t>(me)];
    // A ring of sends and receives on the whole communicator. Each call is a group of
    // its own, as an NCCL send outside ncclGroupStart/End is: even ranks send first, odd
    // ranks receive first, or every send would wait for a receive queued behind it.
    std::vector<std::int32_t> out(100, me), in(100, -1);
    const int next = (me + 1) % 4;
    const int prev = (me + 3) % 4;
    if (me % 2 == 0) {
      comm.send(out.data(), 100, DataType::int32, next);
      comm.recv(in.data(), 100, DataType::int32, prev);
    } else {
      comm.recv(in.data(), 100, DataType::int32, prev);
      comm.send(out.data(), 100, DataType::int32, next);
    }
    for (std::int32_t x : in) bad[static_cast<std::size_t>(me)] += x == prev ? 0 : 1;
  });
  for (const auto& e : errors) CHECK(e == "");
  for (std::size_t b : bad) CHECK(b == 0);
}

TEST_CASE("wave transport: random exchanges of sends and receives, alone and in NCCL groups") {
  // Each batch one group, each lone call a group of its own, on one lane and on three.
  for (int lanes : {1, 3}) {
    CAPTURE(lanes);
    ThreadJob job;
    std::vector<std::size_t> bad(5, 0);
    const auto errors = run_ranks(
        5, 5, job,
        [&](Communicator& comm) {
          bad[static_cast<std::size_t>(comm.rank())] =
              railcc_test::batch_exchange_errors(comm, 23 + static_cast<std::uint64_t>(lanes), 300);
        },
        std::chrono::seconds(60), lanes);
    for (const auto& e : errors) CHECK(e == "");
    for (std::size_t b : bad) CHECK(b == 0);
  }
}

TEST_CASE("NCCL lanes: more than one needs NCCL 2.26 and NCCL_LAUNCH_ORDER_IMPLICIT=1") {
  CHECK_NOTHROW(nccl::require_lanes(1, 21800, nullptr));
  CHECK_NOTHROW(nccl::require_lanes(4, 22809, "1"));
  CHECK_THROWS_WITH_AS(nccl::require_lanes(4, 22507, "1"),
                       doctest::Contains("RAILCC_LANES=4 runs 4 NCCL communicators at once on "
                                         "this GPU, which needs NCCL 2.26 or later "
                                         "(NCCL_LAUNCH_ORDER_IMPLICIT); this process loaded "
                                         "NCCL 2.25.7"),
                       InputError);
  CHECK_THROWS_WITH_AS(nccl::require_lanes(2, 22809, nullptr),
                       doctest::Contains("needs NCCL_LAUNCH_ORDER_IMPLICIT=1 (it is unset)"),
                       InputError);
  CHECK_THROWS_WITH_AS(nccl::require_lanes(2, 22809, "0"), doctest::Contains("(it is \"0\")"),
                       InputError);
  CHECK_THROWS_WITH_AS(nccl::require_lanes(0, 22809, "1"),
                       doctest::Contains("0 lanes (RAILCC_LANES is 1 to 32)"), InputError);
}
