// comm/: what the communicator and every host transport share, tested without MPI: the
// placement from host names, the step tracker, local steps on host memory, the vectorised
// reduction loops, and the Communicator itself over a job of one rank. Each core piece
// against a small reference written here, on random inputs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "check_contains.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/comm.hpp"
#include "railcc/fabric/presets.hpp"

using namespace railcc;

TEST_CASE("placement: hosts by first appearance, local indices in rank order (random jobs)") {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 300; ++trial) {
    const std::size_t ranks = 1 + rng() % 40;
    const std::size_t names = 1 + rng() % 6;
    std::vector<std::string> host_of(ranks);
    for (auto& h : host_of) h = "node-" + std::to_string(rng() % names);
    const JobPlacement p = place_ranks(host_of);
    // Reference: a host's number is how many distinct names came before its first rank;
    // a rank's local index is how many earlier ranks share its name.
    std::vector<std::string> seen;
    std::map<std::string, std::size_t> per;
    for (std::size_t r = 0; r < ranks; ++r) {
      auto it = std::find(seen.begin(), seen.end(), host_of[r]);
      if (it == seen.end()) it = seen.insert(seen.end(), host_of[r]);
      const auto host = static_cast<std::uint32_t>(it - seen.begin());
      std::uint32_t local = 0;
      for (std::size_t q = 0; q < r; ++q) local += host_of[q] == host_of[r] ? 1 : 0;
      REQUIRE(p.ranks[r].host == host);
      REQUIRE(p.ranks[r].local == local);
      REQUIRE(p.ranks[r].rail == local);
      ++per[host_of[r]];
    }
    CHECK(p.hosts == seen.size());
    CHECK(p.host_names == seen);
    std::size_t most = 0;
    bool equal = true;
    for (const auto& [name, n] : per) {
      most = std::max(most, n);
      equal = equal && n == per.begin()->second;
    }
    CHECK(p.max_per_host == most);
    CHECK(p.uniform == equal);
  }
  CHECK(place_ranks({}).hosts == 0);
  // RAILCC_RANKS_PER_HOST: consecutive ranks name one host.
  std::vector<std::string> grouped;
  for (int r = 0; r < 7; ++r) grouped.push_back(grouped_host(r, 3));
  const JobPlacement g = place_ranks(grouped);
  CHECK(g.hosts == 3);
  CHECK_FALSE(g.uniform);
  CHECK(g.ranks[4].host == 1);
  CHECK(g.ranks[4].local == 1);
  CHECK(g.describe() == "7 ranks on 3 hosts");
}

namespace {

/// A random program whose steps wait for random earlier steps.
RankProgram random_program(std::mt19937& rng, std::size_t steps) {
  RankProgram prog(0, 1, ReductionSpec{});
  for (std::size_t i = 0; i < steps; ++i) {
    std::vector<std::uint32_t> waits;
    for (std::size_t w = 0; w < i; ++w) {
      if (rng() % 5 == 0) waits.push_back(static_cast<std::uint32_t>(w));
    }
    RankStep s;
    s.op = static_cast<OpId>(i);
    prog.add(s, waits, {});
  }
  return prog;
}

}  // namespace

TEST_CASE("step tracker: every step starts after its waits, each exactly once (random programs)") {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const RankProgram prog = random_program(rng, rng() % 60);
    StepTracker t(prog);
    std::vector<bool> done(prog.steps().size(), false);
    std::vector<std::uint32_t> started;
    std::vector<std::uint32_t> in_flight;
    // Complete started steps in a random order, as messages would.
    for (;;) {
      std::uint32_t i = 0;
      while (t.pop_ready(i)) {
        for (std::uint32_t w : prog.waits(i)) REQUIRE(done[w]);
        REQUIRE(std::find(started.begin(), started.end(), i) == started.end());
        started.push_back(i);
        in_flight.push_back(i);
      }
      if (in_flight.empty()) break;
      const std::size_t k = rng() % in_flight.size();
      const std::uint32_t s = in_flight[k];
      in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(k));
      done[s] = true;
      t.complete(s);
    }
    CHECK(started.size() == prog.steps().size());
    CHECK(t.done());
    CHECK(t.completed() == prog.steps().size());
  }
}

TEST_CASE("local steps on host memory: overlapping copies move as memmove, reductions read first") {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 500; ++trial) {
    const bool reduce = rng() % 2 == 0;
    const DataType type = reduce ? DataType::int32 : DataType::uint8;
    const std::size_t e = size_of(type);
    const std::size_t elems = 64;
    RankProgram prog(0, 1, ReductionSpec{type, ReduceOp::sum});
    const std::array<std::size_t, 1> sizes{elems * e};
    prog.set_buffers(sizes);
    const std::size_t n = 1 + rng() % 20;
    RankStep s;
    s.kind = StepKind::local;
    s.op_kind = OpKind::local;
    s.action = reduce ? RecvAction::reduce : RecvAction::copy;
    s.from = Region{0, (rng() % (elems - n + 1)) * e, n * e};
    s.to = Region{0, (rng() % (elems - n + 1)) * e, n * e};
    prog.add(s, {}, {});
    std::vector<std::byte> mem(elems * e);
    for (auto& b : mem) b = static_cast<std::byte>(rng());
    // Reference: read the whole source first, then write element by element.
    std::vector<std::byte> want = mem;
    const std::vector<std::byte> src(
        mem.begin() + static_cast<std::ptrdiff_t>(s.from.offset),
        mem.begin() + static_cast<std::ptrdiff_t>(s.from.offset + s.from.bytes));
    for (std::size_t i = 0; i < n; ++i) {
      std::byte* d = want.data() + s.to.offset + i * e;
      if (reduce) {
        std::int32_t a = 0;
        std::int32_t b = 0;
        std::memcpy(&a, d, 4);
        std::memcpy(&b, src.data() + i * e, 4);
        const auto sum = static_cast<std::int32_t>(static_cast<std::uint32_t>(a) +
                                                   static_cast<std::uint32_t>(b));
        std::memcpy(d, &sum, 4);
      } else {
        std::memcpy(d, src.data() + i * e, e);
      }
    }
    std::vector<std::byte> spare;
    run_local_step(prog, prog.step(0), RankBuffers(prog, {mem.data()}), spare);
    REQUIRE(mem == want);
  }
}

TEST_CASE("reduction loops: blocks and the tail match the element operator (random lengths)") {
  std::mt19937_64 rng(9);
  for (DataType t : {DataType::uint8, DataType::int32, DataType::int64, DataType::float16,
                     DataType::bfloat16, DataType::float32, DataType::float64}) {
    const std::size_t e = size_of(t);
    for (ReduceOp op : all_reduce_ops) {
      for (int trial = 0; trial < 8; ++trial) {
        const std::size_t n = rng() % 300;  // across the 64-element blocks and their tails
        std::vector<std::byte> dst(n * e);
        std::vector<std::byte> src(n * e);
        for (auto& b : dst) b = static_cast<std::byte>(rng());
        for (auto& b : src) b = static_cast<std::byte>(rng());
        std::vector<std::byte> want = dst;
        for (std::size_t i = 0; i < n; ++i)  // one element at a time: no block, no tail
          reduce_into(t, op, want.data() + i * e, src.data() + i * e, 1);
        reduce_into(t, op, dst.data(), src.data(), n);
        INFO(to_string(t) << " " << to_string(op) << " " << n);
        // NaN payloads compare by bits: both sides ran the same element operator.
        CHECK(dst == want);
      }
    }
  }
}

namespace {

Communicator solo(RailccSettings settings = {}) {
  CommunicatorOptions o;
  o.settings = settings;
  o.log = Logger(LogLevel::none);
  o.host_name = "solo";
  return Communicator(std::make_unique<LocalTransport>(), o);
}

}  // namespace

TEST_CASE("communicator of one rank: every collective gives its input back, in place or not") {
  Communicator comm = solo();
  CHECK(comm.rank() == 0);
  CHECK(comm.size() == 1);
  CHECK(comm.placement().describe() == "1 rank on 1 host of 1");
  std::vector<float> in{1.5f, -2.0f, 3.25f, 0.0f, 7.0f};
  std::vector<float> out(5, -1.0f);
  for (ReduceOp op : all_reduce_ops) {
    std::fill(out.begin(), out.end(), -1.0f);
    comm.all_reduce(in.data(), out.data(), 5, DataType::float32, op);
    CHECK(out == in);
  }
  std::fill(out.begin(), out.end(), -1.0f);
  comm.reduce_scatter(in.data(), out.data(), 5, DataType::float32, ReduceOp::sum);
  CHECK(out == in);
  std::fill(out.begin(), out.end(), -1.0f);
  comm.all_gather(in.data(), out.data(), 5, DataType::float32);
  CHECK(out == in);
  std::fill(out.begin(), out.end(), -1.0f);
  comm.broadcast(in.data(), out.data(), 5, DataType::float32, 0);
  CHECK(out == in);
  std::fill(out.begin(), out.end(), -1.0f);
  comm.reduce(in.data(), out.data(), 5, DataType::float32, ReduceOp::max, 0);
  CHECK(out == in);
  std::fill(out.begin(), out.end(), -1.0f);
  comm.all_to_all(in.data(), out.data(), 5, DataType::float32);
  CHECK(out == in);
  std::vector<float> buf = in;
  comm.all_reduce(buf.data(), buf.data(), 5, DataType::float32, ReduceOp::sum);
  CHECK(buf == in);
  Request r = comm.iall_reduce(in.data(), out.data(), 5, DataType::float32, ReduceOp::sum);
  CHECK(r.test());
  r.wait();
  CHECK(r.done());
  // Count 0 is a call that moves nothing.
  comm.all_reduce(nullptr, nullptr, 0, DataType::float32, ReduceOp::sum);
}

TEST_CASE("communicator: plans are made once per call shape, and say why") {
  Communicator comm = solo();
  std::vector<double> buf(1000, 2.0);
  for (int step = 0; step < 4; ++step)
    comm.all_reduce(buf.data(), buf.data(), buf.size(), DataType::float64, ReduceOp::sum);
  CHECK(comm.cached_plans() == 1);
  comm.all_reduce(buf.data(), buf.data(), 10, DataType::float64, ReduceOp::sum);
  comm.all_gather(buf.data(), buf.data(), 10, DataType::float64);
  CHECK(comm.cached_plans() == 3);
  const PlanChoice c = comm.explain(Collective::all_reduce, 1 << 20, DataType::float32);
  CHECK(c.why.rfind("tuner:", 0) == 0);
  CHECK(c.why.find("ring") != std::string::npos);
  CHECK(c.why.find("hierarchical") == std::string::npos);  // one host
  CHECK(c.predicted == Picoseconds{});                     // one rank moves nothing
}

TEST_CASE("communicator: RAILCC_ALGO forces an algorithm where it applies") {
  RailccSettings s;
  s.algorithm = "tree";
  Communicator comm = solo(s);
  CHECK(comm.explain(Collective::all_reduce, 4096, DataType::float32).algorithm == Algorithm::tree);
  CHECK(comm.explain(Collective::all_reduce, 4096, DataType::float32).why == "RAILCC_ALGO");
  const PlanChoice b = comm.explain(Collective::broadcast, 4096, DataType::float32);
  CHECK(b.algorithm == Algorithm::chain);
  CHECK(b.why.find("RAILCC_ALGO=tree does not apply") != std::string::npos);
  s.algorithm = "fastest";
  CHECK_THROWS_WITH_AS(solo(s), doctest::Contains("RAILCC_ALGO=\"fastest\" is not an algorithm"),
                       InputError);
}

TEST_CASE("communicator: bad arguments are InputErrors that name the call") {
  Communicator comm = solo();
  std::vector<float> buf(16);
  CHECK_THROWS_WITH_AS(comm.all_reduce(buf.data(), nullptr, 4, DataType::float32, ReduceOp::sum),
                       doctest::Contains("all_reduce: recvbuff is null"), InputError);
  CHECK_THROWS_WITH_AS(
      comm.all_reduce(buf.data(), buf.data() + 2, 4, DataType::float32, ReduceOp::sum),
      doctest::Contains("overlap"), InputError);
  CHECK_THROWS_WITH_AS(comm.all_to_all(buf.data(), buf.data(), 4, DataType::float32),
                       doctest::Contains("in place is not supported"), InputError);
  CHECK_THROWS_WITH_AS(comm.reduce(buf.data(), buf.data(), 4, DataType::float32, ReduceOp::sum, 1),
                       doctest::Contains("root 1 is not a rank of 1"), InputError);
  CHECK_THROWS_WITH_AS(comm.send(buf.data(), 4, DataType::float32, 0),
                       doctest::Contains("this rank itself"), InputError);
  const PeerTransfer bad_batch[] = {PeerTransfer::recv(buf.data(), 4, DataType::float32, 0),
                                    PeerTransfer::send(nullptr, 4, DataType::float32, 3)};
  CHECK_THROWS_WITH_AS(comm.batch_send_recv(bad_batch),
                       doctest::Contains("batch_isend_irecv (transfer 0): rank 0 is this rank "
                                         "itself"),
                       InputError);
  CHECK_THROWS_WITH_AS(comm.batch_send_recv({bad_batch + 1, 1}),
                       doctest::Contains("batch_isend_irecv: peer 3 is not a rank of 1"),
                       InputError);
  CHECK_NOTHROW(comm.batch_send_recv({}));  // nothing to do
  CallOptions hier;
  hier.algorithm = Algorithm::hierarchical;
  CHECK_THROWS_WITH_AS(
      comm.all_reduce(buf.data(), buf.data(), 4, DataType::float32, ReduceOp::sum, hier),
      doctest::Contains("needs equal hosts"), InputError);
}

TEST_CASE("communicator: the tuner assumes the fabric it is given") {
  CommunicatorOptions o;
  o.log = Logger(LogLevel::none);
  ColossusParams eight;
  eight.gpus = 8;
  o.fabric = colossus(eight);
  o.fabric_name = "colossus";
  Communicator comm(std::make_unique<LocalTransport>(), o);
  CHECK(comm.fabric_name() == "colossus");
  CHECK(comm.fabric().endpoint_count() == 8);
  CHECK(comm.model().ranks == 1);
  CHECK(comm.model().hosts == 1);
  CHECK_FALSE(comm.model().switch_reduction);  // host memory: no NVLS
  // By default: a fabric of the hosts found.
  CHECK(solo().fabric_name() == "a rail-optimised fabric of 1 host of 1 GPUs");
}
