// perf_report.hpp: what railcc-perf's backends share: the options, the inputs every rank
// can compute for any rank, the check of an output, and the nccl-tests table and JSON.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "railcc/coll/call.hpp"
#include "railcc/coll/collective.hpp"
#include "railcc/coll/data_type.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/coll/reference.hpp"
#include "railcc/comm/communicator.hpp"
#include "railcc/error.hpp"
#include "size_option.hpp"

namespace railcc_tools::perf {

using namespace railcc;

inline constexpr std::uint64_t max_perf_bytes = std::uint64_t{16} << 30;

struct Options {
  std::string min_bytes = "32M";
  std::string max_bytes = "32M";
  std::string step_bytes = "1M";
  double factor = 1;
  int iters = 20;
  int warmup = 5;
  int check = 1;
  std::string op = "sum";
  std::string type = "float";
  int root = 0;
  int average = 1;
  std::string backend = "host";
  std::string transport = "auto";
  std::string collective = "all_reduce";
  std::string algo = "auto";
  std::string inter = "rabenseifner";
  int channels = 0;
  std::string json;
  int ranks = 8;           ///< -B cuda-local: ranks on the one GPU
  int ranks_per_host = 0;  ///< -B cuda-local: ranks per modelled host (0: all on one)
  int lanes = 1;           ///< -B cuda-local: streams the channels run on (comm/waves.hpp)
};

/// What the options ask for, checked.
struct Run {
  Collective coll = Collective::all_reduce;
  DataType type = DataType::float32;
  ReduceOp op = ReduceOp::sum;
  CallOptions call;
  std::vector<std::size_t> sizes;
};

inline Run check_options(const Options& o, int ranks) {
  Run q;
  const auto c = parse_collective(o.collective);
  if (!c || *c == Collective::send_recv)
    throw InputError("--collective " + o.collective +
                     ": not one of all_reduce, reduce_scatter, all_gather, broadcast, reduce, "
                     "all_to_all");
  q.coll = *c;
  const auto t = parse_data_type(o.type);
  if (!t)
    throw InputError("-d " + o.type +
                     ": not a type (float, double, half, bfloat16, int32, int64, uint8)");
  q.type = *t;
  const auto op = parse_reduce_op(o.op);
  if (!op) throw InputError("-o " + o.op + ": not an op (sum, prod, min, max, avg)");
  q.op = *op;
  if (o.algo != "auto") {
    const auto a = parse_algorithm(o.algo);
    if (!a) throw InputError("--algo " + o.algo + ": not an algorithm");
    check_applies(q.coll, *a);
    q.call.algorithm = a;
  }
  const auto inter = parse_algorithm(o.inter);
  if (!inter || !runs_across_hosts(*inter))
    throw InputError("--inter " + o.inter + ": ring, rabenseifner or mixed_radix");
  if (q.call.algorithm == Algorithm::hierarchical) q.call.inter_host = inter;
  if (o.channels < 0 || o.channels > 64) throw InputError("--channels: 0 (one per lane) to 64");
  q.call.channels = o.channels;
  if (o.root < 0 || o.root >= ranks)
    throw InputError("-r " + std::to_string(o.root) + ": not a rank of " + std::to_string(ranks));
  if (o.iters < 1 || o.warmup < 0) throw InputError("-n must be at least 1 and -w at least 0");
  if (o.average < 0 || o.average > 3) throw InputError("-a: 0, 1, 2 or 3");
  if (o.check < 0 || o.check > 1) throw InputError("-c: 0 or 1");
  if (!(o.factor >= 1) || !std::isfinite(o.factor)) throw InputError("-f must be at least 1");
  const std::size_t lo = railcc_tools::parse_byte_size("-b", o.min_bytes, max_perf_bytes,
                                                       "the 16 GiB railcc-perf allocates");
  const std::size_t hi = railcc_tools::parse_byte_size("-e", o.max_bytes, max_perf_bytes,
                                                       "the 16 GiB railcc-perf allocates");
  const std::size_t step = railcc_tools::parse_byte_size("-i", o.step_bytes, max_perf_bytes,
                                                         "the 16 GiB railcc-perf allocates");
  if (lo > hi) throw InputError("-b is larger than -e");
  if (o.factor <= 1 && step == 0) throw InputError("-i 0 with no -f: the sizes never grow");
  for (std::size_t s = lo; s <= hi;) {
    q.sizes.push_back(s);
    const std::size_t next =
        o.factor > 1 ? static_cast<std::size_t>(static_cast<double>(s) * o.factor) : s + step;
    if (next <= s) break;  // -b 0 with a factor
    s = next;
  }
  return q;
}

inline std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// Element `i` of rank `r`'s input: counter-based, so any rank computes any rank's element
/// without generating the rest. Floats are uniform in [-1, 1) (in product_input_range for
/// prod), integers any bit pattern, as the simulator's data mode draws them.
inline void input_element(DataType t, ReduceOp op, int r, std::size_t i, int ranks,
                          std::uint64_t seed, std::byte* out) {
  const std::uint64_t bits =
      splitmix(seed ^ (static_cast<std::uint64_t>(r) << 48) ^ static_cast<std::uint64_t>(i));
  const double unit = static_cast<double>(bits >> 11) * 0x1p-53;  // [0, 1)
  double x = 2 * unit - 1;
  if (op == ReduceOp::prod) {
    const auto [lo, hi] = product_input_range(t, static_cast<std::size_t>(ranks));
    x = lo + unit * (hi - lo);
  }
  store_element(t, out, x, bits);
}

struct Timing {
  double us = 0;
  double algbw = 0;
  double busbw = 0;
  long long wrong = -1;  // -1: not checked
};

struct Row {
  std::size_t size = 0;
  std::size_t count = 0;
  Timing out_of_place;
  std::optional<Timing> in_place;
  double model_us = 0;
  std::string algorithm;
};

inline std::string timing_columns(const std::optional<Timing>& t) {
  char text[96];
  if (!t) {
    std::snprintf(text, sizeof text, "  %7s  %6s  %6s  %6s", "N/A", "N/A", "N/A", "N/A");
    return text;
  }
  char wrong[24];
  if (t->wrong < 0)
    std::snprintf(wrong, sizeof wrong, "%s", "N/A");
  else
    std::snprintf(wrong, sizeof wrong, "%lld", t->wrong);
  // As nccl-tests prints times: fewer decimals as they grow, so the column stays 7 wide.
  const char* time_format = t->us >= 10'000 ? "%7.0f" : t->us >= 100 ? "%7.1f" : "%7.2f";
  char time[24];
  std::snprintf(time, sizeof time, time_format, t->us);
  std::snprintf(text, sizeof text, "  %s  %6.2f  %6.2f  %6s", time, t->algbw, t->busbw, wrong);
  return text;
}

/// The table's head: what runs where, and the columns.
inline void print_header(const std::string& backend, const std::string& placement,
                         const std::string& fabric, const Run& q, const Options& o) {
  std::printf("# railcc-perf: %s, %s backend, %s\n", std::string(to_string(q.coll)).c_str(),
              backend.c_str(), placement.c_str());
  std::printf(
      "# %zu sizes, %d warm-up and %d timed iterations each, check %s, time across "
      "ranks: %s\n",
      q.sizes.size(), o.warmup, o.iters, o.check ? "on" : "off",
      o.average == 0   ? "rank 0's"
      : o.average == 1 ? "average"
      : o.average == 2 ? "min"
                       : "max");
  std::printf("# model: the simulated time on %s with this placement and plan\n", fabric.c_str());
  std::printf("#\n");
  // The two placements' blocks of columns, each titled over its middle (as nccl-tests).
  auto centered = [](const std::string& title, std::size_t width) {
    const std::size_t left = (width - title.size()) / 2;
    return std::string(left, ' ') + title + std::string(width - left - title.size(), ' ');
  };
  const std::string lead(51, ' ');  // "#" and these: the first five columns
  std::printf("#%s%s%s\n", lead.c_str(), centered("out-of-place", 33).c_str(),
              centered("in-place", 33).c_str());
  std::printf("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s  %10s  %s\n",
              "size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time",
              "algbw", "busbw", "#wrong", "model", "algorithm");
  std::printf("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s  %10s\n", "(B)",
              "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)",
              "", "(us)");
  std::fflush(stdout);
}

inline void print_row(const Run& q, const Row& r, int root) {
  const bool rooted = q.coll == Collective::broadcast || q.coll == Collective::reduce;
  std::printf("  %10zu  %12zu  %8s  %6s  %6d%s%s  %10.2f  %s\n", r.size, r.count,
              std::string(to_string(q.type)).c_str(),
              reduces(q.coll) ? std::string(to_string(q.op)).c_str() : "none", rooted ? root : -1,
              timing_columns(r.out_of_place).c_str(), timing_columns(r.in_place).c_str(),
              r.model_us, r.algorithm.c_str());
  std::fflush(stdout);
}

inline nlohmann::json timing_json(const std::optional<Timing>& t) {
  if (!t) return nullptr;
  nlohmann::json j{{"time_us", t->us}, {"algbw_GBps", t->algbw}, {"busbw_GBps", t->busbw}};
  j["wrong"] = t->wrong < 0 ? nlohmann::json(nullptr) : nlohmann::json(t->wrong);
  return j;
}

/// Every element of a small output; of a large one, 4,096 spread over it and both ends.
inline std::vector<std::size_t> sample(std::size_t n) {
  std::vector<std::size_t> s;
  if (n <= 65'536) {
    for (std::size_t j = 0; j < n; ++j) s.push_back(j);
    return s;
  }
  for (std::size_t j = 0; j < 64; ++j) s.push_back(j);
  for (std::size_t k = 0; k < 4096; ++k) s.push_back(n / 4096 * k + k % 7);
  for (std::size_t j = n - 64; j < n; ++j) s.push_back(j);
  return s;
}

/// Rank `me`'s input of a call of `count` (in_elems elements at `send`).
inline void fill_input(const Run& q, int me, int ranks, std::uint64_t seed, std::byte* send,
                       std::size_t in_elems) {
  const std::size_t e = size_of(q.type);
  for (std::size_t i = 0; i < in_elems; ++i)
    input_element(q.type, q.op, me, i, ranks, seed, send + i * e);
}

/// The sampled elements of rank `me`'s output (`recv`, out_elems) that are wrong.
inline std::size_t count_wrong_output(const Run& q, int me, int ranks, std::size_t count, int root,
                                      std::uint64_t seed, const std::byte* recv,
                                      std::size_t out_elems) {
  if (q.coll == Collective::reduce && me != root) return 0;
  const std::size_t e = size_of(q.type);
  const auto p = static_cast<std::size_t>(ranks);
  std::size_t wrong = 0;
  std::vector<std::byte> elems(p * e);
  std::vector<const std::byte*> each(p);
  for (std::size_t j : sample(out_elems)) {
    const std::byte* got = recv + j * e;
    // Which rank's which input element lands at output j, or is reduced into it.
    std::size_t from = j;
    int from_rank = -1;
    switch (q.coll) {
      case Collective::reduce_scatter: from = static_cast<std::size_t>(me) * count + j; break;
      case Collective::all_gather:
        from_rank = static_cast<int>(j / count);
        from = j % count;
        break;
      case Collective::broadcast: from_rank = root; break;
      case Collective::all_to_all:
        from_rank = static_cast<int>(j / count);
        from = static_cast<std::size_t>(me) * count + j % count;
        break;
      default: break;
    }
    if (from_rank >= 0) {
      std::byte want[8];
      input_element(q.type, q.op, from_rank, from, ranks, seed, want);
      wrong += std::memcmp(want, got, e) == 0 ? 0 : 1;
      continue;
    }
    for (std::size_t r = 0; r < p; ++r) {
      input_element(q.type, q.op, static_cast<int>(r), from, ranks, seed, elems.data() + r * e);
      each[r] = elems.data() + r * e;
    }
    wrong += element_matches(q.type, expected_reduction(q.type, q.op, each), got) ? 0 : 1;
  }
  return wrong;
}

/// The table's rows so far, and its end: the summary line and the JSON.
struct Report {
  std::vector<Row> rows;
  long long wrong = 0;
  double busbw_sum = 0;
  std::size_t busbw_n = 0;

  void add(const Row& row) {
    for (const auto& t : {std::optional<Timing>(row.out_of_place), row.in_place}) {
      if (!t) continue;
      busbw_sum += t->busbw;
      ++busbw_n;
      wrong += std::max(0LL, t->wrong);
    }
    rows.push_back(row);
  }

  /// Prints the summary (unless the JSON goes to stdout) and writes the JSON; returns
  /// the exit status: 1 if an element was wrong.
  int finish(const Run& q, const Options& o, const std::string& backend, int ranks,
             const std::string& placement, const std::string& fabric) const {
    const bool json_out = o.json == "-";
    const double avg = busbw_n ? busbw_sum / static_cast<double>(busbw_n) : 0;
    if (!json_out) {
      std::printf("# Out of bounds values : %lld %s\n", wrong, wrong == 0 ? "OK" : "FAILED");
      std::printf("# Avg bus bandwidth    : %g \n#\n", avg);
    }
    if (!o.json.empty()) {
      nlohmann::json j;
      j["tool"] = "railcc-perf";
      j["collective"] = std::string(to_string(q.coll));
      j["backend"] = backend;
      j["ranks"] = ranks;
      j["placement"] = placement;
      j["model_fabric"] = fabric;
      j["type"] = std::string(to_string(q.type));
      j["op"] = std::string(to_string(q.op));
      j["iterations"] = o.iters;
      j["warmup"] = o.warmup;
      j["rows"] = nlohmann::json::array();
      for (const Row& r : rows) {
        j["rows"].push_back({{"size", r.size},
                             {"count", r.count},
                             {"algorithm", r.algorithm},
                             {"out_of_place", timing_json(r.out_of_place)},
                             {"in_place", timing_json(r.in_place)},
                             {"model_us", r.model_us}});
      }
      j["avg_busbw_GBps"] = avg;
      j["wrong"] = wrong;
      if (json_out) {
        std::cout << j.dump(2) << "\n";
      } else {
        std::ofstream f(o.json);
        f << j.dump(2) << "\n";
        if (!f) throw InputError("--json: cannot write " + o.json);
      }
    }
    return wrong == 0 ? 0 : 1;
  }
};

}  // namespace railcc_tools::perf
