// coll/plan.hpp: a PlanBuilder records what is posted, checks it as it comes, and tells
// a library bug (LogicError) from bad arguments (InputError).
#include <doctest/doctest.h>

#include <vector>

#include "check_contains.hpp"
#include "railcc/coll/plan.hpp"
#include "test_support.hpp"

using namespace railcc;
using railcc_test::error_of;
using railcc_test::logic_error_of;

TEST_CASE("A plan records operations, dependencies, groups, channels and QP hints") {
  PlanTarget target = PlanTarget::hosts(4, 2);
  target.switch_domain = {0, 0, 1, 1};
  PlanBuilder b(target, {DataType::float32, ReduceOp::sum});
  const BufferId buf = b.allocate(64);
  const Region r{buf, 0, 16};
  const OpId t = b.transfer(0, r, 2, r, RecvAction::reduce, {}, 3);
  const OpId l = b.local(2, Region{buf, 16, 16}, r, RecvAction::copy, std::vector<OpId>{t});
  const int pair[] = {0, 1};
  const OpId s = b.switch_reduce(pair, r, 1, Region{buf, 32, 16}, std::vector<OpId>{t});
  const OpId f = b.finish(1, Region{buf, 32, 16}, std::vector<OpId>{s});
  const Plan plan = b.build(std::vector<Deps>{{t}, {f}, {l}, {}});
  REQUIRE(plan.size() == 4);
  CHECK(plan.op(t).kind == OpKind::transfer);
  CHECK(plan.op(t).channel == 3);
  CHECK(plan.op(t).qp == 3);  // the hint starts as the channel; passes may change it
  CHECK(plan.op(t).action == RecvAction::reduce);
  CHECK(plan.deps(l).size() == 1);
  CHECK(plan.deps(l)[0] == t);
  CHECK(std::vector<int>(plan.group(s).begin(), plan.group(s).end()) == std::vector<int>{0, 1});
  CHECK(plan.involves(s, 0));
  CHECK_FALSE(plan.involves(s, 2));
  CHECK(plan.completion(1).size() == 1);
  CHECK(plan.completion(1)[0] == f);
  CHECK(plan.buffers().size() == 1);
  // The builder keeps the buffers for the next plan.
  CHECK(b.posted() == 0);
  CHECK(b.plan().buffers().size() == 1);
}

TEST_CASE("Library bugs are LogicError, bad arguments InputError") {
  PlanBuilder b(PlanTarget::hosts(4, 4));
  const BufferId buf = b.allocate(64);
  const Region r{buf, 0, 8};
  CHECK_CONTAINS(
      logic_error_of([&] { b.transfer(0, r, 1, r, RecvAction::copy, std::vector<OpId>{5}); }),
      "dependency on operation 5, not posted yet");
  CHECK_CONTAINS(logic_error_of([&] { b.repeat_step(0, 3); }),
                 "repeat_step on a plan whose target does not repeat steps");
  CHECK_CONTAINS(error_of([&] { b.transfer(0, r, 9, r, RecvAction::copy, {}); }),
                 "destination rank 9 does not exist");
  CHECK_CONTAINS(error_of([&] {
                   b.finish(0, Region{buf, 2, 4}, {});
                 }),
                 "not a whole number of float elements");
  CHECK_FALSE(b.switch_reduces(0));
  const int pair[] = {0, 1};
  CHECK_CONTAINS(error_of([&] { b.switch_reduce(pair, r, 0, r, {}); }),
                 "do not reduce in the switch");
}
