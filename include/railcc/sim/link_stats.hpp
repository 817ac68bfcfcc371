// railcc/sim/link_stats.hpp: what a simulation did to the links: bytes per link, and per
// class of links (a tier and a direction) their use and the hottest of them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/sim/route_table.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

/// Link statistics of one class of links (a tier and a direction).
struct LinkClassSummary {
  int level = 0;    ///< 0 NVLink, 1 NIC-leaf, 2 leaf-spine, 3 spine-core, ...
  bool up = false;  ///< towards the higher tier
  std::size_t links = 0;
  std::size_t used_links = 0;  ///< links that carried any byte
  double bytes = 0;
  double mean_utilization = 0;  ///< bytes / (capacity x makespan), over all links of the class
  double max_utilization = 0;
  std::vector<LinkIndex> hottest;  ///< up to 5, most loaded first
};

/// Classes are numbered level x 2 + (up ? 1 : 0).
inline std::size_t link_class_count(const Fabric& fabric) {
  return static_cast<std::size_t>(fabric.tiers() + 1) * 2;
}
inline std::uint8_t link_class_of(const Fabric& fabric, LinkIndex l) {
  const auto& k = fabric.link(l);
  return static_cast<std::uint8_t>(k.level * 2 + (k.up ? 1 : 0));
}
/// The class of every resource of a route table (a pool's links share one).
inline std::vector<std::uint8_t> resource_classes(const Fabric& fabric, const RouteTable& routes) {
  std::vector<std::uint8_t> out(routes.resource_count());
  for (ResourceIndex r = 0; r < routes.resource_count(); ++r)
    out[r] =
        link_class_of(fabric, routes.is_pool(r) ? routes.pool_links(r).front() : routes.link(r));
  return out;
}

/// Per-link bytes: pools hand their bytes to their links in proportion to capacity.
inline std::vector<double> link_bytes_of(const Fabric& fabric, const RouteTable& routes,
                                         std::span<const double> resource_bytes) {
  std::vector<double> bytes(fabric.link_count(), 0.0);
  for (ResourceIndex r = 0; r < routes.resource_count(); ++r) {
    if (resource_bytes[r] == 0) continue;
    if (!routes.is_pool(r)) {
      bytes[routes.link(r)] += resource_bytes[r];
      continue;
    }
    const double cap = routes.capacity(r);
    for (LinkIndex l : routes.pool_links(r))
      bytes[l] += resource_bytes[r] * fabric.link(l).usable().in_bytes_per_second() / cap;
  }
  return bytes;
}

struct LinkClassStats {
  std::vector<LinkClassSummary> classes;
  std::vector<double> capacity;  ///< summed usable capacity of each class, bytes/s
};

/// Summaries per (level, direction) of a run that lasted `makespan`.
inline LinkClassStats summarize_link_classes(const Fabric& fabric,
                                             std::span<const double> link_bytes,
                                             Picoseconds makespan) {
  LinkClassStats out;
  const double seconds = makespan.in_seconds();
  const int levels = fabric.tiers() + 1;
  out.classes.resize(static_cast<std::size_t>(levels) * 2);
  for (int lv = 0; lv < levels; ++lv) {
    for (int up = 0; up < 2; ++up) {
      auto& c = out.classes[static_cast<std::size_t>(lv * 2 + up)];
      c.level = lv;
      c.up = up == 1;
    }
  }
  std::vector<std::vector<std::pair<double, LinkIndex>>> top(out.classes.size());
  out.capacity.assign(out.classes.size(), 0.0);
  for (LinkIndex l = 0; l < fabric.link_count(); ++l) {
    const auto& k = fabric.link(l);
    const std::size_t cls = link_class_of(fabric, l);
    out.capacity[cls] += k.usable().in_bytes_per_second();
    auto& c = out.classes[cls];
    const double util =
        seconds > 0 ? link_bytes[l] / (k.capacity.in_bytes_per_second() * seconds) : 0;
    ++c.links;
    c.bytes += link_bytes[l];
    c.mean_utilization += util;
    c.max_utilization = std::max(c.max_utilization, util);
    if (link_bytes[l] > 0) ++c.used_links;
    auto& t = top[cls];
    t.emplace_back(util, l);
    if (t.size() > 64) {
      std::nth_element(t.begin(), t.begin() + 5, t.end(), std::greater<>());
      t.resize(5);
    }
  }
  for (std::size_t i = 0; i < out.classes.size(); ++i) {
    auto& c = out.classes[i];
    if (c.links > 0) c.mean_utilization /= static_cast<double>(c.links);
    std::sort(top[i].begin(), top[i].end(), std::greater<>());
    for (std::size_t k = 0; k < top[i].size() && k < 5; ++k) {
      if (top[i][k].first > 0) c.hottest.push_back(top[i][k].second);
    }
  }
  return out;
}

RAILCC_NAMESPACE_END
