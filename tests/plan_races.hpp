// A reference race check for plans: two operations race when they touch overlapping
// bytes of one rank, at least one of them writing, and no chain of dependencies orders
// them. Written by brute force (a reachability bitset per operation) for test-sized plans.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "railcc/coll/plan.hpp"

namespace railcc_test {

struct PlanAccess {
  int rank;
  railcc::Region region;
  bool write;
  railcc::OpId op;
};

/// What each operation reads and writes (rules of coll/plan.hpp).
inline std::vector<PlanAccess> plan_accesses(const railcc::Plan& plan) {
  using railcc::OpKind;
  std::vector<PlanAccess> out;
  for (railcc::OpId id = 0; id < plan.size(); ++id) {
    const railcc::PlanOp& o = plan.op(id);
    switch (o.kind) {
      case OpKind::transfer:
      case OpKind::local:
      case OpKind::input_copy:
        out.push_back({o.src, o.from, false, id});
        out.push_back({o.dst, o.to, true, id});
        break;
      case OpKind::finish: out.push_back({o.src, o.to, true, id}); break;
      case OpKind::switch_reduce:
        for (int r : plan.group(id)) out.push_back({r, o.from, false, id});
        out.push_back({o.dst, o.to, true, id});
        break;
      case OpKind::multicast:
        out.push_back({o.src, o.from, false, id});
        for (int r : plan.group(id)) out.push_back({r, o.to, true, id});
        break;
    }
  }
  return out;
}

/// The first race in the plan, described, or "" when there is none.
inline std::string first_race(const railcc::Plan& plan) {
  const std::size_t n = plan.size();
  const std::size_t words = (n + 63) / 64;
  std::vector<std::uint64_t> before(n * words, 0);  // bit d of row i: d precedes i
  for (railcc::OpId i = 0; i < n; ++i) {
    std::uint64_t* row = &before[i * words];
    for (railcc::OpId d : plan.deps(i)) {
      row[d / 64] |= std::uint64_t{1} << (d % 64);
      const std::uint64_t* dr = &before[d * words];
      for (std::size_t w = 0; w <= d / 64; ++w) row[w] |= dr[w];
    }
  }
  auto ordered = [&](railcc::OpId a, railcc::OpId b) {
    if (a > b) std::swap(a, b);
    return ((before[b * words + a / 64] >> (a % 64)) & 1) != 0;
  };
  auto acc = plan_accesses(plan);
  std::sort(acc.begin(), acc.end(), [](const PlanAccess& x, const PlanAccess& y) {
    if (x.rank != y.rank) return x.rank < y.rank;
    if (x.region.buffer != y.region.buffer) return x.region.buffer < y.region.buffer;
    return x.region.offset < y.region.offset;
  });
  for (std::size_t i = 0; i < acc.size(); ++i) {
    const PlanAccess& x = acc[i];
    if (x.region.bytes == 0) continue;
    for (std::size_t j = i + 1; j < acc.size(); ++j) {
      const PlanAccess& y = acc[j];
      if (y.rank != x.rank || y.region.buffer != x.region.buffer ||
          y.region.offset >= x.region.offset + x.region.bytes)
        break;
      if (y.region.bytes == 0 || y.op == x.op || !(x.write || y.write)) continue;
      if (!ordered(x.op, y.op)) {
        return "operations " + std::to_string(x.op) + " and " + std::to_string(y.op) +
               " touch rank " + std::to_string(x.rank) + "'s buffer " +
               std::to_string(x.region.buffer) + " at bytes " + std::to_string(y.region.offset) +
               " unordered";
      }
    }
  }
  return "";
}

}  // namespace railcc_test
