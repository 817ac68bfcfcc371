// comm/waves.hpp: rank programs issued in waves, as NCCL and several ranks on one device
// run them. On host memory here: random race-free plans against a sequential reference,
// the correctness matrix against the reference results, and programs whose waves
// disagree refused before they could hang.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "check_contains.hpp"
#include "correctness_matrix.hpp"
#include "railcc/backend/in_process_backend.hpp"
#include "railcc/coll/collectives.hpp"
#include "railcc/coll/post.hpp"
#include "railcc/coll/reference.hpp"
#include "railcc/comm/waves.hpp"
#include "test_support.hpp"

using namespace railcc;
using railcc_test::error_of;
using railcc_test::logic_error_of;

namespace {

/// A race detector for work queued on lanes, and the host memory that work runs on. Each
/// lane is a stream with a vector clock (one entry per lane); a step's memory accesses
/// take its lane's clock, a mark copies it, a wait merges the mark into the waiting lane.
/// Two accesses of overlapping bytes on different lanes, one of them a write, are a race
/// unless the earlier one happened before the later through marks. Work runs on the host
/// in the order queued, which is one order a device could pick; the clocks say whether
/// every order it could pick gives the same answer.
class LaneRaceCheck {
 public:
  explicit LaneRaceCheck(int lanes, bool honour_waits = true)
      : clocks_(static_cast<std::size_t>(lanes),
                std::vector<std::uint64_t>(static_cast<std::size_t>(lanes), 0)),
        honour_waits_(honour_waits) {}

  // Lanes.
  void lane(int l) {
    REQUIRE(l >= 0);
    REQUIRE(static_cast<std::size_t>(l) < clocks_.size());
    current_ = static_cast<std::size_t>(l);
  }
  void signal(int rank, std::size_t mark) { marks_[{rank, mark}] = clocks_[current_]; }
  void wait(int rank, std::size_t mark) {
    const auto it = marks_.find({rank, mark});
    if (it == marks_.end()) {
      ++unmarked_waits_;
      return;
    }
    ++waits_;
    if (!honour_waits_) return;
    auto& mine = clocks_[current_];
    for (std::size_t l = 0; l < mine.size(); ++l) mine[l] = std::max(mine[l], it->second[l]);
  }

  // Memory.
  void copy(std::byte* dst, const std::byte* src, std::size_t bytes) {
    access(src, bytes, false);
    access(dst, bytes, true);
    std::memcpy(dst, src, bytes);
  }
  void reduce(ReductionSpec red, std::byte* dst, const std::byte* src, std::size_t count) {
    const std::size_t bytes = count * size_of(red.type);
    access(src, bytes, false);
    access(dst, bytes, true);
    reduce_into(red.type, red.op, dst, src, count);
  }
  void finish(ReductionSpec red, std::byte* buf, std::size_t count, int ranks) {
    access(buf, count * size_of(red.type), true);
    finish_reduction(red.type, red.op, buf, count, ranks);
  }

  [[nodiscard]] std::size_t races() const { return races_; }
  [[nodiscard]] std::size_t waits() const { return waits_; }
  [[nodiscard]] std::size_t unmarked_waits() const { return unmarked_waits_; }
  /// Pairs of conflicting accesses on different lanes that marks ordered.
  [[nodiscard]] std::size_t ordered_across_lanes() const { return ordered_; }

 private:
  struct Access {
    const std::byte* at;
    std::size_t bytes;
    bool writes;
    std::size_t lane;
    std::uint64_t epoch;
  };
  void access(const std::byte* p, std::size_t bytes, bool writes) {
    if (bytes == 0) return;
    auto& mine = clocks_[current_];
    const std::uint64_t epoch = ++mine[current_];
    for (const Access& a : log_) {
      if (a.lane == current_ || !(a.writes || writes)) continue;
      if (!(p < a.at + a.bytes && a.at < p + bytes)) continue;
      if (mine[a.lane] < a.epoch)
        ++races_;
      else
        ++ordered_;
    }
    log_.push_back({p, bytes, writes, current_, epoch});
  }

  std::vector<std::vector<std::uint64_t>> clocks_;
  bool honour_waits_;
  std::size_t current_ = 0;
  std::map<std::pair<int, std::size_t>, std::vector<std::uint64_t>> marks_;
  std::vector<Access> log_;
  std::size_t races_ = 0;
  std::size_t ordered_ = 0;
  std::size_t waits_ = 0;
  std::size_t unmarked_waits_ = 0;
};

/// Every rank's program of `plan`, its schedule on `lanes` lanes, and `memory[r][b]` as
/// its memory: runs the plan in waves on host memory, through `check` where given.
WaveRunStats run_in_waves(const Plan& plan, std::vector<std::vector<std::byte*>> memory,
                          int lanes = 1, LaneRaceCheck* check = nullptr) {
  const PlanIndex index(plan);
  std::vector<RankProgram> programs;
  std::vector<WaveSchedule> schedules;
  std::vector<RankBuffers> mem;
  std::vector<std::vector<std::byte>> scratch_blocks;
  std::vector<std::byte*> scratch;
  for (int r = 0; r < plan.ranks(); ++r) {
    programs.push_back(project(plan, index, r));
    schedules.emplace_back(programs.back(), lanes);
    mem.emplace_back(programs.back(), memory[static_cast<std::size_t>(r)]);
    scratch_blocks.emplace_back(schedules.back().scratch_bytes());
  }
  for (auto& s : scratch_blocks) scratch.push_back(s.data());
  if (check != nullptr)
    return run_ranks_in_waves(programs, schedules, mem, scratch, *check, *check);
  HostMemory host;
  return run_ranks_in_waves<HostMemory>(programs, schedules, mem, scratch, host);
}

/// The obviously correct reference: every operation in plan order, one at a time.
void run_in_order(const Plan& plan, std::vector<std::vector<std::vector<std::byte>>>& mem) {
  const ReductionSpec red = plan.reduction();
  const std::size_t e = size_of(red.type);
  for (OpId id = 0; id < plan.size(); ++id) {
    const PlanOp& o = plan.op(id);
    auto at = [&](int rank, const Region& r) {
      return mem[static_cast<std::size_t>(rank)][r.buffer].data() + r.offset;
    };
    if (o.kind == OpKind::finish) {
      finish_reduction(red.type, red.op, at(o.src, o.to), o.to.bytes / e, plan.ranks());
      continue;
    }
    const std::vector<std::byte> data(at(o.src, o.from), at(o.src, o.from) + o.from.bytes);
    if (o.action == RecvAction::copy)
      std::memcpy(at(o.dst, o.to), data.data(), data.size());
    else
      reduce_into(red.type, red.op, at(o.dst, o.to), data.data(), data.size() / e);
  }
}

struct Access {
  OpId op;
  int rank;
  Region region;
  bool writes;
};

}  // namespace

TEST_CASE("Randomized: waves on host memory give the plan run in order, on random plans") {
  std::mt19937_64 rng(424242);
  std::size_t reductions = 0;
  std::size_t overlapping = 0;
  std::size_t max_waves = 0;
  std::size_t lane_waits = 0;
  std::size_t ordered = 0;
  std::size_t races_without_waits = 0;
  for (int trial = 0; trial < 400; ++trial) {
    CAPTURE(trial);
    const int p = 2 + static_cast<int>(rng() % 5);
    const ReduceOp ops[] = {ReduceOp::sum, ReduceOp::max, ReduceOp::avg, ReduceOp::prod};
    const ReductionSpec red{DataType::int32, ops[rng() % 4]};
    PlanBuilder b(PlanTarget::hosts(p, 2), red);
    const BufferId buf = b.allocate(64);
    std::vector<Access> seen;
    auto region = [&] {
      const std::size_t words = 1 + rng() % 4;
      return Region{buf, 4 * (rng() % (17 - words)), 4 * words};
    };
    const int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      const int a = static_cast<int>(rng() % static_cast<std::uint64_t>(p));
      const bool finish = rng() % 8 == 0;
      const int c =
          finish || rng() % 3 == 0 ? a : static_cast<int>(rng() % static_cast<std::uint64_t>(p));
      const Region from = region();
      Region to = from;
      to.offset = 4 * (rng() % (17 - from.bytes / 4));
      const RecvAction action = rng() % 2 == 0 ? RecvAction::copy : RecvAction::reduce;
      // What it reads and writes; it waits for every earlier operation that conflicts
      // with that on the same rank, so the plan has no race and one right answer.
      std::vector<Access> mine;
      if (finish) {
        mine.push_back({0, a, from, true});
      } else {
        mine.push_back({0, a, from, false});
        mine.push_back({0, c, to, true});
      }
      Deps deps;
      for (const Access& s : seen) {
        for (const Access& m : mine) {
          if (s.rank == m.rank && (s.writes || m.writes) && overlaps(s.region, m.region))
            deps.push_back(s.op);
        }
        if (rng() % 16 == 0 && (s.rank == a || s.rank == c)) deps.push_back(s.op);
      }
      const auto channel = static_cast<std::uint32_t>(rng() % 4);
      const OpId id = finish ? b.finish(a, from, deps)
                             : (a == c ? b.local(a, to, from, action, deps)
                                       : b.transfer(a, from, c, to, action, deps, channel));
      reductions += !finish && action == RecvAction::reduce ? 1 : 0;
      overlapping += !finish && a == c && overlaps(from, to) && from.offset != to.offset ? 1 : 0;
      for (Access& m : mine) {
        m.op = id;
        seen.push_back(m);
      }
    }
    std::vector<Deps> done(static_cast<std::size_t>(p));
    const Plan plan = b.build(done);

    // The same random inputs for both runs.
    std::vector<std::vector<std::vector<std::byte>>> want(static_cast<std::size_t>(p));
    for (auto& rank : want) {
      rank.emplace_back(64);
      for (auto& x : rank[0]) x = static_cast<std::byte>(rng() % 7);
    }
    const auto inputs = want;
    auto got = want;
    std::vector<std::vector<std::byte*>> ptrs;
    for (auto& rank : got) ptrs.push_back({rank[0].data()});
    const WaveRunStats stats = run_in_waves(plan, ptrs);
    run_in_order(plan, want);
    CHECK(got == want);
    max_waves = std::max(max_waves, stats.waves);

    // On lanes (channel % lanes), twice back to back as two calls on one stream: the same
    // answer, and no two lanes touch the same bytes without a mark between them, whatever
    // order the device runs the lanes in (the second call's lanes start after the first
    // call's have all ended).
    const int lanes = 2 + static_cast<int>(rng() % 3);
    CAPTURE(lanes);
    got = inputs;
    LaneRaceCheck check(lanes);
    (void)run_in_waves(plan, ptrs, lanes, &check);
    CHECK(got == want);
    (void)run_in_waves(plan, ptrs, lanes, &check);
    auto twice = want;
    run_in_order(plan, twice);
    CHECK(got == twice);
    CHECK(check.races() == 0);
    CHECK(check.unmarked_waits() == 0);
    lane_waits += check.waits();
    ordered += check.ordered_across_lanes();
    // The same waves without their waits: the marks were what kept them apart.
    got = inputs;
    LaneRaceCheck unmarked(lanes, /*honour_waits=*/false);
    (void)run_in_waves(plan, ptrs, lanes, &unmarked);
    races_without_waits += unmarked.races();
  }
  // The cases that need scratch were drawn, and plans deep enough to have many waves.
  CHECK(reductions > 1000);
  CHECK(overlapping > 200);
  CHECK(max_waves > 10);
  // Lanes had to wait for each other, and would have raced had they not.
  CHECK(lane_waits > 1000);
  CHECK(ordered > 1000);
  CHECK(races_without_waits > 100);
  MESSAGE(lane_waits << " waits between lanes; " << ordered << " conflicting pairs they ordered; "
                     << races_without_waits << " races without them");
}

namespace {

/// Runs a case of the correctness matrix in waves on `lanes` lanes (through `check` where
/// given); returns the wrong elements.
std::size_t wrong_in_waves(const railcc_test::MatrixCase& c, int lanes = 1,
                           LaneRaceCheck* check = nullptr) {
  InProcessBackend holder(PlanTarget::hosts(c.p, std::min(c.p, 8)));
  holder.set_reduction({c.type, c.op});
  const VerifiedCall call{c.coll,     c.algo, c.inter, c.count,       c.in_place,
                          c.channels, c.root, 3,       c.phase_chunks};
  const VerifiedInputs in = fill_verified(holder, call, c.seed);
  PlanBuilder builder(PlanTarget::hosts(c.p, std::min(c.p, 8)), {c.type, c.op});
  const CollectiveBuffers buffers =
      allocate_buffers(builder, c.coll, c.count, size_of(c.type), c.in_place);
  const auto done =
      post_collective(builder, c.coll, verified_collective_call(call, buffers), c.algo, c.inter);
  const Plan plan = builder.build(done);
  adopt_plan_buffers(holder, 2 - (c.in_place ? 1 : 0), plan, "test");
  std::vector<std::vector<std::byte*>> ptrs(static_cast<std::size_t>(c.p));
  for (int r = 0; r < c.p; ++r) {
    for (std::size_t buf = 0; buf < plan.buffers().size(); ++buf)
      ptrs[static_cast<std::size_t>(r)].push_back(
          holder.buffer(r, static_cast<BufferId>(buf)).data());
  }
  (void)run_in_waves(plan, ptrs, lanes, check);
  return count_wrong(holder, call, in);
}

}  // namespace

TEST_CASE("Waves on host memory give the reference results on the correctness matrix") {
  std::size_t cases = 0;
  std::size_t laned = 0;
  std::size_t lane_waits = 0;
  railcc_test::for_each_matrix_case([&](const railcc_test::MatrixCase& c) {
    // NVLS reduces in the switch: waves run transfers and local steps only.
    if (c.algo == Algorithm::nvls) return;
    CHECK(wrong_in_waves(c) == 0);
    ++cases;
    if (c.channels < 2) return;
    // A lane per channel, through the race check: the same results, no race.
    LaneRaceCheck check(c.channels);
    CHECK(wrong_in_waves(c, c.channels, &check) == 0);
    CHECK(check.races() == 0);
    lane_waits += check.waits();
    ++laned;
  });
  MESSAGE(cases << " cases, " << laned << " of them also on a lane per channel (" << lane_waits
                << " waits between lanes)");
  CHECK(cases > 1000);
  CHECK(laned > 300);
  CHECK(lane_waits > laned);
}

namespace {

RankStep step(StepKind kind, OpId op, int peer, std::uint32_t level, Region region,
              RecvAction action = RecvAction::copy) {
  RankStep s;
  s.kind = kind;
  s.op = op;
  s.op_kind = kind == StepKind::local ? OpKind::local : OpKind::transfer;
  s.peer = peer;
  s.from = s.to = region;
  s.level = level;
  s.action = action;
  return s;
}

}  // namespace

TEST_CASE("A wave schedule groups a program by level, and sizes its scratch") {
  // Rank 1 of a ring step: it receives two chunks from rank 0 and reduces them (level 0),
  // then sends both on (level 1). Two reductions of 100 bytes in one wave: the second's
  // scratch starts at the next 256, plus its destination's offset modulo 16 (4).
  RankProgram program(1, 3, {DataType::int32, ReduceOp::sum});
  const std::size_t sizes[] = {400};
  program.set_buffers(sizes);
  program.set_levelled();
  program.add(step(StepKind::recv, 0, 0, 0, {0, 0, 100}, RecvAction::reduce), {}, {});
  program.add(step(StepKind::recv, 1, 0, 0, {0, 100, 100}, RecvAction::reduce), {}, {});
  const std::uint32_t after_first[] = {0};
  const std::uint32_t after_second[] = {1};
  program.add(step(StepKind::send, 2, 2, 1, {0, 0, 100}), after_first, {});
  program.add(step(StepKind::send, 3, 2, 1, {0, 100, 100}), after_second, {});
  const WaveSchedule s(program);
  REQUIRE(s.waves().size() == 2);
  CHECK(s.transfers(s.waves()[0]).size() == 2);
  CHECK(s.locals(s.waves()[0]).empty());
  CHECK(s.waves()[1].level == 1);
  CHECK(s.scratch_offset(0) == 0);
  CHECK(s.scratch_offset(1) == 256 + 100 % 16);
  CHECK(s.scratch_offset(2) == WaveSchedule::no_scratch);
  CHECK(s.scratch_bytes() == 256 + 4 + 100);
}

TEST_CASE("A wave schedule on lanes: a wave per level and lane, marks only across lanes") {
  // Rank 1 receives and reduces a chunk on each of two channels (level 0), sends each on
  // (level 1, after its own receive), then copies both chunks on (level 2, a local step,
  // so lane 0, after both sends).
  RankProgram program(1, 3, {DataType::int32, ReduceOp::sum});
  const std::size_t sizes[] = {400};
  program.set_buffers(sizes);
  program.set_levelled();
  auto on = [](RankStep s, std::uint32_t channel) {
    s.channel = channel;
    return s;
  };
  program.add(on(step(StepKind::recv, 0, 0, 0, {0, 0, 100}, RecvAction::reduce), 0), {}, {});
  program.add(on(step(StepKind::recv, 1, 0, 0, {0, 100, 100}, RecvAction::reduce), 1), {}, {});
  const std::uint32_t after_first[] = {0};
  const std::uint32_t after_second[] = {1};
  const std::uint32_t after_both_sends[] = {2, 3};
  program.add(on(step(StepKind::send, 2, 2, 1, {0, 0, 100}), 0), after_first, {});
  program.add(on(step(StepKind::send, 3, 2, 1, {0, 100, 100}), 1), after_second, {});
  RankStep copy = step(StepKind::local, 4, -1, 2, {0, 200, 200});
  copy.from = {0, 0, 200};
  program.add(copy, after_both_sends, {});

  const WaveSchedule s(program, 2);
  REQUIRE(s.waves().size() == 5);
  const std::pair<std::uint32_t, std::uint32_t> level_lane[] = {
      {0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}};
  for (std::size_t k = 0; k < 5; ++k) {
    CAPTURE(k);
    CHECK(s.waves()[k].level == level_lane[k].first);
    CHECK(s.waves()[k].lane == level_lane[k].second);
  }
  // Lane 1 starts after lane 0's start mark; its second wave follows its first on its
  // stream, with no mark; the copy on lane 0 waits for lane 1's send (wave 3), and lane
  // 0 ends by waiting for lane 1's last wave.
  CHECK(s.forks());
  CHECK(std::vector<std::size_t>(s.waits(s.waves()[1]).begin(), s.waits(s.waves()[1]).end()) ==
        std::vector<std::size_t>{s.start()});
  CHECK(s.waits(s.waves()[2]).empty());
  CHECK(s.waits(s.waves()[3]).empty());
  CHECK(std::vector<std::size_t>(s.waits(s.waves()[4]).begin(), s.waits(s.waves()[4]).end()) ==
        std::vector<std::size_t>{3});
  CHECK(s.waves()[3].signals);
  CHECK_FALSE(s.waves()[2].signals);
  CHECK(std::vector<std::size_t>(s.joins().begin(), s.joins().end()) ==
        std::vector<std::size_t>{3});
  // Each lane's scratch is its own area: lane 1's reduction starts after lane 0's 256.
  CHECK(s.scratch_offset(0) == 0);
  CHECK(s.scratch_offset(1) == 256 + 100 % 16);
  CHECK(s.scratch_bytes() == 512);

  // On one lane the same program is three waves, with no marks at all.
  const WaveSchedule one(program);
  CHECK(one.waves().size() == 3);
  CHECK_FALSE(one.forks());
  for (const Wave& w : one.waves()) CHECK(one.waits(w).empty());
  CHECK_CONTAINS(logic_error_of([&] { WaveSchedule bad(program, 0); }), "0 lanes (1 to 32)");
}

TEST_CASE("Waves refuse programs they cannot run, before anything runs") {
  RankProgram plain(0, 2, {});
  const std::size_t sizes[] = {64};
  plain.set_buffers(sizes);
  plain.add(step(StepKind::send, 0, 1, 0, {0, 0, 8}), {}, {});
  CHECK_CONTAINS(logic_error_of([&] { WaveSchedule s(plain); }), "rank 0's program has no levels");

  RankProgram switched(0, 2, {});
  switched.set_buffers(sizes);
  switched.set_levelled();
  switched.add(step(StepKind::combine, 0, 0, 0, {0, 0, 8}), {}, {});
  CHECK_CONTAINS(logic_error_of([&] { WaveSchedule s(switched); }),
                 "operation 0 is a combine step; switch operations (NVLS) do not run");

  RankProgram backwards(0, 2, {});
  backwards.set_buffers(sizes);
  backwards.set_levelled();
  backwards.add(step(StepKind::local, 0, -1, 3, {0, 0, 8}), {}, {});
  const std::uint32_t first[] = {0};
  backwards.add(step(StepKind::send, 1, 1, 2, {0, 0, 8}), first, {});
  CHECK_CONTAINS(logic_error_of([&] { WaveSchedule s(backwards); }),
                 "operation 1 at level 2 waits for operation 0 at level 3");

  // Two ranks whose halves of one transfer sit in different waves: NCCL would wait for
  // ever on them; here it is a LogicError naming the operation.
  std::vector<RankProgram> programs(2);
  programs[0] = RankProgram(0, 2, {});
  programs[1] = RankProgram(1, 2, {});
  for (auto& prog : programs) {
    prog.set_buffers(sizes);
    prog.set_levelled();
  }
  programs[0].add(step(StepKind::send, 0, 1, 0, {0, 0, 8}), {}, {});
  programs[1].add(step(StepKind::recv, 0, 0, 1, {0, 0, 8}), {}, {});
  std::vector<WaveSchedule> schedules{WaveSchedule(programs[0]), WaveSchedule(programs[1])};
  std::vector<std::vector<std::byte>> data(2, std::vector<std::byte>(64));
  std::vector<RankBuffers> mem{RankBuffers(programs[0], {data[0].data()}),
                               RankBuffers(programs[1], {data[1].data()})};
  std::vector<std::byte*> scratch{nullptr, nullptr};
  HostMemory host;
  CHECK_CONTAINS(logic_error_of([&] {
                   (void)run_ranks_in_waves<HostMemory>(programs, schedules, mem, scratch, host);
                 }),
                 "waves: at level 0, operation 0 (rank 0 sends 8 bytes to rank 1) and nothing "
                 "matches it");

  // Halves that meet but disagree on the size.
  programs[1] = RankProgram(1, 2, {});
  programs[1].set_buffers(sizes);
  programs[1].set_levelled();
  programs[1].add(step(StepKind::recv, 0, 0, 0, {0, 0, 16}), {}, {});
  schedules[1] = WaveSchedule(programs[1]);
  mem[1] = RankBuffers(programs[1], {data[1].data()});
  CHECK_CONTAINS(logic_error_of([&] {
                   (void)run_ranks_in_waves<HostMemory>(programs, schedules, mem, scratch, host);
                 }),
                 "operation 0 (rank 0 sends 8 bytes to rank 1) meets operation 0 (rank 0 "
                 "receives 16 bytes to rank 1)");
}

TEST_CASE("Projections straight from the algorithm carry the plan's levels when asked") {
  const PlanTarget target = PlanTarget::hosts(12, 4);
  auto post = [&](PlanBuilder& b) {
    const auto bufs = allocate_buffers(b, Collective::all_reduce, 53, 4, false);
    CollectiveCall call;
    call.count = 53;
    call.input = bufs.input;
    call.output = bufs.output;
    call.channels = 2;
    return post_collective(b, Collective::all_reduce, call, Algorithm::hierarchical,
                           Algorithm::mixed_radix);
  };
  PlanBuilder whole(target, {});
  const Plan plan = whole.build(post(whole));
  const PlanIndex index(plan);
  for (int r : {0, 7, 11}) {
    CAPTURE(r);
    const RankProgram a = project_posted(target, {}, r, post, /*levels=*/true);
    const RankProgram b = project(plan, index, r);
    CHECK(a.levelled());
    CHECK_FALSE(project_posted(target, {}, r, post).levelled());
    REQUIRE(a.steps().size() == b.steps().size());
    std::uint32_t deepest = 0;
    for (std::size_t i = 0; i < a.steps().size(); ++i) {
      CHECK(a.step(i).level == b.step(i).level);
      deepest = std::max(deepest, a.step(i).level);
    }
    CHECK(deepest > 4);
  }
}
