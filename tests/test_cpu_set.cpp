#include <doctest/doctest.h>

#include "railcc/topology/cpu_set.hpp"

using railcc::CpuSet;

TEST_CASE("CpuSet reads NCCL's affinity masks") {
  // IBM Cloud gx3d, NUMA node 0: 80 CPUs.
  const auto numa0 = CpuSet::from_mask("00000000,00000000,0000ffff,ffffffff,ffffffff");
  REQUIRE(numa0);
  CHECK(numa0->count() == 80);
  CHECK(numa0->to_list() == "0-79");
  const auto numa1 = CpuSet::from_mask("ffffffff,ffffffff,ffff0000,00000000,00000000");
  REQUIRE(numa1);
  CHECK(numa1->to_list() == "80-159");
  CHECK(CpuSet::from_mask("0x00000003")->to_list() == "0-1");
  CHECK(CpuSet::from_mask("000000ff,fff00000")->to_list() == "20-39");
}

TEST_CASE("CpuSet mask and list forms round-trip") {
  const auto set = CpuSet::from_list("0-3,8,10-11,64-65");
  REQUIRE(set);
  CHECK(set->count() == 9);
  CHECK(set->contains(64));
  CHECK_FALSE(set->contains(9));
  CHECK(set->to_list() == "0-3,8,10-11,64-65");
  CHECK(set->to_mask() == "00000003,00000000,00000d0f");
  CHECK(*CpuSet::from_mask(set->to_mask()) == *set);
  CHECK(CpuSet{}.to_list().empty());
  CHECK(CpuSet{}.to_mask() == "00000000");
  CHECK(*CpuSet::from_mask("00000000,00000001") == *CpuSet::from_list("0"));  // leading zero groups
}

TEST_CASE("CpuSet rejects malformed input") {
  for (const char* bad : {"", "xyz", "123456789", "ff,,ff", "ff,"}) {
    CAPTURE(bad);
    CHECK_FALSE(CpuSet::from_mask(bad));
  }
  for (const char* bad : {"3-1", "a", "1,", "-1", "0-99999999"}) {
    CAPTURE(bad);
    CHECK_FALSE(CpuSet::from_list(bad));
  }
}
