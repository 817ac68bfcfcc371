// railcc/fabric/failures.hpp: a fabric with some of its cables down, as a large fabric
// always has one (Llama 3's 16,384 GPUs: 8.4% of 419 interruptions in 54 days were switches
// or cables; docs/facts.md).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"

RAILCC_NAMESPACE_BEGIN

/// Marks `fraction` of the switch-to-switch cables down (rounded to the nearest cable),
/// chosen by `seed`; returns how many. NIC cables are left alone: a GPU whose only cable
/// is down is a dead GPU, not a degraded fabric. Nothing checks that every endpoint still
/// reaches every other: a flow left without a path is the router's error, naming it.
inline std::size_t fail_switch_cables(Fabric& f, double fraction, std::uint64_t seed) {
  if (!(fraction >= 0 && fraction < 1))
    throw InputError("failed cables: the fraction must be in [0, 1)");
  std::vector<LinkIndex> cables;
  for (LinkIndex l = 0; l < f.link_count(); l += 2) {
    if (f.link(l).level > 1) cables.push_back(l);
  }
  const auto n = static_cast<std::size_t>(fraction * static_cast<double>(cables.size()) + 0.5);
  std::mt19937_64 rng(seed);
  std::shuffle(cables.begin(), cables.end(), rng);
  for (std::size_t i = 0; i < n; ++i) f.set_cable_health(cables[i], 0.0f);
  return n;
}

RAILCC_NAMESPACE_END
