// railcc/formats/fabric_json.hpp: custom fabrics as JSON (schema railcc.fabric.v1).
//
//   {
//     "schema": "railcc.fabric.v1",
//     "hosts": 4, "gpus_per_host": 8,
//     "nvlink": {"GBps": 450, "latency_ns": 100, "reduction": true},
//                                                          optional: one NVSwitch per host;
//                                                          reduction: in-switch (NVLS)
//     "radix": 128,                                        optional: ports per switch
//     "switches": [{"name": "leaf0", "tier": 1}, ...],
//     "links": [{"a": "gpu0", "b": "leaf0", "gbps": 400, "latency_ns": 15, "count": 1}, ...],
//     "costs": {"message_overhead_us": 0.8, "nvlink_overhead_us": 0.6,   optional: the
//               "nvls_overhead_us": 3.4, "switch_hop_us": 0.5,         fixed costs of
//               "collective_base_us": 6.6}                              FixedCosts
//   }
// GPUs are named gpu<rank>, rank = host * gpus_per_host + local index; GPU g of a host is
// on rail g. A link joins a GPU to a tier-1 switch or a tier-t switch to a tier-t+1
// switch, in either order; `count` parallel cables (default 1). Bandwidth is in Gb/s
// ("gbps") or GB/s ("GBps"), exactly one of them. docs/simulator.md has the whole schema.
// Every problem is an InputError naming the field: unknown fields, missing or mistyped
// values, zero or negative bandwidths, links to names that do not exist, disconnected
// GPUs, switches with more links than the radix, fabrics that are not tiered Clos.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/input_file.hpp"

RAILCC_NAMESPACE_BEGIN

inline constexpr std::string_view fabric_json_schema = "railcc.fabric.v1";

/// The fixed costs a fabric file may set (its "costs" object): each replaces the
/// simulator's default (SimConfig's start-ups and switch hop, the collective's base) for
/// this fabric, for example a TCP-based transport's tens of microseconds per message.
struct FixedCosts {
  std::optional<Picoseconds> message_overhead;
  std::optional<Picoseconds> nvlink_overhead;
  std::optional<Picoseconds> nvls_overhead;
  std::optional<Picoseconds> switch_hop;
  std::optional<Picoseconds> collective_base;
};

namespace detail::fabric_json {

using nlohmann::json;

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  Fabric read(const json& j, FixedCosts* costs) {
    expect_object(j, "");
    only(j, "",
         {"schema", "hosts", "gpus_per_host", "nvlink", "radix", "switches", "links", "costs"});
    const FixedCosts fixed = read_costs(j);
    if (costs != nullptr) *costs = fixed;
    const auto schema = string_at(j, "schema", "");
    if (schema != fabric_json_schema) {
      fail("schema", "is \"" + schema + "\", expected \"" + std::string(fabric_json_schema) + "\"");
    }
    const auto hosts = uint_at(j, "hosts", "", 1, max_fabric_endpoints);
    const auto per_host = uint_at(j, "gpus_per_host", "", 1, 1024);
    if (hosts * per_host > max_fabric_endpoints) {
      fail("hosts", "times gpus_per_host is " + std::to_string(hosts * per_host) +
                        " GPUs, more than the " + std::to_string(max_fabric_endpoints) +
                        " railcc simulates");
    }
    // The switches and the number of cables are checked before anything is built: a
    // short file must not make the reader allocate for millions of GPUs first.
    if (!j.contains("switches")) fail("switches", "is missing");
    const auto& switches = j.at("switches");
    if (!switches.is_array()) fail("switches", "must be an array");
    std::vector<std::pair<std::string, std::uint64_t>> switch_list;
    std::set<std::string> switch_names;
    for (std::size_t i = 0; i < switches.size(); ++i) {
      const std::string at = "switches[" + std::to_string(i) + "]";
      const auto& s = switches[i];
      expect_object(s, at);
      only(s, at, {"name", "tier"});
      const auto name = string_at(s, "name", at);
      if (name.empty()) fail(at + ".name", "is empty");
      if (name.rfind("gpu", 0) == 0)
        fail(at + ".name", "\"" + name + "\" starts with \"gpu\", which names GPUs");
      const auto tier = uint_at(s, "tier", at, 1, 16);
      if (!switch_names.insert(name).second) fail(at + ".name", "\"" + name + "\" is used twice");
      switch_list.emplace_back(name, tier);
    }
    if (!j.contains("links")) fail("links", "is missing");
    if (!j.at("links").is_array()) fail("links", "must be an array");
    // Every GPU needs a link to a leaf, and a link has at most one GPU end: a file with
    // fewer links than GPUs is refused before anything is built for it.
    {
      std::uint64_t cables = 0;
      for (const auto& l : j.at("links")) {
        const auto* count = l.is_object() && l.contains("count") ? &l.at("count") : nullptr;
        cables += count && count->is_number_unsigned()
                      ? std::min<std::uint64_t>(count->get<std::uint64_t>(), 4096)
                      : 1;
      }
      if (cables < hosts * per_host) {
        fail("links", "has " + std::to_string(cables) + " cable(s) for " +
                          std::to_string(hosts * per_host) +
                          " GPUs; every GPU needs a link to a tier-1 switch");
      }
    }
    const std::uint64_t radix = j.contains("radix") ? uint_at(j, "radix", "", 1, 1u << 20) : 0;
    Fabric f;
    for (std::uint64_t h = 0; h < hosts; ++h) {
      for (std::uint64_t g = 0; g < per_host; ++g) {
        f.add_endpoint(static_cast<std::uint32_t>(h), static_cast<std::uint16_t>(g),
                       static_cast<std::uint16_t>(g));
      }
    }
    gpus_ = hosts * per_host;
    if (j.contains("nvlink")) {
      const auto& nv = j.at("nvlink");
      expect_object(nv, "nvlink");
      only(nv, "nvlink", {"GBps", "gbps", "latency_ns", "reduction"});
      if (nv.contains("reduction")) {
        if (!nv.at("reduction").is_boolean()) fail("nvlink.reduction", "must be true or false");
        f.set_nvswitch_reduction(nv.at("reduction").get<bool>());
      }
      const Bandwidth bw = bandwidth(nv, "nvlink");
      const Picoseconds lat = latency(nv, "nvlink");
      for (std::uint64_t h = 0; h < hosts; ++h) {
        const NodeIndex nvs = f.add_nvswitch(static_cast<std::uint32_t>(h));
        for (std::uint64_t g = 0; g < per_host; ++g) {
          f.connect(static_cast<NodeIndex>(h * per_host + g), nvs, bw, lat);
        }
      }
    }
    std::map<std::string, NodeIndex> by_name;
    for (const auto& [name, tier] : switch_list) {
      by_name.emplace(name, f.add_switch(static_cast<std::uint8_t>(tier)));
    }
    const auto& links = j.at("links");  // checked above
    std::vector<std::uint32_t> ports(f.node_count(), 0);
    for (std::size_t i = 0; i < links.size(); ++i) {
      const std::string at = "links[" + std::to_string(i) + "]";
      const auto& l = links[i];
      expect_object(l, at);
      only(l, at, {"a", "b", "gbps", "GBps", "latency_ns", "count"});
      const NodeIndex a = node(l, "a", at, by_name);
      const NodeIndex b = node(l, "b", at, by_name);
      const Bandwidth bw = bandwidth(l, at);
      const Picoseconds lat = latency(l, at);
      const auto count = l.contains("count") ? uint_at(l, "count", at, 1, 4096) : 1;
      const int ta = f.kind(a) == FabricNodeKind::endpoint ? 0 : f.tier(a);
      const int tb = f.kind(b) == FabricNodeKind::endpoint ? 0 : f.tier(b);
      const NodeIndex lower = ta <= tb ? a : b;
      const NodeIndex upper = ta <= tb ? b : a;
      for (std::uint64_t c = 0; c < count; ++c) {
        try {
          f.connect(lower, upper, bw, lat);
        } catch (const InputError& e) {
          fail(at, e.what());
        }
      }
      ports[a] += static_cast<std::uint32_t>(count);
      ports[b] += static_cast<std::uint32_t>(count);
    }
    if (radix > 0) {
      for (const auto& [name, s] : by_name) {
        if (ports[s] > radix) {
          fail("switches", "\"" + name + "\" has " + std::to_string(ports[s]) +
                               " links, more than radix " + std::to_string(radix));
        }
      }
    }
    try {
      f.finalize();
    } catch (const InputError& e) {
      throw InputError(source_ + ": " + e.what());
    }
    return f;
  }

 private:
  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw InputError(source_ + ": " + (field.empty() ? "" : field + ": ") + what);
  }
  void expect_object(const json& j, const std::string& at) const {
    if (!j.is_object()) fail(at.empty() ? "(top level)" : at, "must be an object");
  }
  void only(const json& j, const std::string& at,
            std::initializer_list<std::string_view> known) const {
    for (const auto& [key, value] : j.items()) {
      bool ok = false;
      for (auto k : known) ok = ok || k == key;
      if (!ok) fail(at.empty() ? key : at + "." + key, "unknown field");
    }
  }
  std::string string_at(const json& j, const char* key, const std::string& at) const {
    const std::string field = at.empty() ? key : at + "." + key;
    if (!j.contains(key)) fail(field, "is missing");
    if (!j.at(key).is_string()) fail(field, "must be a string");
    return j.at(key).get<std::string>();
  }
  std::uint64_t uint_at(const json& j, const char* key, const std::string& at, std::uint64_t lo,
                        std::uint64_t hi) const {
    const std::string field = at.empty() ? key : at + "." + key;
    if (!j.contains(key)) fail(field, "is missing");
    const auto& v = j.at(key);
    if (!v.is_number_integer()) fail(field, "must be an integer");
    if (v.is_number_unsigned() ? v.get<std::uint64_t>() < lo || v.get<std::uint64_t>() > hi
                               : v.get<std::int64_t>() < static_cast<std::int64_t>(lo) ||
                                     v.get<std::int64_t>() > static_cast<std::int64_t>(hi)) {
      fail(field,
           "is " + v.dump() + ", expected " + std::to_string(lo) + " to " + std::to_string(hi));
    }
    return v.get<std::uint64_t>();
  }
  double number_at(const json& j, const char* key, const std::string& at) const {
    const std::string field = at.empty() ? key : at + "." + key;
    const auto& v = j.at(key);
    if (!v.is_number()) fail(field, "must be a number");
    return v.get<double>();
  }
  Bandwidth bandwidth(const json& j, const std::string& at) const {
    const bool gb = j.contains("gbps");
    const bool GB = j.contains("GBps");
    if (gb == GB) fail(at, "needs exactly one of \"gbps\" (Gb/s) and \"GBps\" (GB/s)");
    const char* key = gb ? "gbps" : "GBps";
    const double v = number_at(j, key, at);
    const Bandwidth bw = gb ? Bandwidth::gbps(v) : Bandwidth::GBps(v);
    if (!(bw >= min_link_bandwidth && bw <= max_link_bandwidth)) {
      fail(at + "." + key, "is " + j.at(key).dump() +
                               ": a link's bandwidth must be 1 Mb/s to 1 Pb/s (0.001 to "
                               "1e6 gbps)");
    }
    return bw;
  }
  FixedCosts read_costs(const json& j) const {
    FixedCosts c;
    if (!j.contains("costs")) return c;
    const auto& o = j.at("costs");
    expect_object(o, "costs");
    only(o, "costs",
         {"message_overhead_us", "nvlink_overhead_us", "nvls_overhead_us", "switch_hop_us",
          "collective_base_us"});
    auto us = [&](const char* key, std::optional<Picoseconds>& to) {
      if (!o.contains(key)) return;
      const double v = number_at(o, key, "costs");
      if (!(v >= 0) || v > 1e6)
        fail(std::string("costs.") + key, "is " + o.at(key).dump() + ": must be 0 to 1e6 us");
      to = Picoseconds::us(v);
    };
    us("message_overhead_us", c.message_overhead);
    us("nvlink_overhead_us", c.nvlink_overhead);
    us("nvls_overhead_us", c.nvls_overhead);
    us("switch_hop_us", c.switch_hop);
    us("collective_base_us", c.collective_base);
    return c;
  }
  Picoseconds latency(const json& j, const std::string& at) const {
    if (!j.contains("latency_ns")) return {};
    const double v = number_at(j, "latency_ns", at);
    if (!(v >= 0) || v > 1e9)
      fail(at + ".latency_ns", "is " + j.at("latency_ns").dump() + ": must be 0 to 1e9 ns");
    return Picoseconds::ns(v);
  }
  NodeIndex node(const json& j, const char* key, const std::string& at,
                 const std::map<std::string, NodeIndex>& by_name) const {
    const auto name = string_at(j, key, at);
    if (name.rfind("gpu", 0) == 0) {
      const std::string digits = name.substr(3);
      std::uint64_t rank = 0;
      const bool numeric = !digits.empty() && digits.size() < 10 &&
                           digits.find_first_not_of("0123456789") == std::string::npos;
      if (numeric) rank = std::stoull(digits);
      if (!numeric || rank >= gpus_) {
        fail(at + "." + key, "\"" + name + "\" is not a GPU of this fabric (gpu0 to gpu" +
                                 std::to_string(gpus_ - 1) + ")");
      }
      return static_cast<NodeIndex>(rank);
    }
    auto it = by_name.find(name);
    if (it == by_name.end()) fail(at + "." + key, "no switch is named \"" + name + "\"");
    return it->second;
  }

  std::string source_;
  std::uint64_t gpus_ = 0;
};

}  // namespace detail::fabric_json

/// Parses a fabric from JSON text; `source` names it in messages. The file's fixed costs
/// (its "costs" object) go to `costs` when given.
inline Fabric parse_fabric_json(std::string_view text, std::string source = "<memory>",
                                FixedCosts* costs = nullptr) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(source + ": malformed JSON: " + e.what());
  } catch (const nlohmann::json::exception& e) {
    // out_of_range.406: a number too large for a double (1e400), and the like.
    throw InputError(source + ": unreadable JSON: " + e.what());
  }
  try {
    return detail::fabric_json::Reader(source).read(j, costs);
  } catch (const nlohmann::json::exception& e) {
    // The reader checks every value's type before reading it; this is the backstop that
    // keeps a type it did not foresee an InputError rather than a crash.
    throw InputError(source + ": " + e.what());
  }
}

inline Fabric read_fabric_json(const std::string& path, FixedCosts* costs = nullptr) {
  return parse_fabric_json(read_input_file(path), path, costs);
}

/// Writes a fabric in the same schema (switches named t<tier>s<node>), for example to
/// start a custom fabric from a preset. Parallel cables are written one per link.
inline nlohmann::json fabric_to_json(const Fabric& f) {
  using nlohmann::json;
  if (f.endpoint_count() == 0) throw InputError("fabric_to_json: the fabric has no GPUs");
  const std::uint32_t hosts = f.host(static_cast<NodeIndex>(f.endpoint_count() - 1)) + 1;
  const auto per_host = static_cast<std::uint32_t>(f.endpoint_count() / hosts);
  if (static_cast<std::size_t>(hosts) * per_host != f.endpoint_count()) {
    throw InputError(
        "fabric_to_json: hosts have different GPU counts, which the schema cannot express");
  }
  auto name = [&](NodeIndex n) {
    return f.kind(n) == FabricNodeKind::endpoint
               ? "gpu" + std::to_string(n)
               : "t" + std::to_string(f.tier(n)) + "s" + std::to_string(n);
  };
  json switches = json::array();
  json links = json::array();
  json nvlink;
  for (NodeIndex n = 0; n < f.node_count(); ++n) {
    if (f.kind(n) == FabricNodeKind::network_switch)
      switches.push_back({{"name", name(n)}, {"tier", f.tier(n)}});
  }
  for (LinkIndex l = 0; l < f.link_count(); l += 2) {
    const auto& k = f.link(l);
    if (f.kind(k.to) == FabricNodeKind::nvswitch) {
      nvlink = {{"GBps", k.capacity.in_GBps()},
                {"latency_ns", k.latency.in_ns()},
                {"reduction", f.nvswitch_reduction()}};
      continue;
    }
    links.push_back({{"a", name(k.from)},
                     {"b", name(k.to)},
                     {"gbps", k.capacity.in_gbps()},
                     {"latency_ns", k.latency.in_ns()}});
  }
  json j = {
      {"schema", std::string(fabric_json_schema)}, {"hosts", hosts}, {"gpus_per_host", per_host}};
  if (!nvlink.is_null()) j["nvlink"] = nvlink;
  j["switches"] = switches;
  j["links"] = links;
  return j;
}

RAILCC_NAMESPACE_END
