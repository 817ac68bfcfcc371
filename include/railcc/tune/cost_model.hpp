// railcc/tune/cost_model.hpp: which algorithm a collective should use, by predicted cost.
//
// The alpha-beta model of docs/facts.md section 4 with the fabric's own numbers: per-step
// latency alpha (start-up plus path latency, NVLink or network) and the bottleneck rate
// (NVLink per GPU, NIC per GPU). Like NCCL's tuner it predicts, it does not simulate, so
// choosing costs microseconds; the simulator then times the chosen algorithm. Network
// steps between neighbouring hosts (a ring) pay the latency of a path through one leaf;
// steps between distant ranks (Rabenseifner, trees, Bruck) pay the latency of a path
// through the top tier. NVLS (where the fabric's NVSwitches reduce) moves each byte once
// each way per GPU at nvls_efficiency of the NVLink rate.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "railcc/coll/algorithms/all_reduce.hpp"
#include "railcc/coll/collective.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/sim/engine.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

/// An algorithm and, for hierarchical and nvls over several hosts, the one it runs
/// across hosts.
struct AlgorithmChoice {
  Algorithm algorithm = Algorithm::ring;
  Algorithm inter_host = Algorithm::rabenseifner;
  Picoseconds predicted;
  bool across_hosts = false;  ///< the ranks span several hosts (inter_host matters)
};

inline std::string to_string(const AlgorithmChoice& c) {
  std::string s(to_string(c.algorithm));
  if (c.across_hosts && (c.algorithm == Algorithm::hierarchical || c.algorithm == Algorithm::nvls))
    s += "+" + std::string(to_string(c.inter_host));
  return s;
}

/// One (algorithm, inter-host algorithm) pair the tuner weighed for a call: its predicted
/// time, or why it cannot run here.
struct TunerCandidate {
  AlgorithmChoice choice;
  std::string excluded;  ///< empty: it runs here; otherwise the reason it does not

  [[nodiscard]] bool runs() const { return excluded.empty(); }
};

/// How much longer than its bytes at the NIC rate a step between hosts takes, because of
/// how the fabric routes its flows: the busiest link's seconds for its bytes over a flow's
/// at the NIC rate (tune/step_load.hpp measures them). 1 where a step's flows have the
/// fabric to themselves; 2 where a link carries two whole flows, or where one QP takes
/// one port of a dual-plane NIC. Empty lists mean 1 throughout (a model of the fabric's
/// rates alone, CostModel::of).
struct StepSlowdowns {
  /// Flat mixed radix over the ranks, per level (1 for a level inside hosts).
  std::vector<double> mixed_radix;
  /// Flat Rabenseifner, per halving step, the farthest partner first (1 inside hosts).
  std::vector<double> rabenseifner;
  /// Across hosts (hierarchical and nvls): mixed radix over the hosts, per level.
  std::vector<double> hosts_mixed_radix;
  /// Across hosts: Rabenseifner over the hosts, per halving step, the farthest first.
  std::vector<double> hosts_rabenseifner;
  /// A ring's step between neighbouring hosts, every GPU on its own rail (the flat ring's
  /// channels across hosts, and hierarchical's ring across hosts).
  double ring = 1;

  static double at(const std::vector<double>& v, std::size_t i) {
    return i < v.size() ? v[i] : 1.0;
  }
};

/// The model's inputs, read from a fabric and the simulator's configuration.
struct CostModel {
  std::size_t ranks = 1;
  std::size_t hosts = 1;
  std::size_t per_host = 1;  ///< ranks per host
  double nvlink_Bps = 0;     ///< per GPU, each way
  double nic_Bps = 0;        ///< per GPU, each way (all its NIC ports)
  Picoseconds alpha_nvlink;
  Picoseconds alpha_nvls;  ///< an NVLS stage (the switch's reduction or multicast)
  Picoseconds collective_base = nccl_collective_base;  ///< paid once per collective
  Picoseconds alpha_near;                              ///< network step through one leaf
  /// A network step between the job's farthest hosts on one rail (up to the tier where
  /// they meet, and down).
  Picoseconds alpha_far;
  /// A network step between the job's farthest GPUs on any rails.
  Picoseconds alpha_cross;
  int pipeline_chunks = 8;
  /// Chunks hierarchical and nvls pipeline their phases in across hosts (0: the count
  /// with the least predicted time, phase_chunks_for).
  int phase_chunks = 0;
  /// Of those, chunks between hosts at once (0: the bandwidth-delay product,
  /// chunks_in_flight_for).
  int chunks_in_flight = 0;
  /// Channels of the ring and tree algorithms: across hosts each crosses on its own NIC
  /// (channel_rotation), so min(channels, per_host) NICs of every host carry them.
  int channels = 1;
  bool switch_reduction = false;  ///< the hosts' NVSwitches reduce (NVLS)
  double nvls_efficiency = nccl_nvls_efficiency;
  /// Steps between hosts slowed by how their flows share links (none: as fast as the NICs).
  StepSlowdowns slowdowns;

  /// The switch endpoint e's first NIC port reaches (no_node: it has none).
  static NodeIndex leaf_of(const Fabric& f, NodeIndex e) {
    for (LinkIndex l : f.up_links(e))
      if (f.link(l).level > 0) return f.link(l).to;
    return no_node;
  }
  /// A step's latency without its start-up: the NIC cables and the leaf, then up the first
  /// up-links from `leaf` to tier `top` and back down the same way.
  static Picoseconds climb(const Fabric& f, NodeIndex leaf, int top, Picoseconds nic_latency,
                           const SimConfig& sim) {
    Picoseconds t = nic_latency * 2 + sim.switch_hop;
    NodeIndex at = leaf;
    for (int tier = 1; tier < top && at != no_node && !f.up_links(at).empty(); ++tier) {
      const auto& k = f.link(f.up_links(at).front());
      t = t + k.latency * 2 + sim.switch_hop * 2;
      at = k.to;
    }
    return t;
  }

  /// For `ranks` ranks on the fabric's first endpoints (what SimBackend does by default).
  static CostModel of(const Fabric& f, std::size_t ranks, const SimConfig& sim = {}) {
    if (ranks == 0 || ranks > f.endpoint_count()) {
      throw InputError("cost model: " + std::to_string(ranks) + " ranks on a fabric of " +
                       std::to_string(f.endpoint_count()) + " GPUs");
    }
    CostModel m;
    m.ranks = ranks;
    std::uint32_t last_host = f.host(0);
    m.hosts = 1;
    std::size_t first_host_ranks = 0;
    for (NodeIndex e = 0; e < ranks; ++e) {
      if (f.host(e) != last_host) {
        ++m.hosts;
        last_host = f.host(e);
      }
      if (f.host(e) == f.host(0)) ++first_host_ranks;
    }
    m.per_host = first_host_ranks;
    m.switch_reduction = f.nvswitch_reduction() && f.nvswitch_of(0) != no_node;
    Picoseconds nic_latency;
    for (LinkIndex l : f.up_links(0)) {
      const auto& k = f.link(l);
      if (k.level == 0) {
        m.nvlink_Bps += k.usable().in_bytes_per_second();
        m.alpha_nvlink = sim.nvlink_message_overhead + k.latency * 2;
        m.alpha_nvls = sim.nvls_message_overhead + k.latency;
      } else {
        m.nic_Bps += k.usable().in_bytes_per_second();
        nic_latency = k.latency;
      }
    }
    m.alpha_near = sim.message_overhead + nic_latency * 2 + sim.switch_hop;
    // A far step climbs to the lowest tier where the job's GPUs meet, not to the fabric's
    // top: 64 GPUs in one colossus array never leave their rails' leaves. Rail-aligned
    // steps (every algorithm's partners between hosts share a local index) climb to where
    // the hosts' first GPUs meet; steps between any two GPUs (pairwise all-to-all) to where
    // every GPU does.
    const NodeIndex leaf0 = leaf_of(f, 0);
    int rail_tier = 1, any_tier = 1;
    for (NodeIndex e = 0; e < ranks; ++e) {
      const NodeIndex leaf = leaf_of(f, e);
      const int t = leaf0 == no_node || leaf == no_node
                        ? 1
                        : std::min(meeting_tier(f, leaf0, leaf), f.tiers());
      any_tier = std::max(any_tier, t);
      if (e == 0 || f.host(e) != f.host(e - 1)) rail_tier = std::max(rail_tier, t);
    }
    m.alpha_far = sim.message_overhead + climb(f, leaf0, rail_tier, nic_latency, sim);
    m.alpha_cross = sim.message_overhead + climb(f, leaf0, any_tier, nic_latency, sim);
    return m;
  }

  /// Predicted time of one collective of `bytes` (nccl-tests' size: the per-rank buffer
  /// for all-reduce, broadcast and reduce; the whole p-rank buffer for all-gather,
  /// reduce-scatter and all-to-all).
  [[nodiscard]] Picoseconds predict(Collective c, Algorithm a, Algorithm inter,
                                    std::size_t bytes) const {
    const Picoseconds moves = predict_steps(c, a, inter, bytes);
    return moves > Picoseconds{} && moves < Picoseconds::max() ? moves + collective_base : moves;
  }

  /// predict() without the collective's base latency: its steps alone.
  [[nodiscard]] Picoseconds predict_steps(Collective c, Algorithm a, Algorithm inter,
                                          std::size_t bytes) const {
    if (ranks <= 1) return Picoseconds{};  // nothing moves (and a 1-GPU host has no NVLink)
    const auto n = static_cast<double>(bytes);
    const auto p = static_cast<double>(ranks);
    const bool multi = hosts > 1;
    const double B = multi ? nic_Bps : nvlink_Bps;
    const Picoseconds near = multi ? alpha_near : alpha_nvlink;
    const Picoseconds far = multi ? alpha_far : alpha_nvlink;
    auto secs = [](double s) { return Picoseconds::seconds(s); };
    auto log2c = [](double x) { return x <= 1 ? 0.0 : std::ceil(std::log2(x)); };
    // Recursive halving-doubling over q ranks of a vector of v bytes, where steps whose
    // partner is within the host (distance < local) go over NVLink.
    auto rab = [&](double q, double v, double local) {
      double pow2 = 1;
      while (pow2 * 2 <= q) pow2 *= 2;
      Picoseconds t;
      std::size_t step = 0;
      for (double d = pow2 / 2; d >= 1; d /= 2, ++step) {
        const bool nv = d < local;
        const Picoseconds alpha = nv ? alpha_nvlink : far;
        const double rate = nv ? nvlink_Bps : B / StepSlowdowns::at(slowdowns.rabenseifner, step);
        t += (alpha + secs(v * d / pow2 / rate)) * 2;
      }
      if (q != pow2) t += (local > 1 ? alpha_nvlink + secs(v / nvlink_Bps) : far + secs(v / B)) * 2;
      return t;
    };
    // Mixed radix over q ranks of v bytes: per prime factor f of q, a ring reduce-scatter
    // and all-gather of f - 1 steps over the part held; a level whose groups lie inside
    // hosts (of `local` consecutive ranks) runs over NVLink.
    auto mixed = [&](std::size_t q, double v, std::size_t local) {
      Picoseconds t;
      std::size_t stride = 1, level = 0;
      double held = v;
      for (std::size_t f : mixed_radix_factors(q)) {
        const bool nv = local % (stride * f) == 0;
        const Picoseconds alpha = nv ? alpha_nvlink : far;
        const double rate = nv ? nvlink_Bps : B / StepSlowdowns::at(slowdowns.mixed_radix, level);
        held /= static_cast<double>(f);
        t += (alpha + secs(held / rate)) * static_cast<std::int64_t>(2 * (f - 1));
        stride *= f;
        ++level;
      }
      return t;
    };
    const double K = pipeline_chunks;
    const auto G = static_cast<double>(per_host);
    // Across hosts, the channels' rings and trees cross on min(channels, G) NICs of each
    // host; a ring's GPU then sends (G - 1) / G of its bytes over NVLink.
    const double nics = std::min(static_cast<double>(std::max(1, channels)), G);
    const double ring_nic_Bps = nic_Bps * nics / slowdowns.ring;
    const double ring_Bps =
        multi ? std::min(ring_nic_Bps, G > 1 ? nvlink_Bps * G / (G - 1) : ring_nic_Bps)
              : nvlink_Bps;
    switch (c) {
      case Collective::all_reduce:
        switch (a) {
          case Algorithm::ring:
            return (near + secs(n / p / ring_Bps)) * static_cast<std::int64_t>(2 * (ranks - 1));
          case Algorithm::rabenseifner: return rab(p, n, static_cast<double>(per_host));
          case Algorithm::mixed_radix: return mixed(ranks, n, per_host);
          case Algorithm::tree: {
            // NCCL's shape: a chain of G GPUs in each host, a double binary tree over the
            // H hosts' heads, up and back down: 2 (G - 1) + 2 ceil(log2(H + 1)) stages a
            // chunk passes through. Per chunk a head's NIC sends (and receives) 2 n / K
            // over the two trees (~2 n beta, docs/facts.md section 4), spread over the
            // channels' NICs; inside a host each GPU sends a chunk up and one down the
            // chain. The K-chunk pipeline costs (stages + K - 1) stage times.
            const double stages =
                2 * (G - 1) + (multi ? 2 * log2c(static_cast<double>(hosts) + 1) : 0);
            const double per_chunk = multi ? 2 * n / K / (nic_Bps * nics) : 2 * n / K / nvlink_Bps;
            return (far + secs(per_chunk)) * static_cast<std::int64_t>(stages + K - 1);
          }
          case Algorithm::hierarchical:
          case Algorithm::nvls: {
            const auto H = static_cast<double>(hosts);
            Picoseconds nv = G > 1 ? (alpha_nvlink + secs(n / G / nvlink_Bps)) *
                                         static_cast<std::int64_t>(2 * (per_host - 1))
                                   : Picoseconds{};
            if (a == Algorithm::nvls) {
              // K chunks: the reduce-scatter of chunk k + 1 (n / K out of every GPU)
              // overlaps the multicast of chunk k (n / K into every GPU), each direction
              // carrying (1 + 1/G) n / K per stage, plus a stage to fill and one to drain.
              const auto K =
                  static_cast<double>(hierarchical_phase_chunks(a, bytes, hosts, per_host));
              const double rate = nvlink_Bps * nvls_efficiency;
              nv = alpha_nvls * static_cast<std::int64_t>(K + 1) +
                   secs(((K - 1) * (1 + 1 / G) + 2) * n / K / rate);
            }
            if (H <= 1) return nv;
            // The pipeline is cut by the NIC-rate costs (phase_chunks_for, what runs) and
            // priced with the steps' slowdowns.
            const PhaseCosts pc = phase_costs(a, inter, bytes);
            const std::size_t K = phase_chunks > 0
                                      ? static_cast<std::size_t>(phase_chunks)
                                      : pc.best_chunks(static_cast<std::size_t>(chunks_in_flight));
            const std::size_t D = std::clamp<std::size_t>(
                chunks_in_flight > 0 ? static_cast<std::size_t>(chunks_in_flight)
                                     : pc.in_flight_for(K),
                1, K);
            return secs(phase_costs(a, inter, bytes, true).pipelined(K, D));
          }
          default: break;
        }
        break;
      case Collective::reduce_scatter:
      case Collective::all_gather:
        if (a == Algorithm::bruck) {
          Picoseconds t;
          for (double have = 1; have < p; have *= 2)
            t += far + secs(std::min(have, p - have) * n / p / B);
          return t;
        }
        return (near + secs(n / p / ring_Bps)) * static_cast<std::int64_t>(ranks - 1);
      case Collective::broadcast:
      case Collective::reduce:
        return (near + secs(n / K / B)) * static_cast<std::int64_t>(p - 1 + K - 1);
      case Collective::all_to_all: {
        if (!multi) return far + secs(n * (p - 1) / p / B);
        if (a != Algorithm::pxn) return alpha_cross + secs(n * (p - 1) / p / B);
        // PXN: its NVLink phase, then its rail phase (coll/algorithms/all_to_all.hpp).
        const auto G = static_cast<double>(per_host);
        const auto H = static_cast<double>(hosts);
        const Picoseconds nv =
            G > 1 ? alpha_nvlink + secs(n * (G - 1) / G / nvlink_Bps) : Picoseconds{};
        return nv + far + secs(n * (H - 1) / H / nic_Bps);
      }
      case Collective::send_recv: return near + secs(n / B);
    }
    return Picoseconds::max();
  }

  /// What the phases of hierarchical or nvls all-reduce of `bytes` across hosts cost on
  /// this fabric (the inputs of the chunk count, PhaseCosts): at the NIC rate, or with
  /// the steps between hosts slowed as `slowdowns` says.
  ///
  /// The chunk count and chunks in flight are chosen at the NIC rate. Chosen with the
  /// slowdowns they gained where every step is slowed alike (llama3's short aggregation
  /// tier, 1 GiB with QPs chosen: 6,099 to 5,928 us) and lost where the slowdown is blind
  /// ECMP's worst link (colossus at 100,000 GPUs, 1 GiB: 9,683 to 10,023 us; 2 GiB:
  /// 19,145 to 21,563): chunks in flight put steps of different chunks on the links at
  /// once, whose busiest links differ, so the pipeline sees less than each step's worst.
  [[nodiscard]] PhaseCosts phase_costs(Algorithm a, Algorithm inter, std::size_t bytes,
                                       bool slowed = false) const {
    PhaseRates r;
    r.nvlink_Bps = nvlink_Bps;
    r.nic_Bps = nic_Bps;
    r.nvls_efficiency = nvls_efficiency;
    r.nvlink_step = alpha_nvlink.in_seconds();
    r.nvls_step = alpha_nvls.in_seconds();
    r.near_step = alpha_near.in_seconds();
    r.far_step = alpha_far.in_seconds();
    // The phases count bytes at one NIC rate: slowed steps count as a slower NIC, by the
    // mean of their slowdowns weighted by the bytes each step carries.
    if (slowed) r.nic_Bps = nic_Bps / hosts_slowdown(inter);
    return hierarchical_phase_costs(a, inter, bytes, hosts, per_host, r);
  }
  /// Of the all-reduce across hosts by `inter`, how much longer its steps between hosts
  /// take than their bytes at the NIC rate: the slowdowns of its steps, each weighted by
  /// the bytes it carries (1 without slowdowns).
  [[nodiscard]] double hosts_slowdown(Algorithm inter) const {
    double bytes = 0, slowed = 0;
    auto add = [&](double b, double s) {
      bytes += b;
      slowed += b * s;
    };
    if (inter == Algorithm::mixed_radix) {
      double held = 1;
      std::size_t level = 0;
      for (std::size_t f : mixed_radix_factors(hosts)) {
        held /= static_cast<double>(f);
        add(held * static_cast<double>(2 * (f - 1)),
            StepSlowdowns::at(slowdowns.hosts_mixed_radix, level++));
      }
    } else if (inter == Algorithm::rabenseifner) {
      double pow2 = 1;
      while (pow2 * 2 <= static_cast<double>(hosts)) pow2 *= 2;
      std::size_t step = 0;
      for (double d = pow2 / 2; d >= 1; d /= 2)
        add(2 * d / pow2, StepSlowdowns::at(slowdowns.hosts_rabenseifner, step++));
      if (pow2 != static_cast<double>(hosts)) add(2, 1);  // the fold, in and out
    } else {
      add(1, slowdowns.ring);
    }
    return bytes > 0 ? slowed / bytes : 1.0;
  }

  /// The chunks hierarchical or nvls all-reduce of `bytes` should pipeline its phases in
  /// (the call's phase_chunks): `phase_chunks` when set, else the count with the least
  /// predicted time, 1 on one host (where the algorithm keeps its own policy: 0).
  [[nodiscard]] int phase_chunks_for(Algorithm a, Algorithm inter, std::size_t bytes) const {
    if (phase_chunks > 0) return phase_chunks;
    if (hosts <= 1 || (a != Algorithm::hierarchical && a != Algorithm::nvls)) return 0;
    return static_cast<int>(
        phase_costs(a, inter, bytes).best_chunks(static_cast<std::size_t>(chunks_in_flight)));
  }
  /// Of phase_chunks_for(a, inter, bytes) chunks, how many hierarchical or nvls all-reduce
  /// should have between hosts at once (the call's chunks_in_flight): `chunks_in_flight`
  /// when set, else the bandwidth-delay product on this fabric (PhaseCosts::in_flight_for);
  /// 0 where the algorithm keeps its own policy (one host, other algorithms).
  [[nodiscard]] int chunks_in_flight_for(Algorithm a, Algorithm inter, std::size_t bytes) const {
    const int K = phase_chunks_for(a, inter, bytes);
    if (K <= 0) return 0;
    if (chunks_in_flight > 0) return std::min(chunks_in_flight, K);
    return static_cast<int>(
        phase_costs(a, inter, bytes).in_flight_for(static_cast<std::size_t>(K)));
  }

  /// Every algorithm of the collective (hierarchical and nvls once per inter-host
  /// algorithm, the others once) in the applicability table's order, with its predicted
  /// time, or the reason it does not run on these ranks: what choose() picks from, and
  /// what `railcc-sim --explain` prints.
  [[nodiscard]] std::vector<TunerCandidate> candidates(Collective c, std::size_t bytes) const {
    std::vector<TunerCandidate> out;
    const bool whole_hosts = ranks == hosts * per_host;
    for (Algorithm a : algorithms_for(c)) {
      const bool hier = a == Algorithm::hierarchical || a == Algorithm::nvls;
      std::string excluded;
      if (hier && per_host < 2) excluded = "one GPU per host: no NVLink phase to split off";
      if (hier && !whole_hosts) excluded = "the ranks do not fill their hosts evenly";
      if (a == Algorithm::hierarchical && hosts < 2) excluded = "one host: nvls or ring do this";
      if (a == Algorithm::nvls && !switch_reduction)
        excluded = "the NVSwitches do not reduce (no NVLS)";
      for (Algorithm inter : inter_host_algorithms()) {
        if (!hier && inter != inter_host_algorithms().front()) continue;
        TunerCandidate k;
        k.choice = {a, inter, Picoseconds::max(), hosts > 1};
        k.excluded = excluded;
        if (k.runs()) k.choice.predicted = predict(c, a, inter, bytes);
        out.push_back(std::move(k));
        if (!hier || hosts < 2) break;  // across hosts matters only where there are hosts
      }
    }
    return out;
  }

  /// The fastest predicted algorithm for the collective at this size (the first of the
  /// candidates on a tie).
  [[nodiscard]] AlgorithmChoice choose(Collective c, std::size_t bytes) const {
    AlgorithmChoice best;
    best.predicted = Picoseconds::max();
    for (const TunerCandidate& k : candidates(c, bytes)) {
      if (k.runs() && k.choice.predicted < best.predicted) best = k.choice;
    }
    return best;
  }

  /// The time no algorithm can beat at this size: the bytes each GPU must move over its
  /// bottleneck (NVLink inside a host, its share of the host's NICs across hosts), latency
  /// left out. Zero for one rank. Where the NVSwitch reduces, an all-reduce inside a host
  /// needs each GPU to send its data once and receive the result once (n each way).
  [[nodiscard]] Picoseconds bandwidth_bound(Collective c, std::size_t bytes) const {
    const auto n = static_cast<double>(bytes);
    const auto G = static_cast<double>(per_host);
    const auto H = static_cast<double>(hosts);
    double moved_nv = 0;   // bytes each GPU moves over NVLink at least
    double moved_net = 0;  // bytes each GPU's NIC moves at least
    switch (c) {
      case Collective::all_reduce:
        moved_nv = hosts == 1 ? (switch_reduction && G > 1 ? n : 2 * (G - 1) / G * n) : 0;
        moved_net = 2 * (H - 1) / H * n / G;
        break;
      case Collective::reduce_scatter:
      case Collective::all_gather:
        moved_nv = hosts == 1 ? (G - 1) / G * n : 0;
        moved_net = (H - 1) / H * n / G;
        break;
      case Collective::all_to_all:
        moved_nv = hosts == 1 ? (G - 1) / G * n : 0;
        moved_net = (H - 1) / H * n;
        break;
      default:
        moved_nv = hosts == 1 && ranks > 1 ? n : 0;
        moved_net = hosts > 1 ? n : 0;
        break;
    }
    const double t =
        std::max(nvlink_Bps > 0 ? moved_nv / nvlink_Bps : 0, nic_Bps > 0 ? moved_net / nic_Bps : 0);
    return Picoseconds::seconds(t);
  }
};

RAILCC_NAMESPACE_END
