// railcc-perf: railcc's collectives timed on real processes, reported as nccl-tests
// reports them, with the time the simulator predicts for this job next to each row.
//
//   mpirun -np 4 railcc-perf -B host -b 8 -e 256M -f 4
//   torchrun --nproc-per-node 4 --no-python railcc-perf -B host -b 8 -e 256M -f 4
//
// Flags as nccl-tests' where they make sense for a process per rank:
//   -b -e -i -f       sizes: from -b to -e, adding -i bytes, or multiplying by -f (> 1)
//   -n -w             timed and warm-up iterations per size
//   -c                check results (1, default) on a sampled set of elements per size
//   -o -d -r          reduction op, data type, root
//   -a                time across ranks: 0 rank 0's, 1 the average (default), 2 min, 3 max
//   -B                backend: host; the GPU backends come with CUDA and NCCL
//   --transport       the host backend's: auto (default), mpi or tcp. auto takes MPI when
//                     mpirun or srun started the job (and this build has MPI), TCP when a
//                     launcher set RANK and WORLD_SIZE without MPI (torchrun), and MPI, else
//                     TCP, for a process started alone
//   --collective      all_reduce (default), reduce_scatter, all_gather, broadcast, reduce,
//                     all_to_all
//   --algo --inter --channels   the plan (default: the tuner's choice)
//   --json FILE       the rows as JSON ("-": on stdout, instead of the table)
// Not taken: -g and -t (one GPU, one thread per process), -z (calls on one communicator
// complete in order, as on one stream), -p, -m. Each process is one rank. Times are
// combined across ranks with the communicator's own all-reduce and broadcast.
// Columns: the out-of-place and in-place times (us, per iteration), algorithm and bus
// bandwidth (GB/s, nccl-tests' bus factors), #wrong (elements that failed the check,
// over all ranks), then `model` (us): the time the simulator predicts for this call on
// the tuner's fabric with this job's placement and plan (Communicator::model_time). On
// the host backend the model is a GPU fabric's, so measured times are far above it; on
// GPUs a row far above its model is a slow node or link.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "railcc/bootstrap/launcher.hpp"
#include "railcc/coll/reference.hpp"
#include "railcc/launch/communicator.hpp"
#include "size_option.hpp"
#ifdef RAILCC_PERF_WITH_MPI
#include "railcc/mpi/communicator.hpp"
#endif

namespace {

using namespace railcc;

constexpr std::uint64_t max_perf_bytes = std::uint64_t{16} << 30;

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
};

/// What the options ask for, checked.
struct Run {
  Collective coll = Collective::all_reduce;
  DataType type = DataType::float32;
  ReduceOp op = ReduceOp::sum;
  CallOptions call;
  std::vector<std::size_t> sizes;
};

Run check_options(const Options& o, int ranks) {
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
  if (o.channels < 0 || o.channels > 64) throw InputError("--channels: 0 (the tuner's) to 64");
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

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// Element `i` of rank `r`'s input: counter-based, so any rank computes any rank's element
/// without generating the rest. Floats are uniform in [-1, 1) (in product_input_range for
/// prod), integers any bit pattern, as the simulator's data mode draws them.
void input_element(DataType t, ReduceOp op, int r, std::size_t i, int ranks, std::uint64_t seed,
                   std::byte* out) {
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

/// One size of one placement: the buffers, the call, its check.
class SizeRun {
 public:
  SizeRun(Communicator& comm, const Run& q, int root, std::size_t count, bool in_place)
      : comm_(comm), q_(q), root_(root), count_(count), in_place_(in_place) {
    const auto p = static_cast<std::size_t>(comm.size());
    e_ = size_of(q.type);
    const auto [in_elems, out_elems] = buffer_elements(q.coll, count, p);
    in_elems_ = in_elems;
    out_elems_ = out_elems;
    const std::size_t me = static_cast<std::size_t>(comm.rank());
    if (in_place_) {
      one_.assign(std::max(in_elems, out_elems) * e_, std::byte{0});
      // NCCL's in-place layouts (communicator.hpp).
      switch (q.coll) {
        case Collective::reduce_scatter:
          send_ = one_.data();
          recv_ = one_.data() + me * count * e_;
          break;
        case Collective::all_gather:
          recv_ = one_.data();
          send_ = one_.data() + me * count * e_;
          break;
        default: send_ = recv_ = one_.data(); break;
      }
    } else {
      in_.assign(in_elems * e_, std::byte{0});
      out_.assign(out_elems * e_, std::byte{0});
      send_ = in_.data();
      recv_ = out_.data();
    }
  }

  void call() {
    switch (q_.coll) {
      case Collective::all_reduce:
        comm_.all_reduce(send_, recv_, count_, q_.type, q_.op, q_.call);
        break;
      case Collective::reduce_scatter:
        comm_.reduce_scatter(send_, recv_, count_, q_.type, q_.op, q_.call);
        break;
      case Collective::all_gather: comm_.all_gather(send_, recv_, count_, q_.type, q_.call); break;
      case Collective::broadcast:
        comm_.broadcast(send_, recv_, count_, q_.type, root_, q_.call);
        break;
      case Collective::reduce:
        comm_.reduce(send_, recv_, count_, q_.type, q_.op, root_, q_.call);
        break;
      case Collective::all_to_all: comm_.all_to_all(send_, recv_, count_, q_.type, q_.call); break;
      case Collective::send_recv: break;
    }
  }

  /// Fills this rank's input, runs the call once, and counts the sampled output elements
  /// that are wrong on this rank.
  std::size_t check(std::uint64_t seed) {
    const int me = comm_.rank();
    for (std::size_t i = 0; i < in_elems_; ++i)
      input_element(q_.type, q_.op, me, i, comm_.size(), seed, send_ + i * e_);
    call();
    if (q_.coll == Collective::reduce && me != root_) return 0;
    std::size_t wrong = 0;
    std::vector<std::byte> elems(static_cast<std::size_t>(comm_.size()) * e_);
    std::vector<const std::byte*> each(static_cast<std::size_t>(comm_.size()));
    for (std::size_t j : sample(out_elems_)) {
      const std::byte* got = recv_ + j * e_;
      // Which rank's which input element lands at output j, or is reduced into it.
      std::size_t from = j;
      int from_rank = -1;
      const auto p = static_cast<std::size_t>(comm_.size());
      switch (q_.coll) {
        case Collective::reduce_scatter: from = static_cast<std::size_t>(me) * count_ + j; break;
        case Collective::all_gather:
          from_rank = static_cast<int>(j / count_);
          from = j % count_;
          break;
        case Collective::broadcast: from_rank = root_; break;
        case Collective::all_to_all:
          from_rank = static_cast<int>(j / count_);
          from = static_cast<std::size_t>(me) * count_ + j % count_;
          break;
        default: break;
      }
      if (from_rank >= 0) {
        std::byte want[8];
        input_element(q_.type, q_.op, from_rank, from, comm_.size(), seed, want);
        wrong += std::memcmp(want, got, e_) == 0 ? 0 : 1;
        continue;
      }
      for (std::size_t r = 0; r < p; ++r) {
        input_element(q_.type, q_.op, static_cast<int>(r), from, comm_.size(), seed,
                      elems.data() + r * e_);
        each[r] = elems.data() + r * e_;
      }
      wrong += element_matches(q_.type, expected_reduction(q_.type, q_.op, each), got) ? 0 : 1;
    }
    return wrong;
  }

 private:
  /// Every element of a small output; of a large one, 4,096 spread over it and both ends.
  static std::vector<std::size_t> sample(std::size_t n) {
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

  Communicator& comm_;
  const Run& q_;
  int root_;
  std::size_t count_;
  bool in_place_;
  std::size_t e_ = 4;
  std::size_t in_elems_ = 0;
  std::size_t out_elems_ = 0;
  std::vector<std::byte> in_, out_, one_;
  std::byte* send_ = nullptr;
  std::byte* recv_ = nullptr;
};

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

/// Seconds per iteration on this rank, combined across ranks as -a says (with the
/// communicator's own calls, on either transport).
double combine_ranks(Communicator& comm, double seconds, int average) {
  double out = seconds;
  switch (average) {
    case 0: comm.broadcast(&out, &out, 1, DataType::float64, 0); return out;
    case 1:
      comm.all_reduce(&out, &out, 1, DataType::float64, ReduceOp::sum);
      return out / comm.size();
    case 2: comm.all_reduce(&out, &out, 1, DataType::float64, ReduceOp::min); return out;
    default: comm.all_reduce(&out, &out, 1, DataType::float64, ReduceOp::max); return out;
  }
}

/// Returns once every rank has come to it: a one-element all-reduce.
void barrier(Communicator& comm) {
  std::int32_t one = 1;
  comm.all_reduce(&one, &one, 1, DataType::int32, ReduceOp::sum);
}

Timing time_placement(Communicator& comm, const Run& q, const Options& o, std::size_t count,
                      std::size_t size, bool in_place, std::uint64_t seed) {
  SizeRun run(comm, q, o.root, count, in_place);
  Timing t;
  if (o.check == 1) {
    auto wrong = static_cast<std::int64_t>(run.check(seed));
    comm.all_reduce(&wrong, &wrong, 1, DataType::int64, ReduceOp::sum);
    t.wrong = static_cast<long long>(wrong);
  }
  for (int i = 0; i < o.warmup; ++i) run.call();
  barrier(comm);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.iters; ++i) run.call();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / o.iters;
  const double s = combine_ranks(comm, seconds, o.average);
  t.us = s * 1e6;
  t.algbw = static_cast<double>(size) / s / 1e9;
  t.busbw = t.algbw * bus_factor(q.coll, static_cast<std::size_t>(comm.size()));
  return t;
}

std::string timing_columns(const std::optional<Timing>& t) {
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

void print_header(const Communicator& comm, const Run& q, const Options& o) {
  std::printf("# railcc-perf: %s, %s backend, %s\n", std::string(to_string(q.coll)).c_str(),
              comm.transport_name().c_str(), comm.placement().describe().c_str());
  std::printf(
      "# %zu sizes, %d warm-up and %d timed iterations each, check %s, time across "
      "ranks: %s\n",
      q.sizes.size(), o.warmup, o.iters, o.check ? "on" : "off",
      o.average == 0   ? "rank 0's"
      : o.average == 1 ? "average"
      : o.average == 2 ? "min"
                       : "max");
  std::printf("# model: the simulated time on %s with this placement and plan\n",
              comm.fabric_name().c_str());
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

void print_row(const Run& q, const Row& r, int root) {
  const bool rooted = q.coll == Collective::broadcast || q.coll == Collective::reduce;
  std::printf("  %10zu  %12zu  %8s  %6s  %6d%s%s  %10.2f  %s\n", r.size, r.count,
              std::string(to_string(q.type)).c_str(),
              reduces(q.coll) ? std::string(to_string(q.op)).c_str() : "none", rooted ? root : -1,
              timing_columns(r.out_of_place).c_str(), timing_columns(r.in_place).c_str(),
              r.model_us, r.algorithm.c_str());
  std::fflush(stdout);
}

nlohmann::json timing_json(const std::optional<Timing>& t) {
  if (!t) return nullptr;
  nlohmann::json j{{"time_us", t->us}, {"algbw_GBps", t->algbw}, {"busbw_GBps", t->busbw}};
  j["wrong"] = t->wrong < 0 ? nlohmann::json(nullptr) : nlohmann::json(t->wrong);
  return j;
}

int run(Communicator& comm, const Options& o) {
  const Run q = check_options(o, comm.size());
  const bool lead = comm.rank() == 0;
  const bool json_out = o.json == "-";
  if (lead && !json_out) print_header(comm, q, o);
  std::vector<Row> rows;
  long long wrong = 0;
  double busbw_sum = 0;
  std::size_t busbw_n = 0;
  const auto p = static_cast<std::size_t>(comm.size());
  for (std::size_t i = 0; i < q.sizes.size(); ++i) {
    const std::size_t count = count_for_size(q.coll, q.sizes[i], size_of(q.type), p);
    if (count == 0) continue;  // under one element per rank: nccl-tests skips it too
    Row row;
    row.count = count;
    row.size = size_for_count(q.coll, count, size_of(q.type), p);
    row.algorithm = comm.explain(q.coll, count, q.type, q.call).name();
    const std::uint64_t seed = 1000 + i;
    row.out_of_place = time_placement(comm, q, o, count, row.size, false, seed);
    if (q.coll != Collective::all_to_all)
      row.in_place = time_placement(comm, q, o, count, row.size, true, seed + 500);
    if (lead)
      row.model_us =
          comm.model_time(q.coll, count, q.type, q.op, o.root, false, q.call).in_seconds() * 1e6;
    for (const auto& t : {std::optional<Timing>(row.out_of_place), row.in_place}) {
      if (!t) continue;
      busbw_sum += t->busbw;
      ++busbw_n;
      wrong += std::max(0LL, t->wrong);
    }
    if (lead && !json_out) print_row(q, row, o.root);
    rows.push_back(row);
  }
  const double avg = busbw_n ? busbw_sum / static_cast<double>(busbw_n) : 0;
  if (lead && !json_out) {
    std::printf("# Out of bounds values : %lld %s\n", wrong, wrong == 0 ? "OK" : "FAILED");
    std::printf("# Avg bus bandwidth    : %g \n#\n", avg);
  }
  if (lead && !o.json.empty()) {
    nlohmann::json j;
    j["tool"] = "railcc-perf";
    j["collective"] = std::string(to_string(q.coll));
    j["backend"] = comm.transport_name();
    j["ranks"] = comm.size();
    j["placement"] = comm.placement().describe();
    j["model_fabric"] = comm.fabric_name();
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

/// Which transport the host backend takes (see the file's head), or an InputError.
bool use_mpi(const Options& o, const Environment& env) {
  if (o.transport != "auto" && o.transport != "mpi" && o.transport != "tcp")
    throw InputError("--transport " + o.transport + ": auto, mpi or tcp");
  if (o.backend != "host")
    throw InputError("-B " + o.backend +
                     ": this build runs the host backend (-B host); the GPU backends need "
                     "CUDA and NCCL");
#ifdef RAILCC_PERF_WITH_MPI
  if (o.transport == "auto") return launched_for_mpi(env);
  return o.transport == "mpi";
#else
  (void)env;
  if (o.transport == "mpi")
    throw InputError("--transport mpi: this railcc-perf was built without MPI; use tcp");
  return false;
#endif
}

/// Starts the job on the transport the options and launcher say, runs, and reports.
int start(int argc, char** argv, const Options& o) {
  const Environment env = Environment::process();
  bool mpi = false;
  int rank = 0;
  try {
    mpi = use_mpi(o, env);
    rank = detect_launch(env).rank;
  } catch (const InputError& e) {
    std::fprintf(stderr, "railcc-perf: error: %s\n", e.what());
    return 2;
  }
#ifdef RAILCC_PERF_WITH_MPI
  if (mpi) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  }
#else
  (void)argc;
  (void)argv;
#endif
  int rc = 0;
  try {
#ifdef RAILCC_PERF_WITH_MPI
    Communicator comm = mpi ? mpi_communicator() : tcp_communicator(env);
#else
    Communicator comm = tcp_communicator(env);
#endif
    rc = run(comm, o);
  } catch (const InputError& e) {
    // Every rank reads the same options and files: rank 0 says it once.
    if (rank == 0) std::fprintf(stderr, "railcc-perf: error: %s\n", e.what());
    rc = 2;
  } catch (const std::exception& e) {
    // A failed call (a peer that died or stopped). Over MPI the others may be stuck in
    // MPI; over TCP they fail on their own (at once, or within RAILCC_TIMEOUT).
    std::fprintf(stderr, "railcc-perf: rank %d: error: %s\n", rank, e.what());
#ifdef RAILCC_PERF_WITH_MPI
    if (mpi) MPI_Abort(MPI_COMM_WORLD, 3);
#endif
    rc = 3;
  }
#ifdef RAILCC_PERF_WITH_MPI
  if (mpi) MPI_Finalize();
#endif
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"railcc-perf: railcc's collectives on real processes, reported like nccl-tests"};
  app.add_option("-b,--minbytes", o.min_bytes, "smallest size (bytes; K, M, G)")
      ->capture_default_str();
  app.add_option("-e,--maxbytes", o.max_bytes, "largest size")->capture_default_str();
  app.add_option("-i,--stepbytes", o.step_bytes, "bytes added between sizes (without -f)")
      ->capture_default_str();
  app.add_option("-f,--stepfactor", o.factor, "factor between sizes (> 1 replaces -i)");
  app.add_option("-n,--iters", o.iters, "timed iterations per size")->capture_default_str();
  app.add_option("-w,--warmup_iters", o.warmup, "warm-up iterations per size")
      ->capture_default_str();
  app.add_option("-c,--check", o.check, "check results: 0 or 1")->capture_default_str();
  app.add_option("-o,--op", o.op, "sum, prod, min, max, avg")->capture_default_str();
  app.add_option("-d,--datatype", o.type, "float, double, half, bfloat16, int32, int64, uint8")
      ->capture_default_str();
  app.add_option("-r,--root", o.root, "root of broadcast and reduce")->capture_default_str();
  app.add_option("-a,--average", o.average, "time across ranks: 0 rank 0, 1 avg, 2 min, 3 max")
      ->capture_default_str();
  app.add_option("-B,--backend", o.backend, "host")->capture_default_str();
  app.add_option("--collective", o.collective,
                 "all_reduce, reduce_scatter, all_gather, broadcast, reduce, all_to_all")
      ->capture_default_str();
  app.add_option("--algo", o.algo, "auto, or ring, rabenseifner, tree, hierarchical, bruck, ...")
      ->capture_default_str();
  app.add_option("--inter", o.inter, "hierarchical's algorithm across hosts")
      ->capture_default_str();
  app.add_option("--channels", o.channels, "rings side by side (0: the tuner's)")
      ->capture_default_str();
  app.add_option("--json", o.json, "write the rows as JSON to FILE ('-': stdout, no table)");
  app.add_option("--transport", o.transport, "the host backend's: auto, mpi or tcp")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return start(argc, argv, o);
}
