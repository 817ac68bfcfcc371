// coll/projection.hpp: a rank's projection follows the header's rules, checked by hand,
// against a brute-force reference on random plans, and straight from the algorithms.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "check_contains.hpp"
#include "railcc/coll/plan.hpp"
#include "railcc/coll/post.hpp"
#include "railcc/coll/projection.hpp"
#include "test_support.hpp"

using namespace railcc;
using railcc_test::error_of;
using railcc_test::logic_error_of;

TEST_CASE("Projection: a transfer is a send and a receive; waits are the rank's own steps") {
  PlanBuilder b(PlanTarget::hosts(3, 3));
  const BufferId buf = b.allocate(32);
  const Region lo{buf, 0, 16};
  const Region hi{buf, 16, 16};
  const OpId copy0 = b.local(0, hi, lo, RecvAction::copy, {});
  const OpId t01 = b.transfer(0, hi, 1, lo, RecvAction::reduce, std::vector<OpId>{copy0}, 2);
  // Waits for a local step of rank 2 that rank 1 cannot see: carried, because the
  // dependency involves rank 2, the transfer's sender.
  const OpId copy2 = b.local(2, hi, lo, RecvAction::copy, {});
  const OpId t21 = b.transfer(2, hi, 1, hi, RecvAction::copy, std::vector<OpId>{copy2, t01});
  const Plan plan = b.build(std::vector<Deps>{{t01}, {t01, t21}, {t21}});

  const RankProgram p0 = project(plan, 0);
  REQUIRE(p0.steps().size() == 2);
  CHECK(p0.step(0).kind == StepKind::local);
  CHECK(p0.step(1).kind == StepKind::send);
  CHECK(p0.step(1).peer == 1);
  CHECK(p0.step(1).op == t01);
  CHECK(p0.step(1).channel == 2);
  CHECK(std::vector<std::uint32_t>(p0.waits(1).begin(), p0.waits(1).end()) ==
        std::vector<std::uint32_t>{0});
  CHECK(std::vector<std::uint32_t>(p0.completion().begin(), p0.completion().end()) ==
        std::vector<std::uint32_t>{1});

  const RankProgram p1 = project(plan, 1);
  REQUIRE(p1.steps().size() == 2);
  CHECK(p1.step(0).kind == StepKind::recv);
  CHECK(p1.step(0).peer == 0);
  CHECK(p1.step(0).action == RecvAction::reduce);
  CHECK(p1.step(0).to.offset == 0);
  CHECK(p1.waits(0).empty());  // copy0 is rank 0's: its send carries it
  CHECK(p1.step(1).kind == StepKind::recv);
  CHECK(p1.step(1).peer == 2);
  CHECK(std::vector<std::uint32_t>(p1.waits(1).begin(), p1.waits(1).end()) ==
        std::vector<std::uint32_t>{0});
  CHECK(p1.step_of(t21) == 1);
  CHECK(p1.step_of(copy0) == RankProgram::none);

  const RankProgram p2 = project(plan, 2);
  REQUIRE(p2.steps().size() == 2);
  CHECK(p2.step(1).kind == StepKind::send);
  // t01 involves neither rank 2 nor... it involves rank 1, t21's receiver: carried there.
  CHECK(std::vector<std::uint32_t>(p2.waits(1).begin(), p2.waits(1).end()) ==
        std::vector<std::uint32_t>{0});

  // Tags: both sides derive them from the plan alone.
  CHECK(PieceTags::transfer_data(t01) == MessageTag{t01, 0});
  CHECK(PieceTags::transfer_ack(t01).packed() == (std::uint64_t{t01} << 32 | 1));
}

TEST_CASE("Projection refuses a dependency no message carries, and plans that repeat steps") {
  PlanBuilder b(PlanTarget::hosts(4, 4));
  const BufferId buf = b.allocate(16);
  const Region r{buf, 0, 16};
  const OpId t01 = b.transfer(0, r, 1, r, RecvAction::copy, {});
  b.transfer(2, r, 3, r, RecvAction::copy, std::vector<OpId>{t01});
  const Plan plan = b.take();
  const std::string why = logic_error_of([&] { (void)project(plan, 2); });
  CHECK_CONTAINS(why, "operation 1 (transfer 2 -> 3) depends on operation 0 (transfer 0 -> 1)");
  CHECK_CONTAINS(why, "no message carries");
  // Ranks 0 and 1 have nothing to do with operation 1: their projections are fine.
  CHECK_NOTHROW((void)project(plan, 0));

  PlanTarget steps = PlanTarget::hosts(4, 4);
  steps.repeats_steps = true;
  PlanBuilder s(steps);
  const BufferId sb = s.allocate(16);
  const OpId first = s.transfer(0, {sb, 0, 16}, 1, {sb, 0, 16}, RecvAction::copy, {});
  s.repeat_step(first, 2);
  const Plan repeated = s.take();
  CHECK(repeated.repeats().size() == 1);
  CHECK_CONTAINS(error_of([&] { (void)project(repeated, 0); }), "the plan repeats steps");
  CHECK_CONTAINS(error_of([&] { (void)project(plan, 4); }), "rank 4 is not in a plan of 4");
}

TEST_CASE("Projection of switch operations: a step on every member, tags by position") {
  PlanTarget target = PlanTarget::hosts(4, 4);
  target.switch_domain = {7, 7, 7, 7};
  PlanBuilder b(target);
  const BufferId buf = b.allocate(64);
  const Region r{buf, 0, 16};
  const int group[] = {2, 0, 3};
  const OpId red = b.switch_reduce(group, r, 0, Region{buf, 16, 16}, {});
  const OpId mc =
      b.multicast(3, Region{buf, 16, 16}, group, Region{buf, 32, 16}, std::vector<OpId>{red});
  const Plan plan = b.take();
  const PlanIndex index(plan);
  const RankProgram p0 = project(plan, index, 0);
  REQUIRE(p0.steps().size() == 2);
  CHECK(p0.step(0).kind == StepKind::combine);
  CHECK(p0.step(0).position == 1);
  CHECK(p0.step(1).kind == StepKind::multicast_member);
  CHECK(p0.step(1).peer == 3);
  const RankProgram p2 = project(plan, index, 2);
  CHECK(p2.step(0).kind == StepKind::send);
  CHECK(p2.step(0).peer == 0);
  CHECK(p2.step(0).position == 0);
  const RankProgram p3 = project(plan, index, 3);
  CHECK(p3.step(1).kind == StepKind::multicast_root);
  CHECK(p3.step_of(mc) == 1);
  CHECK(project(plan, index, 1).steps().empty());
  CHECK(PieceTags::member_ack(mc, 3, 2) == MessageTag{mc, 8});
}

namespace {

/// The reference: rank r's steps are the operations that name r, in plan order; step i
/// waits for the steps of its dependencies that name r; a dependency that names none of
/// the operation's ranks is an error. Written from the rules, by brute force.
struct ReferenceStep {
  OpId op;
  StepKind kind;
  std::vector<std::uint32_t> waits;
  std::uint32_t level;  ///< the longest chain of dependencies that ends at the operation
};

/// The length of the longest chain of dependencies ending at `id`, by recursion (each
/// operation's answer kept, so shared dependencies are walked once).
std::uint32_t reference_level(const Plan& plan, OpId id, std::map<OpId, std::uint32_t>& known) {
  if (const auto it = known.find(id); it != known.end()) return it->second;
  std::uint32_t deepest = 0;
  for (OpId d : plan.deps(id)) deepest = std::max(deepest, 1 + reference_level(plan, d, known));
  return known[id] = deepest;
}

std::vector<int> ranks_of(const Plan& plan, OpId id) {
  std::set<int> s{plan.op(id).src, plan.op(id).dst};
  for (int r : plan.group(id)) s.insert(r);
  return {s.begin(), s.end()};
}

bool reference_carried(const Plan& plan, OpId id, OpId dep) {
  for (int r : ranks_of(plan, id)) {
    const auto d = ranks_of(plan, dep);
    if (std::find(d.begin(), d.end(), r) != d.end()) return true;
  }
  return false;
}

std::vector<ReferenceStep> reference_program(const Plan& plan, int rank) {
  std::vector<ReferenceStep> out;
  std::map<OpId, std::uint32_t> known;
  std::vector<OpId> mine;
  for (OpId id = 0; id < plan.size(); ++id) {
    const auto rs = ranks_of(plan, id);
    if (std::find(rs.begin(), rs.end(), rank) == rs.end()) continue;
    ReferenceStep s{id, StepKind::local, {}, reference_level(plan, id, known)};
    const PlanOp& o = plan.op(id);
    if (o.kind == OpKind::transfer && o.src != o.dst)
      s.kind = o.src == rank ? StepKind::send : StepKind::recv;
    if (o.kind == OpKind::switch_reduce)
      s.kind = o.dst == rank ? StepKind::combine : StepKind::send;
    if (o.kind == OpKind::multicast)
      s.kind = o.src == rank ? StepKind::multicast_root : StepKind::multicast_member;
    std::set<std::uint32_t> waits;
    for (OpId d : plan.deps(id)) {
      for (std::uint32_t k = 0; k < mine.size(); ++k) {
        if (mine[k] == d) waits.insert(k);
      }
    }
    s.waits.assign(waits.begin(), waits.end());
    out.push_back(s);
    mine.push_back(id);
  }
  return out;
}

}  // namespace

TEST_CASE("Randomized: projections match a brute-force reference on random plans") {
  std::mt19937_64 rng(2026);
  int refused = 0;
  int projected = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int p = 2 + static_cast<int>(rng() % 7);
    PlanTarget target = PlanTarget::hosts(p, p);
    target.switch_domain.assign(static_cast<std::size_t>(p), 0);
    PlanBuilder b(target);
    const BufferId buf = b.allocate(64);
    const int ops = 1 + static_cast<int>(rng() % 30);
    for (int i = 0; i < ops; ++i) {
      Deps deps;
      const auto posted = static_cast<OpId>(b.posted());
      if (posted > 0) {
        for (std::uint64_t k = rng() % 4; k > 0; --k)
          deps.push_back(static_cast<OpId>(rng() % posted));
      }
      const Region r{buf, 8 * (rng() % 4), 8};
      const int a = static_cast<int>(rng() % static_cast<std::uint64_t>(p));
      const int c = static_cast<int>(rng() % static_cast<std::uint64_t>(p));
      switch (rng() % 5) {
        case 0: b.local(a, r, Region{buf, 32, 8}, RecvAction::reduce, deps); break;
        case 1: b.finish(a, r, deps); break;
        case 2: {
          std::vector<int> group;
          for (int q = 0; q < p; ++q) {
            if (q == a || rng() % 2 == 0) group.push_back(q);
          }
          std::shuffle(group.begin(), group.end(), rng);
          if (rng() % 2 == 0)
            b.switch_reduce(group, r, a, Region{buf, 40, 8}, deps);
          else
            b.multicast(a, r, group, Region{buf, 40, 8}, deps);
          break;
        }
        default:
          b.transfer(a, r, c, Region{buf, 48, 8}, RecvAction::copy, deps,
                     static_cast<std::uint32_t>(rng() % 3));
      }
    }
    const Plan plan = b.take();
    bool carried = true;
    for (OpId id = 0; id < plan.size(); ++id) {
      for (OpId d : plan.deps(id)) carried = carried && reference_carried(plan, id, d);
    }
    const PlanIndex index(plan);
    for (int r = 0; r < p; ++r) {
      bool rank_ok = true;
      for (OpId id = 0; id < plan.size(); ++id) {
        if (!plan.involves(id, r)) continue;
        for (OpId d : plan.deps(id)) rank_ok = rank_ok && reference_carried(plan, id, d);
      }
      CAPTURE(trial);
      CAPTURE(r);
      if (!rank_ok) {
        CHECK_CONTAINS(logic_error_of([&] { (void)project(plan, index, r); }),
                       "no message carries");
        ++refused;
        continue;
      }
      const RankProgram got = project(plan, index, r);
      const auto want = reference_program(plan, r);
      REQUIRE(got.steps().size() == want.size());
      for (std::size_t i = 0; i < want.size(); ++i) {
        CHECK(got.step(i).op == want[i].op);
        CHECK(got.step(i).kind == want[i].kind);
        CHECK(got.step(i).level == want[i].level);
        CHECK(std::vector<std::uint32_t>(got.waits(i).begin(), got.waits(i).end()) ==
              want[i].waits);
      }
      ++projected;
    }
    (void)carried;
  }
  // Both outcomes happen: the test exercises the refusal and the projection.
  CHECK(refused > 50);
  CHECK(projected > 300);
}

namespace {

PlanTarget three_hosts_of_eight() {
  PlanTarget t = PlanTarget::hosts(24, 8);
  for (const auto& p : t.placement) t.switch_domain.push_back(p.host);
  return t;
}

void check_same(const RankProgram& a, const RankProgram& b) {
  REQUIRE(a.steps().size() == b.steps().size());
  for (std::size_t i = 0; i < a.steps().size(); ++i) {
    CHECK(a.step(i).op == b.step(i).op);
    CHECK(a.step(i).kind == b.step(i).kind);
    CHECK(a.step(i).peer == b.step(i).peer);
    CHECK(a.step(i).to.offset == b.step(i).to.offset);
    CHECK(std::vector<std::uint32_t>(a.waits(i).begin(), a.waits(i).end()) ==
          std::vector<std::uint32_t>(b.waits(i).begin(), b.waits(i).end()));
  }
  CHECK(std::vector<std::uint32_t>(a.completion().begin(), a.completion().end()) ==
        std::vector<std::uint32_t>(b.completion().begin(), b.completion().end()));
  CHECK(std::vector<std::size_t>(a.buffers().begin(), a.buffers().end()) ==
        std::vector<std::size_t>(b.buffers().begin(), b.buffers().end()));
}

}  // namespace

TEST_CASE("Projecting straight from the algorithm gives the plan's projection") {
  const PlanTarget target = three_hosts_of_eight();
  const ReductionSpec red{DataType::float32, ReduceOp::avg};
  struct Row {
    Collective coll;
    Algorithm algo;
    Algorithm inter;
  };
  const Row rows[] = {{Collective::all_reduce, Algorithm::ring, Algorithm::ring},
                      {Collective::all_reduce, Algorithm::hierarchical, Algorithm::rabenseifner},
                      {Collective::all_reduce, Algorithm::nvls, Algorithm::ring},
                      {Collective::all_reduce, Algorithm::tree, Algorithm::ring},
                      {Collective::reduce_scatter, Algorithm::bruck, Algorithm::ring},
                      {Collective::all_gather, Algorithm::ring, Algorithm::ring},
                      {Collective::reduce, Algorithm::chain, Algorithm::ring},
                      {Collective::all_to_all, Algorithm::pairwise, Algorithm::ring}};
  for (const Row& row : rows) {
    CAPTURE(to_string(row.coll));
    CAPTURE(to_string(row.algo));
    auto post = [&](PlanBuilder& b) {
      const auto bufs = allocate_buffers(b, row.coll, 37, 4, false);
      CollectiveCall call;
      call.count = 37;
      call.input = bufs.input;
      call.output = bufs.output;
      call.channels = 2;
      call.root = 5;
      return post_collective(b, row.coll, call, row.algo, row.inter);
    };
    PlanBuilder whole(target, red);
    const Plan plan = whole.build(post(whole));
    const PlanIndex index(plan);
    for (int r : {0, 5, 13, 23}) {
      CAPTURE(r);
      check_same(project_posted(target, red, r, post), project(plan, index, r));
    }
  }
}

TEST_CASE("Projecting from the algorithm refuses a dependency no message carries") {
  auto post = [](PlanBuilder& b) {
    const BufferId buf = b.allocate(16);
    const Region r{buf, 0, 16};
    const OpId t01 = b.transfer(0, r, 1, r, RecvAction::copy, {});
    const OpId t23 = b.transfer(2, r, 3, r, RecvAction::copy, std::vector<OpId>{t01});
    return std::vector<Deps>{{t01}, {t01}, {t23}, {t23}};
  };
  const PlanTarget target = PlanTarget::hosts(4, 4);
  CHECK_CONTAINS(logic_error_of([&] { (void)project_posted(target, {}, 2, post); }),
                 "operation 1 (transfer 2 -> 3) depends on operation 0, which involves none");
  CHECK(project_posted(target, {}, 0, post).steps().size() == 1);
}

TEST_CASE("Levels past 16 bits: the level table widens and keeps every level") {
  LevelTable t;
  for (std::uint32_t i = 0; i < 70'000; ++i) t.push_back(i % 3 == 0 ? i : i / 2);
  CHECK(t.wide());
  CHECK(t.size() == 70'000);
  bool all = true;
  for (std::uint32_t i = 0; i < 70'000; ++i) all = all && t[i] == (i % 3 == 0 ? i : i / 2);
  CHECK(all);
  LevelTable small;
  small.push_back(0xffff);
  CHECK_FALSE(small.wide());
  CHECK(small[0] == 0xffff);

  // A chain of 70,000 transfers between two ranks, each after the last: levels 0 to
  // 69,999, the same through the plan's index and straight from the algorithm.
  constexpr OpId n = 70'000;
  auto post = [](PlanBuilder& b) {
    const BufferId buf = b.allocate(8);
    const Region r{buf, 0, 8};
    OpId last = b.transfer(0, r, 1, r, RecvAction::copy, {});
    for (OpId i = 1; i < n; ++i) {
      const int from = static_cast<int>(i % 2);
      last = b.transfer(from, r, 1 - from, r, RecvAction::copy, std::vector<OpId>{last});
    }
    return std::vector<Deps>{{last}, {last}};
  };
  const PlanTarget target = PlanTarget::hosts(2, 2);
  PlanBuilder whole(target, {});
  const Plan plan = whole.build(post(whole));
  const PlanIndex index(plan);
  const RankProgram a = project(plan, index, 1);
  const RankProgram b = project_posted(target, {}, 1, post, /*levels=*/true);
  REQUIRE(a.steps().size() == n);
  REQUIRE(b.steps().size() == n);
  bool same = true;
  for (std::size_t i = 0; i < n; ++i)
    same = same && a.step(i).level == i && b.step(i).level == i && index.level(i) == i;
  CHECK(same);
}
