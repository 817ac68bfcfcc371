// railcc-sim: collectives on a simulated fabric, reported like nccl-tests.
//
//   railcc-sim                           all-reduce on the 100k-GPU colossus preset, 1 KiB to
//                                        1 GiB, algorithm chosen by predicted cost
//   --fabric PRESET|FILE.json            colossus, llama3, hpn, fat-tree, or a railcc.fabric.v1
//   file
//   --gpus N                             colossus: build it for N GPUs; others: use the first N
//   --collective NAME  --algo NAME|auto  --inter ring|rabenseifner (hierarchical's inter-host)
//   -b/-e/-f                             min and max size (bytes, K/M/G suffixes), factor
//   --type --op --root --channels        as nccl-tests (-d, -o, -r) and NCCL's channels
//   --qps N            QPs per connection between hosts (NCCL_IB_QPS_PER_CONNECTION)
//   --phase-chunks N   chunks hierarchical and nvls pipeline their phases in (0: default)
//   --routing ecmp|spray  --fail-links FRACTION --seed S (switch-to-switch cables)
//   --mode steps|timing|data, --data     steps (default: scale), per-operation, or real data
//   --trace FILE  --json
//
// Exit status: 0 success, 1 wrong data in --data mode, 2 bad input or usage.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "railcc/coll.hpp"
#include "railcc/fabric.hpp"
#include "railcc/formats/fabric_json.hpp"
#include "railcc/sim/trace.hpp"

namespace {

using namespace railcc;

/// "8", "1K", "64M", "1G": bytes, suffixes in powers of 1024 as nccl-tests reads them.
std::size_t parse_size(const std::string& s) {
  std::size_t used = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(s, &used);
  } catch (const std::exception&) {
    throw InputError("size '" + s + "' is not a number of bytes (e.g. 8, 64K, 128M, 1G)");
  }
  std::string rest = s.substr(used);
  unsigned shift = 0;
  if (rest == "K" || rest == "k")
    shift = 10;
  else if (rest == "M" || rest == "m")
    shift = 20;
  else if (rest == "G" || rest == "g")
    shift = 30;
  else if (!rest.empty())
    throw InputError("size '" + s + "': unknown suffix '" + rest + "'");
  if (v > (std::numeric_limits<std::size_t>::max() >> shift))
    throw InputError("size '" + s + "' is too large");
  return static_cast<std::size_t>(v) << shift;
}

struct Options {
  std::string fabric = "colossus";
  std::uint64_t gpus = 0;
  std::string collective = "all_reduce";
  std::string algo = "auto";
  std::string inter = "rabenseifner";
  std::string routing = "ecmp";
  std::string min_bytes = "1K";
  std::string max_bytes = "1G";
  double factor = 4;
  std::string type = "bfloat16";
  std::string op = "sum";
  int root = 0;
  int channels = 1;
  int qps = 1;
  int phase_chunks = 0;
  bool in_place = false;
  double fail_links = 0;
  std::uint64_t seed = 1;
  std::string mode = "steps";
  bool data = false;
  std::string trace;
  bool json = false;
};

Fabric build_fabric(const Options& o) {
  const std::string& f = o.fabric;
  if (f == "colossus") {
    ColossusParams p;
    if (o.gpus > 0) p.gpus = o.gpus;
    return colossus(p);
  }
  if (f == "llama3") return llama3();
  if (f == "hpn") return hpn();
  if (f == "fat-tree") {
    // The smallest k-ary fat tree (k even) with room for the GPUs asked for.
    std::uint32_t k = 4;
    while (o.gpus > 0 && static_cast<std::uint64_t>(k) * k * k / 4 < o.gpus) k += 2;
    if (o.gpus == 0) k = 16;
    return fat_tree(k);
  }
  if (f.size() > 5 && f.substr(f.size() - 5) == ".json") return read_fabric_json(f);
  throw InputError("--fabric '" + f +
                   "': not a preset (colossus, llama3, hpn, fat-tree) nor a .json fabric file");
}

/// Marks `fraction` of the switch-to-switch cables down, chosen by `seed`. NIC cables are
/// left alone: a GPU whose only cable is down is a dead GPU, not a degraded fabric.
std::size_t fail_links(Fabric& f, double fraction, std::uint64_t seed) {
  if (!(fraction >= 0 && fraction < 1))
    throw InputError("--fail-links must be a fraction in [0, 1)");
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

std::size_t switch_count(const Fabric& f) {
  std::size_t n = 0;
  for (NodeIndex v = 0; v < f.node_count(); ++v) n += f.kind(v) == FabricNodeKind::network_switch;
  return n;
}

struct Row {
  std::size_t size = 0;
  std::size_t count = 0;
  double time_us = 0;
  double algbw = 0;
  double busbw = 0;
  long long wrong = -1;  // -1: not checked
  std::string algo;
  double efficiency = 0;
  double predicted_us = 0;
};

int run(const Options& o) {
  const auto wall0 = std::chrono::steady_clock::now();
  const auto coll = parse_collective(o.collective);
  if (!coll) {
    throw InputError("--collective '" + o.collective +
                     "': use all_reduce, reduce_scatter, all_gather, broadcast, reduce, "
                     "all_to_all or send_recv");
  }
  const auto type = parse_data_type(o.type);
  if (!type) throw InputError("--type '" + o.type + "' is not a type railcc reduces");
  const auto op = parse_reduce_op(o.op);
  if (!op) throw InputError("--op '" + o.op + "': use sum, prod, min, max or avg");
  const auto inter = parse_algorithm(o.inter);
  if (!inter || (*inter != Algorithm::ring && *inter != Algorithm::rabenseifner))
    throw InputError("--inter '" + o.inter + "': use ring or rabenseifner");
  std::optional<Algorithm> fixed;
  if (o.algo != "auto") {
    fixed = parse_algorithm(o.algo);
    const auto have = algorithms_for(*coll);
    if (!fixed || std::find(have.begin(), have.end(), *fixed) == have.end()) {
      std::string names;
      for (auto a : have) names += (names.empty() ? "" : ", ") + std::string(to_string(a));
      throw InputError("--algo '" + o.algo + "' does not apply to " +
                       std::string(to_string(*coll)) + "; use auto or one of: " + names);
    }
  }
  const std::string mode_name = o.data ? "data" : o.mode;
  SimMode mode = SimMode::steps;
  if (mode_name == "timing")
    mode = SimMode::timing;
  else if (mode_name == "data")
    mode = SimMode::data;
  else if (mode_name != "steps")
    throw InputError("--mode '" + o.mode + "': use steps, timing or data");
  if (o.routing != "ecmp" && o.routing != "spray")
    throw InputError("--routing '" + o.routing + "': use ecmp or spray");
  const std::size_t min_bytes = parse_size(o.min_bytes);
  const std::size_t max_bytes = parse_size(o.max_bytes);
  if (min_bytes == 0 || max_bytes < min_bytes)
    throw InputError("sizes: need 0 < -b <= -e (got " + o.min_bytes + " and " + o.max_bytes + ")");
  if (!(o.factor > 1)) throw InputError("-f must be more than 1");
  if (o.channels < 1) throw InputError("--channels must be at least 1");
  if (o.qps < 1 || o.qps > 1024) throw InputError("--qps must be 1 to 1024");
  if (o.phase_chunks < 0) throw InputError("--phase-chunks must be 0 (automatic) or more");

  Fabric fabric = build_fabric(o);
  const std::size_t failed = o.fail_links > 0 ? fail_links(fabric, o.fail_links, o.seed) : 0;
  const std::size_t ranks = o.gpus > 0 ? o.gpus : fabric.endpoint_count();
  if (ranks > fabric.endpoint_count()) {
    throw InputError("--gpus " + std::to_string(ranks) + ": the fabric has only " +
                     std::to_string(fabric.endpoint_count()) + " GPUs");
  }
  if (o.root < 0 || static_cast<std::size_t>(o.root) >= ranks)
    throw InputError("--root " + std::to_string(o.root) + " is not a rank");
  if (*coll == Collective::all_to_all && mode != SimMode::data && ranks > 8192) {
    throw InputError("all_to_all over " + std::to_string(ranks) +
                     " ranks: the pairwise exchange is one flow per pair of ranks (" +
                     std::to_string(ranks * (ranks - 1)) +
                     "); railcc-sim takes up to 8,192 ranks for it");
  }
  SimBackendConfig cfg;
  cfg.mode = mode;
  cfg.qps_per_connection = static_cast<std::uint32_t>(o.qps);
  cfg.sim.routing.mode = o.routing == "spray" ? RoutingMode::spray : RoutingMode::ecmp;
  cfg.sim.routing.seed = o.seed;
  const CostModel model = CostModel::of(fabric, ranks, cfg.sim);
  const std::size_t elem = size_of(*type);
  const bool rooted = *coll == Collective::broadcast || *coll == Collective::reduce;

  std::vector<std::size_t> sizes;
  for (double s = static_cast<double>(min_bytes); s <= static_cast<double>(max_bytes) * 1.000001;
       s *= o.factor) {
    sizes.push_back(static_cast<std::size_t>(s));
  }
  std::vector<Row> rows;
  std::size_t total_wrong = 0;
  const std::string fabric_line =
      o.fabric + ", " + std::to_string(ranks) + " of " + std::to_string(fabric.endpoint_count()) +
      " GPUs (" + std::to_string(model.hosts) + " hosts x " + std::to_string(model.per_host) +
      "), " + std::to_string(fabric.tiers()) + " switch tiers, " +
      std::to_string(switch_count(fabric)) + " switches, " +
      std::to_string(fabric.link_count() / 2) + " cables" +
      (failed > 0 ? " (" + std::to_string(failed) + " failed)" : "");
  if (!o.json) {
    std::printf("# railcc-sim: %s on %s\n", std::string(to_string(*coll)).c_str(),
                fabric_line.c_str());
    std::printf("# %s routing, %s mode, %s, algorithm %s\n#\n", o.routing.c_str(),
                mode_name.c_str(), o.in_place ? "in place" : "out of place",
                fixed ? std::string(to_string(*fixed)).c_str() : "auto (alpha-beta cost model)");
    std::printf("# %10s %12s %9s %6s %6s %11s %9s %9s %7s  %-26s %6s\n", "size", "count", "type",
                "redop", "root", "time", "algbw", "busbw", "#wrong", "algo", "eff");
    std::printf("# %10s %12s %9s %6s %6s %11s %9s %9s %7s\n", "(B)", "(elements)", "", "", "",
                "(us)", "(GB/s)", "(GB/s)", "");
    std::fflush(stdout);
  }
  std::string trace_note;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::size_t count = count_for_size(*coll, sizes[i], elem, ranks);
    if (count == 0) continue;  // smaller than one element per rank (nccl-tests skips it too)
    const auto [in_elems, out_elems] = buffer_elements(*coll, count, ranks);
    Row row;
    row.count = count;
    row.size = (*coll == Collective::reduce_scatter ? in_elems : out_elems) * elem;
    AlgorithmChoice choice = model.choose(*coll, row.size);
    if (fixed) {
      choice.algorithm = *fixed;
      choice.inter_host = *inter;
      choice.predicted = model.predict(*coll, *fixed, *inter, row.size);
      choice.across_hosts = model.hosts > 1;
    }
    SimBackend b(fabric, static_cast<int>(ranks), cfg);
    b.set_reduction({*type, *op});
    SimResult sim;
    if (mode == SimMode::data) {
      VerifiedCall call;
      call.collective = *coll;
      call.algorithm = choice.algorithm;
      call.inter_host = choice.inter_host;
      call.count = count;
      call.in_place = o.in_place;
      call.channels = o.channels;
      call.phase_chunks = o.phase_chunks;
      call.root = o.root;
      const auto v = run_verified(b, call, o.seed + i);
      sim = v.sim;
      row.wrong = static_cast<long long>(v.wrong);
      total_wrong += v.wrong;
    } else {
      const auto buffers = allocate_buffers(b, *coll, count, elem, o.in_place);
      CollectiveCall call{count, buffers.input, buffers.output, o.channels, o.root};
      call.phase_chunks = o.phase_chunks;
      post_collective(b, *coll, call, choice.algorithm, choice.inter_host);
      sim = b.run();
    }
    const double seconds = sim.makespan.in_seconds();
    row.time_us = sim.makespan.in_us();
    row.algbw = seconds > 0 ? static_cast<double>(row.size) / seconds / 1e9 : 0;
    row.busbw = row.algbw * bus_factor(*coll, ranks);
    row.algo = to_string(choice);
    row.predicted_us = choice.predicted.in_us();
    const double bound = model.bandwidth_bound(*coll, row.size).in_seconds();
    row.efficiency = seconds > 0 ? bound / seconds : 0;
    rows.push_back(row);
    if (!o.trace.empty() && i + 1 == sizes.size()) {
      std::ofstream out(o.trace);
      if (!out) throw InputError("--trace: cannot write " + o.trace);
      if (mode == SimMode::steps) {
        write_step_trace(out, b.step_result());
      } else {
        write_chrome_trace(out, fabric, b.last_graph(), sim);
      }
      trace_note = o.trace + " (" + std::to_string(row.size) + " B)";
    }
    if (!o.json) {
      char wrong[32];
      if (row.wrong < 0)
        std::snprintf(wrong, sizeof wrong, "N/A");
      else
        std::snprintf(wrong, sizeof wrong, "%lld", row.wrong);
      std::printf("  %10zu %12zu %9s %6s %6d %11.2f %9.2f %9.2f %7s  %-26s %6.3f\n", row.size,
                  row.count, std::string(to_string(*type)).c_str(),
                  std::string(to_string(*op)).c_str(), rooted ? o.root : -1, row.time_us, row.algbw,
                  row.busbw, wrong, row.algo.c_str(), row.efficiency);
      std::fflush(stdout);
    }
  }
  double avg_busbw = 0;
  for (const auto& r : rows) avg_busbw += r.busbw;
  if (!rows.empty()) avg_busbw /= static_cast<double>(rows.size());
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  if (o.json) {
    nlohmann::json j;
    j["schema"] = "railcc.sim_results.v1";
    j["collective"] = std::string(to_string(*coll));
    j["fabric"] = o.fabric;
    j["gpus"] = ranks;
    j["hosts"] = model.hosts;
    j["gpus_per_host"] = model.per_host;
    j["failed_cables"] = failed;
    j["routing"] = o.routing;
    j["mode"] = mode_name;
    j["in_place"] = o.in_place;
    j["type"] = std::string(to_string(*type));
    j["redop"] = std::string(to_string(*op));
    j["root"] = rooted ? o.root : -1;
    j["rows"] = nlohmann::json::array();
    for (const auto& r : rows) {
      nlohmann::json x{{"size", r.size},
                       {"count", r.count},
                       {"time_us", r.time_us},
                       {"algbw", r.algbw},
                       {"busbw", r.busbw},
                       {"algo", r.algo},
                       {"efficiency", r.efficiency},
                       {"predicted_us", r.predicted_us}};
      x["wrong"] = r.wrong < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.wrong);
      j["rows"].push_back(x);
    }
    j["avg_busbw"] = avg_busbw;
    j["wall_seconds"] = wall;
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("# Out of bounds values : %s\n",
                mode == SimMode::data ? (total_wrong == 0 ? "0 OK" : "FAILED") : "N/A (no data)");
    std::printf("# Avg bus bandwidth    : %.3f GB/s\n", avg_busbw);
    std::printf("# eff: the bandwidth bound (each GPU's bytes over NVLink or its NICs) / time\n");
    if (!trace_note.empty()) std::printf("# trace: %s\n", trace_note.c_str());
    std::printf("# %zu sizes simulated in %.1f s\n", rows.size(), wall);
  }
  return total_wrong == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"railcc-sim: collectives on a simulated fabric, reported like nccl-tests"};
  app.add_option("--fabric", o.fabric, "colossus, llama3, hpn, fat-tree, or FILE.json")
      ->capture_default_str();
  app.add_option("--gpus", o.gpus, "GPUs (colossus is built for them; others use the first N)");
  app.add_option("--collective", o.collective,
                 "all_reduce, reduce_scatter, all_gather, broadcast, reduce, all_to_all, "
                 "send_recv")
      ->capture_default_str();
  app.add_option("--algo", o.algo, "auto, or ring, rabenseifner, tree, hierarchical, bruck, ...")
      ->capture_default_str();
  app.add_option("--inter", o.inter, "hierarchical's algorithm across hosts: ring or rabenseifner")
      ->capture_default_str();
  app.add_option("--routing", o.routing, "ecmp or spray")->capture_default_str();
  app.add_option("-b,--minbytes", o.min_bytes, "smallest size (bytes; K, M, G)")
      ->capture_default_str();
  app.add_option("-e,--maxbytes", o.max_bytes, "largest size")->capture_default_str();
  app.add_option("-f,--stepfactor", o.factor, "size factor between rows")->capture_default_str();
  app.add_option("-d,--type", o.type, "float32, float64, float16, bfloat16, int32, int64, uint8")
      ->capture_default_str();
  app.add_option("-o,--op", o.op, "sum, prod, min, max, avg")->capture_default_str();
  app.add_option("-r,--root", o.root, "root of broadcast and reduce")->capture_default_str();
  app.add_option("--phase-chunks", o.phase_chunks,
                 "chunks hierarchical and nvls pipeline their phases in (0: the algorithm's "
                 "default)");
  app.add_option("--qps", o.qps, "QPs per connection between hosts, each hashed on its own by ECMP")
      ->capture_default_str();
  app.add_option("--channels", o.channels, "parallel rings (ring algorithms)")
      ->capture_default_str();
  app.add_flag("--inplace", o.in_place, "in place instead of out of place");
  app.add_option("--fail-links", o.fail_links, "fraction of switch-to-switch cables to fail");
  app.add_option("--seed", o.seed, "seed for failures, ECMP hashing and --data inputs")
      ->capture_default_str();
  app.add_option("--mode", o.mode, "steps (scale), timing (per operation) or data")
      ->capture_default_str();
  app.add_flag("--data", o.data, "data mode: real buffers, outputs checked (small fabrics)");
  app.add_option("--trace", o.trace, "Chrome/Perfetto trace of the largest size");
  app.add_flag("--json", o.json, "results as JSON (schema railcc.sim_results.v1)");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const InputError& e) {
    std::cerr << "railcc-sim: " << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "railcc-sim: out of memory; use fewer GPUs or steps mode\n";
    return 2;
  }
}
