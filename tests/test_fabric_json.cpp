#include <doctest/doctest.h>

#include <string>

#include "check_contains.hpp"
#include "railcc/fabric/node_shape.hpp"
#include "railcc/fabric/presets.hpp"
#include "railcc/formats/fabric_json.hpp"
#include "railcc/formats/nccl_topo_xml.hpp"
#include "railcc/sim/engine.hpp"

using namespace railcc;

namespace {

std::string error_of(const std::string& text) {
  try {
    parse_fabric_json(text, "fab.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

/// Two GPUs on one leaf; `link` replaces the second link's JSON, `extra` adds top-level fields.
std::string small(const std::string& link = R"({"a": "gpu1", "b": "leaf", "gbps": 400})",
                  const std::string& extra = "") {
  return R"({"schema": "railcc.fabric.v1", "hosts": 2, "gpus_per_host": 1, )" + extra +
         R"("switches": [{"name": "leaf", "tier": 1}],
            "links": [{"a": "gpu0", "b": "leaf", "gbps": 400, "latency_ns": 15}, )" +
         link + "]}";
}

std::string error_of_node(const NodeTopology& t) {
  try {
    node_shape(t);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("The shipped example fabric parses into what it says") {
  const auto f = read_fabric_json(std::string(RAILCC_SOURCE_DIR) +
                                  "/examples/fabrics/two-rail-leaf-spine.json");
  CHECK(f.endpoint_count() == 8);
  CHECK(f.tiers() == 2);
  CHECK(f.link_count() == 2 * (8 + 8 + 8));  // NVLinks, NIC links, 4 x 2 parallel up-links
  // GPU 0 to GPU 2: different hosts, same rail: NIC, rail leaf, NIC.
  Router router(f, {});
  std::vector<ResourceIndex> p;
  router.route({0, 2, 0}, p);
  CHECK(p.size() == 2);
  // GPU 0 to GPU 3: other rail: through a spine.
  p.clear();
  router.route({0, 3, 0}, p);
  CHECK(p.size() == 4);
  p.clear();
  CHECK(router.route({0, 1, 0}, p).nvlink);
}

TEST_CASE("A preset written as JSON reads back as the same fabric") {
  const auto f = fat_tree(4);
  const auto text = fabric_to_json(f).dump();
  const auto g = parse_fabric_json(text, "fat-tree.json");
  REQUIRE(g.link_count() == f.link_count());
  REQUIRE(g.node_count() == f.node_count());
  for (LinkIndex l = 0; l < f.link_count(); ++l) {
    CHECK(g.link(l).from == f.link(l).from);
    CHECK(g.link(l).to == f.link(l).to);
    CHECK(g.link(l).capacity.in_gbps() == doctest::Approx(f.link(l).capacity.in_gbps()));
    CHECK(g.link(l).latency == f.link(l).latency);
  }
  FlowGraph flows;
  for (NodeIndex i = 0; i < 16; ++i) flows.add({i, (i + 5) % 16, Bytes::MiB(1), 0, {}});
  CHECK(simulate(f, flows).makespan == simulate(g, flows).makespan);
  // With an NVLink domain too.
  ColossusParams p;
  p.gpus = 1024;
  const auto c = colossus(p);
  const auto back = parse_fabric_json(fabric_to_json(c).dump(), "colossus.json");
  CHECK(back.link_count() == c.link_count());
  CHECK(c.nvswitch_reduction());
  CHECK(back.nvswitch_reduction());
}

TEST_CASE("Bad fabric JSON names the field at fault") {
  CHECK_CONTAINS(error_of(small()), "(no error)");
  CHECK_CONTAINS(error_of("{"), "fab.json: malformed JSON");
  CHECK_CONTAINS(error_of(R"({"schema": "x"})"), "schema: is \"x\", expected \"railcc.fabric.v1\"");
  CHECK_CONTAINS(error_of(small(R"({"a": "gpu1", "b": "leaf", "gbps": 400, "colour": "red"})")),
                 "fab.json: links[1].colour: unknown field");
  CHECK_CONTAINS(error_of(small(R"({"a": "gpu1", "b": "leaf", "gbps": -400})")),
                 "links[1].gbps: is -400: a link's bandwidth must be 1 Mb/s to 1 Pb/s");
  CHECK_CONTAINS(error_of(small(R"({"a": "gpu1", "b": "leaf", "gbps": 0})")),
                 "must be 1 Mb/s to 1 Pb/s");
  CHECK_CONTAINS(error_of(small(R"({"a": "gpu1", "b": "leaf", "gbps": 400, "GBps": 50})")),
                 "exactly one of");
  CHECK_CONTAINS(error_of(small(R"({"a": "gpu1", "b": "spine", "gbps": 400})")),
                 "links[1].b: no switch is named \"spine\"");
  CHECK_CONTAINS(error_of(small(R"({"a": "gpu9", "b": "leaf", "gbps": 400})")),
                 "links[1].a: \"gpu9\" is not a GPU of this fabric (gpu0 to gpu1)");
  CHECK_CONTAINS(error_of(small(R"({"a": "gpu0", "b": "leaf", "gbps": 400})")),
                 "endpoint 1 (host 1 GPU 0) is not connected to anything");
  CHECK_CONTAINS(error_of(small(R"({"a": "gpu1", "b": "leaf", "gbps": 400})", R"("radix": 1, )")),
                 "\"leaf\" has 2 links, more than radix 1");
  CHECK_CONTAINS(error_of(small(R"({"a": "gpu1", "b": "leaf", "gbps": 400, "latency_ns": -3})")),
                 "links[1].latency_ns: is -3");
  CHECK_CONTAINS(error_of(small(R"({"a": "gpu1", "b": "leaf", "gbps": "fast"})")),
                 "links[1].gbps: must be a number");
  CHECK_CONTAINS(error_of(small(R"({"a": "gpu1", "b": "gpu0", "gbps": 400})")),
                 "does not join adjacent tiers");
  CHECK_CONTAINS(
      error_of(
          R"({"schema": "railcc.fabric.v1", "hosts": 0, "gpus_per_host": 1, "switches": [], "links": []})"),
      "hosts: is 0, expected 1 to");
  CHECK_CONTAINS(error_of(R"({"schema": "railcc.fabric.v1", "hosts": 1, "gpus_per_host": 1,
                              "switches": [{"name": "a", "tier": 1}, {"name": "a", "tier": 1}], "links": []})"),
                 "switches[1].name: \"a\" is used twice");
  CHECK_CONTAINS(error_of(R"({"schema": "railcc.fabric.v1", "hosts": 1, "gpus_per_host": 1,
                              "switches": [{"name": "a", "tier": 0}], "links": []})"),
                 "switches[0].tier: is 0, expected 1 to 16");
  CHECK_CONTAINS(
      error_of(R"({"schema": "railcc.fabric.v1", "hosts": 1, "gpus_per_host": 1, "links": []})"),
      "switches: is missing");
}

TEST_CASE("Hosts shaped like a discovered node") {
  const auto ibm = read_nccl_topology_xml(std::string(RAILCC_TEST_DATA_DIR) +
                                          "/ibmcloud-gx3d-8xh100-nccl-topo.xml");
  const auto shape = node_shape(ibm);
  CHECK(shape.gpus == 8);
  REQUIRE(shape.nvlink);
  CHECK(*shape.nvlink == Bandwidth::GBps(450));
  REQUIRE(shape.nic);
  CHECK(*shape.nic == Bandwidth::gbps(200));
  CHECK(shape.nvswitch_reduction);  // H100 GPUs on NVSwitches
  ColossusParams p;
  p.gpus = 1024;
  p.node = shape;
  const auto f = colossus(p);
  for (LinkIndex l : f.up_links(0)) {
    const bool nv = f.kind(f.link(l).to) == FabricNodeKind::nvswitch;
    CHECK(f.link(l).capacity == (nv ? Bandwidth::GBps(450) : Bandwidth::gbps(200)));
  }
  // Azure NDv5's file has no NVLinks and no NIC speeds: no NVLink domain, default NICs.
  const auto ndv5 = node_shape(
      read_nccl_topology_xml(std::string(RAILCC_TEST_DATA_DIR) + "/azure-ndv5-topo.xml"));
  CHECK_FALSE(ndv5.nvlink);
  CHECK_FALSE(ndv5.nic);
  CHECK_FALSE(ndv5.nvswitch_reduction);
  p.node = ndv5;
  const auto g = colossus(p);
  for (LinkIndex l : g.up_links(0)) CHECK(g.kind(g.link(l).to) == FabricNodeKind::network_switch);
  // The 4-GPU Azure NCv4 gives 4-GPU hosts and 4 rails.
  const auto ncv4 = node_shape(
      read_nccl_topology_xml(std::string(RAILCC_TEST_DATA_DIR) + "/azure-ncv4-topo.xml"));
  CHECK(ncv4.gpus == 4);
  p.node = ncv4;
  const auto h = colossus(p);
  CHECK(h.endpoint_count() == 1024);
  CHECK(h.host(1023) == 255);
  const auto aws =
      read_nccl_topology_xml(std::string(RAILCC_TEST_DATA_DIR) + "/aws-p5.48xlarge-nccl-topo.xml");
  CHECK_CONTAINS(error_of_node(aws), "has no GPU");
}

#include <sstream>

#include "railcc/sim/trace.hpp"

TEST_CASE("The Chrome trace is valid JSON with flow slices and link counters") {
  const auto f = fat_tree(4);
  FlowGraph g;
  for (NodeIndex i = 0; i < 16; ++i) g.add({i, (i + 4) % 16, Bytes::MiB(1), i % 2, {}});
  SimConfig cfg;
  cfg.record_timeline = true;
  cfg.routing.mode = RoutingMode::spray;  // no ECMP collisions: every NIC sends at full rate
  const auto r = simulate(f, g, cfg);
  REQUIRE_FALSE(r.timeline_times.empty());
  std::ostringstream out;
  CHECK(write_chrome_trace(out, f, g, r) == 16);
  const auto j = nlohmann::json::parse(out.str());
  CHECK(j["otherData"]["flows_in_trace"] == 16);
  std::size_t begins = 0;
  std::size_t ends = 0;
  std::size_t counters = 0;
  double peak_nic_up = 0;
  for (const auto& e : j["traceEvents"]) {
    const auto ph = e["ph"].get<std::string>();
    begins += ph == "b" ? 1 : 0;
    ends += ph == "e" ? 1 : 0;
    if (ph == "C") {
      ++counters;
      if (e["name"] == "NIC-leaf up")
        peak_nic_up = std::max(peak_nic_up, e["args"]["percent"].get<double>());
    }
  }
  CHECK(begins == 16);
  CHECK(ends == 16);
  CHECK(counters > 0);
  CHECK(peak_nic_up == doctest::Approx(100.0));  // every GPU sends at full NIC rate at first
  // A budget of 5 flows keeps whole GPU tracks: GPUs 0-4, one flow each.
  std::ostringstream small;
  CHECK(write_chrome_trace(small, f, g, r, {5}) == 5);
  CHECK(nlohmann::json::parse(small.str())["otherData"]["gpus_in_trace"] == 5);
}

TEST_CASE("A fabric file's fixed costs: read in microseconds, checked, optional") {
  const std::string link = R"({"a": "gpu1", "b": "leaf", "gbps": 400})";
  FixedCosts costs;
  parse_fabric_json(small(link), "fab.json", &costs);
  CHECK(!costs.message_overhead);
  CHECK(!costs.collective_base);
  parse_fabric_json(small(link, R"("costs": {"message_overhead_us": 25, "switch_hop_us": 1.5,
                                             "collective_base_us": 0, "nvls_overhead_us": 3.4,
                                             "nvlink_overhead_us": 0.6}, )"),
                    "fab.json", &costs);
  CHECK(costs.message_overhead == Picoseconds::us(25));
  CHECK(costs.switch_hop == Picoseconds::ns(1500));
  CHECK(costs.collective_base == Picoseconds{});
  CHECK(costs.nvls_overhead == Picoseconds::ns(3400));
  CHECK(costs.nvlink_overhead == Picoseconds::ns(600));
  CHECK_CONTAINS(error_of(small(link, R"("costs": {"message_overhead_us": -1}, )")),
                 "costs.message_overhead_us: is -1: must be 0 to 1e6 us");
  CHECK_CONTAINS(error_of(small(link, R"("costs": {"launch_us": 5}, )")),
                 "costs.launch_us: unknown field");
  CHECK_CONTAINS(error_of(small(link, R"("costs": 5, )")), "costs");
  // The costs reach the simulation: a one-flow run over the file's fabric pays them.
  const Fabric f = parse_fabric_json(
      small(link, R"("costs": {"message_overhead_us": 25, "switch_hop_us": 2}, )"), "fab.json",
      &costs);
  SimConfig cfg;
  cfg.message_overhead = *costs.message_overhead;
  cfg.switch_hop = *costs.switch_hop;
  FlowGraph g;
  g.add({0, 1, Bytes::of(0), 0, {}});
  CHECK(simulate(f, g, cfg).makespan ==
        Picoseconds::us(25) + Picoseconds::us(2) + Picoseconds::ns(15));
}
