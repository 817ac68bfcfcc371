// railcc-sim: collectives on a simulated fabric, reported like nccl-tests.
//
//   railcc-sim                           all-reduce on the 100k-GPU colossus preset, 1 KiB to
//                                        1 GiB, algorithm chosen by predicted cost
//   --fabric PRESET|FILE.json            colossus, llama3, hpn, fat-tree, or a railcc.fabric.v1
//   file
//   --gpus N                             colossus: build it for N GPUs; others: use the first N
//   --collective NAME  --algo NAME|auto  --inter ring|rabenseifner|mixed_radix (hierarchical's
//   inter-host) -b/-e/-f                             min and max size (bytes, K/M/G suffixes),
//   factor
//   --type --op --root --channels        as nccl-tests (-d, -o, -r) and NCCL's channels
//                                        (default: one per GPU of a host for ring and
//                                        tree, 1 otherwise and in data mode)
//   --qps N            QPs per connection between hosts (NCCL_IB_QPS_PER_CONNECTION)
//   --phase-chunks N   chunks hierarchical and nvls pipeline their phases in (0: the count
//                      with the least predicted time on this fabric)
//   --pipeline-chunks N  chunks a chain or tree pipelines (broadcast, reduce, tree)
//   --routing ecmp|spray  --schedule off|on (QPs chosen per step)  --fail-links FRACTION --seed S
//   (switch-to-switch cables)  --ecmp-hash known|unknown (unknown: --schedule on stripes
//   each connection over QPs instead of choosing them)
//   --transport rdma|tcp   --message-overhead-us --nvlink-overhead-us --nvls-overhead-us
//   --switch-hop-us --base-us   fixed costs (the profile, then the fabric file, then these)
//   --mode steps|timing|data, --data     steps (default: scale), per-operation, or real data
//   --trace FILE  --json
//
// Exit status: 0 success, 1 wrong data in --data mode, 2 bad input or usage, 3 a bug in
// railcc (an internal rule broken; the input may be fine).
#include <CLI/CLI.hpp>

#include <unistd.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "railcc/backend.hpp"
#include "railcc/coll.hpp"
#include "railcc/fabric.hpp"
#include "railcc/formats/fabric_json.hpp"
#include "railcc/formats/fabric_spec.hpp"
#include "railcc/schedule.hpp"
#include "railcc/sim/trace.hpp"
#include "railcc/tune.hpp"
#include "size_option.hpp"

namespace {

using namespace railcc;

/// The largest size railcc-sim simulates: 1 TiB, seven times the memory of the largest
/// GPU (H200, 141 GB). The bound keeps every byte count, and its product with the rank
/// count, inside 64 bits.
constexpr std::size_t max_size_bytes = std::size_t{1} << 40;

/// A whole number for `option`, from digits alone (no sign, no spaces, no suffix), in
/// [lo, hi].
std::uint64_t parse_whole(const std::string& option, const std::string& s, std::uint64_t lo,
                          std::uint64_t hi) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec == std::errc::invalid_argument || end != s.data() + s.size() ||
      !std::isdigit(static_cast<unsigned char>(s.front()))) {
    throw InputError(option + " '" + s + "' is not a whole number");
  }
  if (ec == std::errc::result_out_of_range || v < lo || v > hi) {
    throw InputError(option + " " + s + " is out of range: use " + std::to_string(lo) + " to " +
                     std::to_string(hi));
  }
  return v;
}

/// A finite real number for `option`.
double parse_real(const std::string& option, const std::string& s) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || !std::isfinite(v)) {
    throw InputError(option + " '" + s + "' is not a number");
  }
  return v;
}

std::size_t parse_size(const std::string& option, const std::string& s) {
  return railcc_tools::parse_byte_size(option, s, max_size_bytes, "the 1 TiB railcc-sim simulates");
}

/// Most ranks timing and data modes take (see run()).
constexpr std::size_t max_per_operation_ranks = 8192;

struct Options {
  std::string fabric = "colossus";
  std::string gpus;  // not given: every GPU of the fabric
  bool gpus_given = false;
  bool qps_given = false;
  std::string collective = "all_reduce";
  std::string algo = "auto";
  std::string inter = "rabenseifner";
  std::string routing = "ecmp";
  std::string schedule = "off";
  std::string ecmp_hash = "known";
  std::string min_bytes = "1K";
  std::string max_bytes = "1G";
  std::string factor = "4";
  std::string type = "bfloat16";
  std::string op = "sum";
  std::string root = "0";
  std::string channels = "auto";
  std::string qps = "1";
  std::string phase_chunks = "0";
  std::string chunks_in_flight = "0";
  std::string pipeline_chunks = "8";
  std::string transport = "rdma";
  std::string message_overhead_us, nvlink_overhead_us, nvls_overhead_us, switch_hop_us, base_us;
  bool in_place = false;
  std::string fail_links = "0";
  std::string seed = "1";
  std::string mode = "steps";
  bool data = false;
  std::string trace;
  bool json = false;
  std::string explain;  // "", "predicted" or "simulated"
};

/// Options after checking: numbers parsed, every bound applied.
struct Settings {
  std::uint64_t gpus = 0;  // 0: the fabric's own
  double factor = 4;
  std::uint64_t root = 0;
  int channels = 0;  // 0: one per GPU of a host (rail), resolved in set_up
  int qps = 1;
  int phase_chunks = 0;
  int chunks_in_flight = 0;
  int pipeline_chunks = 8;
  FixedCosts costs;  // the options given (each replaces the profile's and the file's)
  bool tcp = false;
  double fail_links = 0;
  std::uint64_t seed = 1;
};

Settings check_numbers(const Options& o) {
  Settings n;
  if (o.gpus_given) {
    n.gpus = parse_whole("--gpus", o.gpus, 1, max_fabric_endpoints);
  }
  n.factor = parse_real("-f", o.factor);
  if (!(n.factor > 1 && n.factor <= 1 << 20))
    throw InputError("-f must be more than 1 (up to 2^20)");
  n.root = parse_whole("--root", o.root, 0, max_fabric_endpoints);
  // NCCL's MAXCHANNELS is 64.
  n.channels =
      o.channels == "auto" ? 0 : static_cast<int>(parse_whole("--channels", o.channels, 1, 64));
  n.qps = static_cast<int>(parse_whole("--qps", o.qps, 1, 1024));
  n.phase_chunks = static_cast<int>(parse_whole("--phase-chunks", o.phase_chunks, 0, 4096));
  n.chunks_in_flight =
      static_cast<int>(parse_whole("--chunks-in-flight", o.chunks_in_flight, 0, 4096));
  n.pipeline_chunks =
      static_cast<int>(parse_whole("--pipeline-chunks", o.pipeline_chunks, 1, 4096));
  if (o.transport != "rdma" && o.transport != "tcp")
    throw InputError("--transport '" + o.transport + "': rdma or tcp");
  n.tcp = o.transport == "tcp";
  auto us = [](const char* name, const std::string& text, std::optional<Picoseconds>& to) {
    if (text.empty()) return;
    const double v = parse_real(name, text);
    if (!(v >= 0) || v > 1e6)
      throw InputError(std::string(name) + " " + text + " is out of range: use 0 to 1e6 us");
    to = Picoseconds::us(v);
  };
  us("--message-overhead-us", o.message_overhead_us, n.costs.message_overhead);
  us("--nvlink-overhead-us", o.nvlink_overhead_us, n.costs.nvlink_overhead);
  us("--nvls-overhead-us", o.nvls_overhead_us, n.costs.nvls_overhead);
  us("--switch-hop-us", o.switch_hop_us, n.costs.switch_hop);
  us("--base-us", o.base_us, n.costs.collective_base);
  n.fail_links = parse_real("--fail-links", o.fail_links);
  if (!(n.fail_links >= 0 && n.fail_links < 1))
    throw InputError("--fail-links " + o.fail_links + " is out of range: use a fraction in [0, 1)");
  n.seed = parse_whole("--seed", o.seed, 0, std::numeric_limits<std::uint64_t>::max());
  return n;
}

Fabric build_fabric(const Options& o, const Settings& n, FixedCosts& file_costs) {
  return fabric_from_spec(o.fabric, n.gpus, &file_costs, "--fabric");
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
  SimBackend::QpChoiceSummary qps;  // what choosing QPs did (--schedule on)
  SimResult sim;                    // until the row is printed and traced
};

/// Progress on stderr while the sweep runs, when stderr is a terminal: which size of how
/// many, the time so far and an estimate of what is left, redrawn on one line a few times
/// a second. Nothing at all when stderr is a file or a pipe, so logs and JSON stay clean.
class Progress {
 public:
  explicit Progress(std::size_t sizes) : sizes_(sizes) {
    if (isatty(STDERR_FILENO) != 0)
      ticker_ = std::jthread([this](std::stop_token stop) { tick(stop); });
  }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress() { finish(); }

  void start_size(std::size_t index, std::size_t bytes) {
    const std::lock_guard lock(mutex_);
    index_ = index;
    bytes_ = bytes;
    size_start_ = Clock::now();
  }
  /// Runs `print` (which writes to stdout) with the progress line off the terminal.
  template <class Print>
  void above(Print&& print) {
    const std::lock_guard lock(mutex_);
    erase();
    print();
  }
  void finish() {
    if (ticker_.joinable()) {
      ticker_.request_stop();
      ticker_.join();
    }
    const std::lock_guard lock(mutex_);
    erase();
  }

 private:
  using Clock = std::chrono::steady_clock;
  void tick(std::stop_token stop) {
    std::mutex sleep_mutex;
    std::condition_variable_any wake;
    while (!stop.stop_requested()) {
      {
        std::unique_lock sleep(sleep_mutex);
        wake.wait_for(sleep, stop, std::chrono::milliseconds(250), [] { return false; });
      }
      if (stop.stop_requested()) break;
      const std::lock_guard lock(mutex_);
      draw();
    }
  }
  void draw() {
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    char left[64] = "estimate after the first size";
    if (index_ > 0) {
      // Sizes cost about the same in steps mode (its cost grows with flows, not bytes).
      const double per_size =
          std::chrono::duration<double>(size_start_ - start_).count() / static_cast<double>(index_);
      const double in_this = std::chrono::duration<double>(now - size_start_).count();
      const double remaining =
          std::max(0.0, per_size * static_cast<double>(sizes_ - index_) - in_this);
      std::snprintf(left, sizeof left, "about %.0f s left", remaining);
    }
    std::fprintf(stderr, "\r\033[Krailcc-sim: size %zu of %zu (%zu B), %.0f s elapsed, %s",
                 index_ + 1, sizes_, bytes_, elapsed, left);
    std::fflush(stderr);
    shown_ = true;
  }
  void erase() {
    if (!shown_) return;
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    shown_ = false;
  }

  std::size_t sizes_;
  std::mutex mutex_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point size_start_ = start_;
  std::size_t index_ = 0;
  std::size_t bytes_ = 0;
  bool shown_ = false;
  std::jthread ticker_;  // last: started after, and joined before, the state it reads
};

/// What to simulate, after every option is parsed and checked against every other.
struct Request {
  Settings n;
  Collective coll = Collective::all_reduce;
  DataType type = DataType::bfloat16;
  ReduceOp op = ReduceOp::sum;
  Algorithm inter = Algorithm::rabenseifner;
  std::optional<Algorithm> fixed;  // none: chosen by the cost model per size
  SimMode mode = SimMode::steps;
  std::string mode_name;
  std::size_t min_bytes = 0;
  std::size_t max_bytes = 0;
};

Request parse_request(const Options& o) {
  Request q;
  q.n = check_numbers(o);
  const auto coll = parse_collective(o.collective);
  if (!coll) {
    throw InputError("--collective '" + o.collective +
                     "': use all_reduce, reduce_scatter, all_gather, broadcast, reduce, "
                     "all_to_all or send_recv");
  }
  q.coll = *coll;
  const auto type = parse_data_type(o.type);
  if (!type) throw InputError("--type '" + o.type + "' is not a type railcc reduces");
  q.type = *type;
  const auto op = parse_reduce_op(o.op);
  if (!op) throw InputError("--op '" + o.op + "': use sum, prod, min, max or avg");
  q.op = *op;
  const auto inter = parse_algorithm(o.inter);
  if (!inter || !runs_across_hosts(*inter))
    throw InputError("--inter '" + o.inter + "': use ring, rabenseifner or mixed_radix");
  q.inter = *inter;
  if (o.algo != "auto") {
    q.fixed = parse_algorithm(o.algo);
    if (!q.fixed || !applies(q.coll, *q.fixed)) {
      std::string names;
      for (auto a : algorithms_for(q.coll))
        names += (names.empty() ? "" : ", ") + std::string(to_string(a));
      throw InputError("--algo '" + o.algo + "' does not apply to " +
                       std::string(to_string(q.coll)) + "; use auto or one of: " + names);
    }
  }
  q.mode_name = o.data ? "data" : o.mode;
  if (q.mode_name == "timing")
    q.mode = SimMode::timing;
  else if (q.mode_name == "data")
    q.mode = SimMode::data;
  else if (q.mode_name != "steps")
    throw InputError("--mode '" + o.mode + "': use steps, timing or data");
  if (o.routing != "ecmp" && o.routing != "spray")
    throw InputError("--routing '" + o.routing + "': use ecmp or spray");
  if (!o.explain.empty() && o.explain != "predicted" && o.explain != "simulated")
    throw InputError("--explain '" + o.explain + "': use predicted (the default) or simulated");
  if (!o.explain.empty() && o.json)
    throw InputError("--explain prints lines for people; --json has the tuner's pick per row");
  if (o.schedule != "off" && o.schedule != "on")
    throw InputError("--schedule '" + o.schedule + "': use off or on");
  if (o.ecmp_hash != "known" && o.ecmp_hash != "unknown")
    throw InputError("--ecmp-hash '" + o.ecmp_hash +
                     "': use known (the switches hash as railcc's model does) or unknown");
  q.min_bytes = parse_size("-b", o.min_bytes);
  q.max_bytes = parse_size("-e", o.max_bytes);
  if (q.min_bytes == 0 || q.max_bytes < q.min_bytes)
    throw InputError("sizes: need 0 < -b <= -e (got " + o.min_bytes + " and " + o.max_bytes + ")");
  if (o.in_place && (q.coll == Collective::all_to_all || q.coll == Collective::send_recv)) {
    throw InputError("--inplace: " + std::string(to_string(q.coll)) +
                     " has no in-place form (every rank's output differs from its input, and "
                     "the exchange reads blocks it would overwrite)");
  }
  return q;
}

/// The fabric and everything fixed for the whole sweep.
struct Sweep {
  Fabric fabric;
  std::size_t failed = 0;                  // cables failed on purpose
  std::optional<StripingChoice> striping;  // --schedule on with an unknown hash
  std::optional<ChosenQps> chosen_qps;     // --schedule on, QPs chosen: how many per connection
  std::size_t ranks = 0;
  int root = 0;
  int channels = 1;  // rings and trees (all algorithms when explicit_channels)
  bool explicit_channels = false;
  SimBackendConfig cfg;
  CostModel model;
  std::vector<std::size_t> sizes;
};

/// A message's start-up over TCP-based GPU networking (the kernel's socket path on both
/// ends, instead of an RDMA NIC's): tens of microseconds [guess], to be set from a
/// measurement with --message-overhead-us.
constexpr Picoseconds tcp_message_overhead = Picoseconds::us(25);

/// The fixed costs: the transport's profile (rdma: the simulator's defaults; tcp: a
/// message start-up of tcp_message_overhead), then the fabric file's "costs", then the
/// options given, each replacing what came before.
void apply_costs(const Settings& n, const FixedCosts& file, SimBackendConfig& cfg) {
  if (n.tcp) cfg.sim.message_overhead = tcp_message_overhead;
  for (const FixedCosts* c : {&file, &n.costs}) {
    if (c->message_overhead) cfg.sim.message_overhead = *c->message_overhead;
    if (c->nvlink_overhead) cfg.sim.nvlink_message_overhead = *c->nvlink_overhead;
    if (c->nvls_overhead) cfg.sim.nvls_message_overhead = *c->nvls_overhead;
    if (c->switch_hop) cfg.sim.switch_hop = *c->switch_hop;
    if (c->collective_base) cfg.collective_base = *c->collective_base;
  }
}

/// The channels a call of `algo` gets (see set_up).
int channels_for(const Sweep& w, Algorithm algo) {
  return w.explicit_channels || algo == Algorithm::ring || algo == Algorithm::tree ? w.channels : 1;
}

Sweep set_up(const Options& o, const Request& q) {
  Sweep w;
  FixedCosts file_costs;
  w.fabric = build_fabric(o, q.n, file_costs);
  w.failed = q.n.fail_links > 0 ? fail_switch_cables(w.fabric, q.n.fail_links, q.n.seed) : 0;
  w.ranks = q.n.gpus > 0 ? q.n.gpus : w.fabric.endpoint_count();
  if (w.ranks > w.fabric.endpoint_count()) {
    throw InputError("--gpus " + std::to_string(w.ranks) + ": the fabric has only " +
                     std::to_string(w.fabric.endpoint_count()) + " GPUs");
  }
  if (q.n.root >= w.ranks)
    throw InputError("--root " + std::to_string(q.n.root) + " is not a rank");
  w.root = static_cast<int>(q.n.root);
  // Timing and data modes schedule every operation, and the flow engine re-solves the
  // rates of all active flows as each one ends: a bulk-synchronous step of p flows costs
  // about p^2 (1 KiB all-reduce in data mode: 7 s at 8,192 ranks, 50 s at 16,384, 203 s
  // at 32,768). Steps mode is the one for larger runs.
  if (q.mode != SimMode::steps && w.ranks > max_per_operation_ranks) {
    throw InputError("--mode " + q.mode_name + " over " + std::to_string(w.ranks) +
                     " ranks: it simulates every operation, at a cost growing with the square "
                     "of the ranks; railcc-sim takes up to " +
                     std::to_string(max_per_operation_ranks) +
                     " ranks in timing and data modes; use steps mode (the default)");
  }
  if (q.coll == Collective::all_to_all && q.mode == SimMode::steps && w.ranks > 8192) {
    throw InputError("all_to_all over " + std::to_string(w.ranks) +
                     " ranks: the pairwise exchange is one flow per pair of ranks (" +
                     std::to_string(w.ranks * (w.ranks - 1)) +
                     "); railcc-sim takes up to 8,192 ranks for it");
  }
  w.cfg.mode = q.mode;
  w.cfg.qps_per_connection = static_cast<std::uint32_t>(q.n.qps);
  w.cfg.sim.routing.mode = o.routing == "spray" ? RoutingMode::spray : RoutingMode::ecmp;
  w.cfg.sim.routing.seed = q.n.seed;
  // Spraying uses every path already: there is no hash to steer. A hash railcc does not
  // know cannot be steered either: connections stripe over QPs instead (qp_striping.hpp).
  const bool ecmp = w.cfg.sim.routing.mode == RoutingMode::ecmp;
  if (o.schedule == "on" && ecmp && o.ecmp_hash == "unknown") w.striping = blind_striping(w.fabric);
  w.cfg.choose_qps = o.schedule == "on" && ecmp && !w.striping;
  // Scheduled, a connection gets a QP per port of its GPU's NIC unless --qps says
  // otherwise (one QP is one port, and a dual-plane NIC (HPN) would run at half its
  // rate), and two per port where a leaf or tier is short of up-links (chosen_qps.hpp).
  if (o.schedule == "on" && !o.qps_given) {
    if (w.striping) {
      w.cfg.qps_per_connection = w.striping->qps;
    } else if (w.cfg.choose_qps) {
      w.chosen_qps = qps_to_choose(w.fabric);
      w.cfg.qps_per_connection = w.chosen_qps->qps;
    } else {
      w.cfg.qps_per_connection =
          static_cast<std::uint32_t>(std::max<std::size_t>(1, network_ports(w.fabric, 0)));
    }
  }
  apply_costs(q.n, file_costs, w.cfg);
  w.model = CostModel::of(w.fabric, w.ranks, w.cfg.sim);
  w.model.collective_base = w.cfg.collective_base;
  // By default the rings and trees get as many channels as a host has GPUs (rails), so
  // they cross hosts on every NIC, as NCCL's channels do (NCCL's MAXCHANNELS is 64).
  // The other algorithms get one: their steps between hosts already stay on each GPU's
  // own rail, so more channels would only multiply what is simulated. Data mode, which is
  // for checking results, keeps one: channels change no result.
  const bool one_channel = q.mode == SimMode::data;
  w.channels = q.n.channels > 0 ? q.n.channels
               : one_channel    ? 1
                             : static_cast<int>(std::clamp<std::size_t>(w.model.per_host, 1, 64));
  w.explicit_channels = q.n.channels > 0;
  w.model.channels = w.channels;
  w.model.pipeline_chunks = q.n.pipeline_chunks;
  w.model.phase_chunks = q.n.phase_chunks;
  w.model.chunks_in_flight = q.n.chunks_in_flight;
  // The model prices steps between hosts by how this fabric, routed as configured, shares
  // their links: collisions of blind ECMP, a dual-plane NIC's one port per QP, or the
  // chosen QPs' spread (tune/step_load.hpp). They describe all-reduce's algorithms; the
  // measurement costs a route per flow of each step measured.
  if (q.coll == Collective::all_reduce) {
    StepRouting r;
    r.routing = w.cfg.sim.routing;
    r.qps = w.cfg.qps_per_connection;
    r.choose_qps = w.cfg.choose_qps;
    w.model.slowdowns = measure_step_slowdowns(w.fabric, w.model, r);
  }
  for (double s = static_cast<double>(q.min_bytes);
       s <= static_cast<double>(q.max_bytes) * 1.000001; s *= q.n.factor) {
    w.sizes.push_back(static_cast<std::size_t>(s));
  }
  // Data mode holds every rank's buffers and a copy of the inputs: refuse a sweep whose
  // largest size would not fit before simulating any of it.
  if (q.mode == SimMode::data) {
    const std::size_t elem = size_of(q.type);
    const std::size_t count = count_for_size(q.coll, w.sizes.back(), elem, w.ranks);
    const std::size_t need = verified_call_bytes(q.coll, count, elem, w.ranks, o.in_place);
    if (need > w.cfg.max_data_bytes) {
      throw InputError("data mode would need " + std::to_string(need) + " bytes of buffers at " +
                       std::to_string(w.sizes.back()) + " B on " + std::to_string(w.ranks) +
                       " ranks, over the " + std::to_string(w.cfg.max_data_bytes) +
                       " allowed; use timing mode for this size");
    }
  }
  return w;
}

/// One size of the sweep, simulated; `b` keeps what a trace needs.
Row simulate_size(const Options& o, const Request& q, const Sweep& w, std::size_t i,
                  SimBackend& b) {
  const std::size_t elem = size_of(q.type);
  const std::size_t count = count_for_size(q.coll, w.sizes[i], elem, w.ranks);
  Row row;
  row.count = count;
  row.size = size_for_count(q.coll, count, elem, w.ranks);
  AlgorithmChoice choice = w.model.choose(q.coll, row.size);
  if (q.fixed) {
    choice.algorithm = *q.fixed;
    choice.inter_host = q.inter;
    choice.predicted = w.model.predict(q.coll, *q.fixed, q.inter, row.size);
    choice.across_hosts = w.model.hosts > 1;
  }
  b.set_reduction({q.type, q.op});
  SimResult sim;
  if (q.mode == SimMode::data) {
    VerifiedCall call;
    call.collective = q.coll;
    call.algorithm = choice.algorithm;
    call.inter_host = choice.inter_host;
    call.count = count;
    call.in_place = o.in_place;
    call.channels = channels_for(w, choice.algorithm);
    call.phase_chunks = w.model.phase_chunks_for(choice.algorithm, choice.inter_host, row.size);
    call.chunks_in_flight =
        w.model.chunks_in_flight_for(choice.algorithm, choice.inter_host, row.size);
    call.pipeline_chunks = q.n.pipeline_chunks;
    call.root = w.root;
    const auto v = run_verified(b, call, q.n.seed + i);
    sim = v.sim;
    row.wrong = static_cast<long long>(v.wrong);
  } else {
    const auto buffers = allocate_buffers(b, q.coll, count, elem, o.in_place);
    CollectiveCall call{count, buffers.input, buffers.output, channels_for(w, choice.algorithm),
                        w.root};
    call.phase_chunks = w.model.phase_chunks_for(choice.algorithm, choice.inter_host, row.size);
    call.chunks_in_flight =
        w.model.chunks_in_flight_for(choice.algorithm, choice.inter_host, row.size);
    call.pipeline_chunks = q.n.pipeline_chunks;
    post_collective(b, q.coll, call, choice.algorithm, choice.inter_host);
    sim = b.run();
  }
  const double seconds = sim.makespan.in_seconds();
  row.time_us = sim.makespan.in_us();
  row.algbw = seconds > 0 ? static_cast<double>(row.size) / seconds / 1e9 : 0;
  row.busbw = row.algbw * bus_factor(q.coll, w.ranks);
  row.algo = to_string(choice);
  row.predicted_us = choice.predicted.in_us();
  const double bound = w.model.bandwidth_bound(q.coll, row.size).in_seconds();
  row.efficiency = seconds > 0 ? bound / seconds : 0;
  row.qps = b.qp_choice_summary();
  row.sim = std::move(sim);
  return row;
}

bool rooted(Collective c) { return c == Collective::broadcast || c == Collective::reduce; }

/// Simulated time of one candidate at one size (for --explain simulated): timing or steps
/// mode as the sweep runs (data mode's candidates are timed without data).
Picoseconds simulate_candidate(const Request& q, const Sweep& w, const AlgorithmChoice& c,
                               std::size_t count, bool in_place) {
  SimBackendConfig cfg = w.cfg;
  if (cfg.mode == SimMode::data) cfg.mode = SimMode::timing;
  SimBackend b(w.fabric, static_cast<int>(w.ranks), cfg);
  b.set_reduction({q.type, q.op});
  const auto buffers = allocate_buffers(b, q.coll, count, size_of(q.type), in_place);
  CollectiveCall call{count, buffers.input, buffers.output, channels_for(w, c.algorithm), w.root};
  call.phase_chunks = w.model.phase_chunks_for(c.algorithm, c.inter_host, count * size_of(q.type));
  call.chunks_in_flight =
      w.model.chunks_in_flight_for(c.algorithm, c.inter_host, count * size_of(q.type));
  call.pipeline_chunks = q.n.pipeline_chunks;
  post_collective(b, q.coll, call, c.algorithm, c.inter_host);
  return b.run().makespan;
}

/// --explain: every candidate the tuner weighed at this size, its predicted (and, on
/// request, simulated) time, and why the pick won.
void print_explanation(const Options& o, const Request& q, const Sweep& w, const Row& row) {
  const auto all = w.model.candidates(q.coll, row.size);
  const AlgorithmChoice pick = w.model.choose(q.coll, row.size);
  const bool simulated = o.explain == "simulated";
  const double bound = w.model.bandwidth_bound(q.coll, row.size).in_us();
  std::string runner_up;
  double runner_up_us = 0;
  for (const auto& k : all) {
    if (!k.runs() ||
        (k.choice.algorithm == pick.algorithm && k.choice.inter_host == pick.inter_host))
      continue;
    if (runner_up.empty() || k.choice.predicted.in_us() < runner_up_us) {
      runner_up = to_string(k.choice);
      runner_up_us = k.choice.predicted.in_us();
    }
  }
  std::printf("# explain %zu B: tuner picks %s, the least predicted time (%.2f us", row.size,
              to_string(pick).c_str(), pick.predicted.in_us());
  if (!runner_up.empty())
    std::printf("; next %s, +%.1f%%", runner_up.c_str(),
                (runner_up_us / pick.predicted.in_us() - 1) * 100);
  std::printf(
      "); bound %.2f us%s\n", bound,
      q.fixed ? ("; --algo " + std::string(to_string(*q.fixed)) + " ran instead").c_str() : "");
  // The pipeline of the algorithm that ran, where it has one across hosts.
  const Algorithm ran = q.fixed ? *q.fixed : pick.algorithm;
  const Algorithm ran_inter = q.fixed ? q.inter : pick.inter_host;
  if (const int chunks = w.model.phase_chunks_for(ran, ran_inter, row.size); chunks > 0) {
    const int in_flight = w.model.chunks_in_flight_for(ran, ran_inter, row.size);
    const PhaseCosts pc = w.model.phase_costs(ran, ran_inter, row.size);
    char why[256];
    if (q.n.chunks_in_flight > 0) {
      std::snprintf(why, sizeof why, "as --chunks-in-flight says");
    } else {
      std::snprintf(why, sizeof why,
                    "the bandwidth-delay product: a chunk's steps between hosts carry %.2f us "
                    "of bytes and %.2f us of start-ups and latency",
                    pc.network_seconds / chunks * 1e6, pc.network_latency * 1e6);
    }
    std::printf("# pipeline: %d chunks, %d between hosts at once (%s)\n", chunks, in_flight, why);
  }
  for (const auto& k : all) {
    const std::string name = to_string(k.choice);
    if (!k.runs()) {
      std::printf("#   %-28s does not run here: %s\n", name.c_str(), k.excluded.c_str());
      continue;
    }
    std::printf("#   %-28s predicted %12.2f us", name.c_str(), k.choice.predicted.in_us());
    if (simulated) {
      const Picoseconds t = simulate_candidate(q, w, k.choice, row.count, o.in_place);
      std::printf("   simulated %12.2f us (eff %.3f)", t.in_us(),
                  t > Picoseconds{} ? bound / t.in_us() : 0.0);
    }
    std::printf("\n");
  }
  std::fflush(stdout);
}

void print_header(const Options& o, const Request& q, const Sweep& w) {
  const std::string fabric_line =
      o.fabric + ", " + std::to_string(w.ranks) + " of " +
      std::to_string(w.fabric.endpoint_count()) + " GPUs (" + std::to_string(w.model.hosts) +
      " hosts x " + std::to_string(w.model.per_host) + "), " + std::to_string(w.fabric.tiers()) +
      " switch tiers, " + std::to_string(switch_count(w.fabric)) + " switches, " +
      std::to_string(w.fabric.link_count() / 2) + " cables" +
      (w.failed > 0 ? " (" + std::to_string(w.failed) + " failed)" : "");
  std::printf("# railcc-sim: %s on %s\n", std::string(to_string(q.coll)).c_str(),
              fabric_line.c_str());
  const std::string channels =
      std::to_string(w.channels) + (w.explicit_channels ? " channels" : " channels (ring, tree)");
  std::printf("# %s routing, %s mode, %s, algorithm %s, %s\n", o.routing.c_str(),
              q.mode_name.c_str(), o.in_place ? "in place" : "out of place",
              q.fixed ? std::string(to_string(*q.fixed)).c_str() : "auto (alpha-beta cost model)",
              channels.c_str());
  if (w.striping) {
    const std::string qps = o.qps_given ? std::to_string(w.cfg.qps_per_connection) +
                                              (w.cfg.qps_per_connection == 1 ? " QP" : " QPs") +
                                              " per connection, as --qps says"
                                        : "each connection stripes over " + w.striping->why();
    std::printf(
        "# schedule on: the ECMP hash is unknown (--ecmp-hash unknown), so no QP is "
        "chosen: %s\n",
        qps.c_str());
  } else if (o.schedule == "on") {
    const std::string why = o.qps_given    ? ""
                            : w.chosen_qps ? " (" + w.chosen_qps->why() + ")"
                                           : " (one per NIC port)";
    std::printf("# schedule on: %s; %u QP%s per connection%s\n",
                w.cfg.choose_qps ? "each step's QPs chosen against the ECMP hash (qp_paths)"
                                 : "spray routing uses every path, no QPs to choose",
                w.cfg.qps_per_connection, w.cfg.qps_per_connection == 1 ? "" : "s", why.c_str());
  }
  if (!o.explain.empty() && w.model.hosts > 1 && q.coll == Collective::all_reduce) {
    const StepSlowdowns& s = w.model.slowdowns;
    auto worst = [](const std::vector<double>& v) {
      return v.empty() ? 1.0 : *std::max_element(v.begin(), v.end());
    };
    std::printf(
        "# steps between hosts, the busiest link against the NIC rate (%s, %u QP%s per "
        "connection%s): mixed radix up to x%.2f (across hosts x%.2f by bytes), Rabenseifner up "
        "to x%.2f (across hosts x%.2f), ring x%.2f\n",
        o.routing.c_str(), w.cfg.qps_per_connection, w.cfg.qps_per_connection == 1 ? "" : "s",
        w.cfg.choose_qps ? ", chosen" : "", worst(s.mixed_radix),
        w.model.hosts_slowdown(Algorithm::mixed_radix), worst(s.rabenseifner),
        w.model.hosts_slowdown(Algorithm::rabenseifner), s.ring);
  }
  const auto& sim = w.cfg.sim;
  std::printf(
      "# fixed costs (%s): message %.2f us, NVLink %.2f us, NVLS %.2f us, switch hop %.2f us, "
      "per collective %.2f us\n#\n",
      o.transport.c_str(), sim.message_overhead.in_us(), sim.nvlink_message_overhead.in_us(),
      sim.nvls_message_overhead.in_us(), sim.switch_hop.in_us(), w.cfg.collective_base.in_us());
  std::printf("# %10s %12s %9s %6s %6s %11s %9s %9s %7s  %-26s %6s\n", "size", "count", "type",
              "redop", "root", "time", "algbw", "busbw", "#wrong", "algo", "eff");
  std::printf("# %10s %12s %9s %6s %6s %11s %9s %9s %7s\n", "(B)", "(elements)", "", "", "", "(us)",
              "(GB/s)", "(GB/s)", "");
  std::fflush(stdout);
}

void print_row(const Request& q, const Sweep& w, const Row& row) {
  char wrong[32];
  if (row.wrong < 0)
    std::snprintf(wrong, sizeof wrong, "N/A");
  else
    std::snprintf(wrong, sizeof wrong, "%lld", row.wrong);
  std::printf("  %10zu %12zu %9s %6s %6d %11.2f %9.2f %9.2f %7s  %-26s %6.3f\n", row.size,
              row.count, std::string(to_string(q.type)).c_str(),
              std::string(to_string(q.op)).c_str(), rooted(q.coll) ? w.root : -1, row.time_us,
              row.algbw, row.busbw, wrong, row.algo.c_str(), row.efficiency);
  std::fflush(stdout);
}

struct Summary {
  double avg_busbw = 0;
  std::size_t wrong = 0;
  double wall_seconds = 0;
  SimBackend::QpChoiceSummary qps;  // over every size
  std::string trace_note;
};

void print_json(const Options& o, const Request& q, const Sweep& w, const std::vector<Row>& rows,
                const Summary& sum) {
  nlohmann::json j;
  j["schema"] = "railcc.sim_results.v1";
  j["collective"] = std::string(to_string(q.coll));
  j["fabric"] = o.fabric;
  j["gpus"] = w.ranks;
  j["hosts"] = w.model.hosts;
  j["gpus_per_host"] = w.model.per_host;
  j["failed_cables"] = w.failed;
  j["routing"] = o.routing;
  j["schedule"] = o.schedule;
  j["ecmp_hash"] = o.ecmp_hash;
  j["qps_per_connection"] = w.cfg.qps_per_connection;
  j["channels"] = w.channels;
  j["transport"] = o.transport;
  j["fixed_costs_us"] = {{"message_overhead", w.cfg.sim.message_overhead.in_us()},
                         {"nvlink_overhead", w.cfg.sim.nvlink_message_overhead.in_us()},
                         {"nvls_overhead", w.cfg.sim.nvls_message_overhead.in_us()},
                         {"switch_hop", w.cfg.sim.switch_hop.in_us()},
                         {"collective_base", w.cfg.collective_base.in_us()}};
  j["mode"] = q.mode_name;
  j["in_place"] = o.in_place;
  j["type"] = std::string(to_string(q.type));
  j["redop"] = std::string(to_string(q.op));
  j["root"] = rooted(q.coll) ? w.root : -1;
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
    if (w.cfg.choose_qps) {
      x["qp_choice"] = {{"flows", r.qps.flows},
                        {"moved", r.qps.moved},
                        {"shared_links_blind", r.qps.shared_links_before},
                        {"shared_links_chosen", r.qps.shared_links_after}};
    }
    j["rows"].push_back(x);
  }
  j["avg_busbw"] = sum.avg_busbw;
  j["wall_seconds"] = sum.wall_seconds;
  std::cout << j.dump(2) << "\n";
}

void print_summary(const Request& q, const std::vector<Row>& rows, const Summary& sum) {
  std::printf("# Out of bounds values : %s\n",
              q.mode == SimMode::data ? (sum.wrong == 0 ? "0 OK" : "FAILED") : "N/A (no data)");
  std::printf("# Avg bus bandwidth    : %.3f GB/s\n", sum.avg_busbw);
  std::printf("# eff: the bandwidth bound (each GPU's bytes over NVLink or its NICs) / time\n");
  if (!sum.trace_note.empty()) std::printf("# trace: %s\n", sum.trace_note.c_str());
  if (sum.qps.steps > 0) {
    std::printf(
        "# QPs chosen: %zu steps, %zu flows between leaves, %zu moved; switch links carrying 2+ "
        "flows of a step: %zu hashed blindly, %zu chosen\n",
        sum.qps.steps, sum.qps.flows, sum.qps.moved, sum.qps.shared_links_before,
        sum.qps.shared_links_after);
  }
  std::printf("# %zu sizes simulated in %.1f s\n", rows.size(), sum.wall_seconds);
}

int run(const Options& o) {
  const auto wall0 = std::chrono::steady_clock::now();
  const Request q = parse_request(o);
  // The trace file is opened before anything is simulated: a path that cannot be written
  // is refused now, not after the whole run.
  std::ofstream trace_out;
  if (!o.trace.empty()) {
    trace_out.open(o.trace, std::ios::binary);
    if (!trace_out) throw InputError("--trace: cannot write " + o.trace);
  }
  const Sweep w = set_up(o, q);
  if (!o.json) print_header(o, q, w);
  std::vector<Row> rows;
  Summary sum;
  Progress progress(w.sizes.size());
  for (std::size_t i = 0; i < w.sizes.size(); ++i) {
    progress.start_size(i, w.sizes[i]);
    // Smaller than one element per rank: nccl-tests skips it too.
    if (count_for_size(q.coll, w.sizes[i], size_of(q.type), w.ranks) == 0) continue;
    SimBackend b(w.fabric, static_cast<int>(w.ranks), w.cfg);
    Row row = simulate_size(o, q, w, i, b);
    if (row.wrong > 0) sum.wrong += static_cast<std::size_t>(row.wrong);
    sum.qps += row.qps;
    if (!o.json)
      progress.above([&] {
        print_row(q, w, row);
        if (!o.explain.empty()) print_explanation(o, q, w, row);
      });
    if (trace_out.is_open() && i + 1 == w.sizes.size()) {
      if (q.mode == SimMode::steps)
        write_step_trace(trace_out, b.step_result());
      else
        write_chrome_trace(trace_out, w.fabric, b.last_graph(), row.sim);
      trace_out.close();
      if (!trace_out) throw InputError("--trace: cannot write " + o.trace);
      sum.trace_note = o.trace + " (" + std::to_string(row.size) + " B)";
    }
    row.sim = SimResult{};  // the per-flow times are large; the row keeps its figures
    rows.push_back(std::move(row));
  }
  progress.finish();
  for (const auto& r : rows) sum.avg_busbw += r.busbw;
  if (!rows.empty()) sum.avg_busbw /= static_cast<double>(rows.size());
  sum.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  if (o.json)
    print_json(o, q, w, rows, sum);
  else
    print_summary(q, rows, sum);
  return sum.wrong == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
#if defined(__GLIBC__)
  // glibc serves every block over 32 MiB from its own mapping and unmaps it when freed,
  // so the next one faults in fresh zeroed pages. A simulation at 1,000,000 GPUs builds
  // and drops such tables for every step it simulates: unscheduled at 1 GiB it took 59 s.
  // From the heap, freed blocks are used again (44 s; the peak grew 3%).
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
#endif
  Options o;
  CLI::App app{"railcc-sim: collectives on a simulated fabric, reported like nccl-tests"};
  app.add_option("--fabric", o.fabric, "colossus, llama3, hpn, fat-tree, or FILE.json")
      ->capture_default_str();
  auto* gpus_option = app.add_option(
      "--gpus", o.gpus, "GPUs, 1 to 4000000 (colossus is built for them; others use the first N)");
  app.add_option("--collective", o.collective,
                 "all_reduce, reduce_scatter, all_gather, broadcast, reduce, all_to_all, "
                 "send_recv")
      ->capture_default_str();
  app.add_option("--algo", o.algo, "auto, or ring, rabenseifner, tree, hierarchical, bruck, ...")
      ->capture_default_str();
  app.add_option("--inter", o.inter,
                 "hierarchical's algorithm across hosts: ring, rabenseifner or mixed_radix")
      ->capture_default_str();
  app.add_option("--routing", o.routing, "ecmp or spray")->capture_default_str();
  app.add_option("--schedule", o.schedule,
                 "off, or on: choose each step's QPs against the ECMP hash so its flows take "
                 "different paths")
      ->capture_default_str();
  app.add_option("--ecmp-hash", o.ecmp_hash,
                 "known, or unknown: the switches' hash is not railcc's model, so --schedule on "
                 "stripes each connection over QPs instead of choosing them")
      ->capture_default_str();
  app.add_option("-b,--minbytes", o.min_bytes, "smallest size (bytes; K, M, G)")
      ->capture_default_str();
  app.add_option("-e,--maxbytes", o.max_bytes, "largest size")->capture_default_str();
  app.add_option("-f,--stepfactor", o.factor, "size factor between rows")->capture_default_str();
  app.add_option("-d,--type", o.type, "float32, float64, float16, bfloat16, int32, int64, uint8")
      ->capture_default_str();
  app.add_option("-o,--op", o.op, "sum, prod, min, max, avg")->capture_default_str();
  app.add_option("-r,--root", o.root, "root of broadcast and reduce")->capture_default_str();
  app.add_option("--phase-chunks", o.phase_chunks,
                 "chunks hierarchical and nvls pipeline their phases in (0: across hosts the "
                 "count with the least predicted time on this fabric)");
  app.add_option("--chunks-in-flight", o.chunks_in_flight,
                 "of those chunks, how many cross hosts at once (0: the bandwidth-delay product "
                 "on this fabric; 1: one after another)");
  app.add_option("--pipeline-chunks", o.pipeline_chunks,
                 "chunks a chain or tree pipelines (broadcast, reduce, tree)")
      ->capture_default_str();
  app.add_option("--transport", o.transport,
                 "rdma (RoCE/InfiniBand start-ups) or tcp (tens of us per message)")
      ->capture_default_str();
  app.add_option("--message-overhead-us", o.message_overhead_us,
                 "start-up of a message between hosts (default 0.8 us, rdma)");
  app.add_option("--nvlink-overhead-us", o.nvlink_overhead_us,
                 "start-up of an NVLink transfer (default 0.6 us)");
  app.add_option("--nvls-overhead-us", o.nvls_overhead_us,
                 "start-up of an NVLS reduction or multicast (default 3.4 us)");
  app.add_option("--switch-hop-us", o.switch_hop_us, "per network switch crossed (default 0.5 us)");
  app.add_option("--base-us", o.base_us, "paid once per collective (default 6.6 us)");
  auto* qps_option =
      app.add_option(
             "--qps", o.qps,
             "QPs per connection between hosts, each hashed on its own by ECMP (default 1; with "
             "--schedule on, one per NIC port of a GPU, two where the fabric is built short of "
             "up-links)")
          ->capture_default_str();
  app.add_option("--channels", o.channels,
                 "channels: rings or tree pairs side by side, each crossing hosts on its own "
                 "NIC (1-64; auto: one per GPU of a host for ring and tree, 1 otherwise "
                 "and in data mode)")
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
  auto* explain_option =
      app.add_option("--explain", o.explain,
                     "after each row, the tuner's candidates and why its pick won: predicted "
                     "(the default), or simulated (each candidate simulated too)")
          ->expected(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's own codes (104-114) would say nothing to a script; usage errors are 2 as
    // every other bad input, and --help is 0.
    return app.exit(e) == 0 ? 0 : 2;
  }
  o.gpus_given = gpus_option->count() > 0;
  o.qps_given = qps_option->count() > 0;
  if (explain_option->count() > 0 && o.explain.empty()) o.explain = "predicted";
  try {
    return run(o);
  } catch (const InputError& e) {
    std::cerr << "railcc-sim: " << e.what() << "\n";
    return 2;
  } catch (const LogicError& e) {
    // railcc broke its own rules: the input may be fine.
    std::cerr << "railcc-sim: internal error (a bug in railcc, not in your input): " << e.what()
              << "\n";
    return 3;
  } catch (const std::bad_alloc&) {
    std::cerr << "railcc-sim: out of memory; use fewer GPUs or steps mode\n";
    return 2;
  }
}
