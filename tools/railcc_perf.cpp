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
//   -B                backend: host (host memory over MPI or TCP); nccl (device memory,
//                     the NCCL transport: railcc's plans in waves of NCCL sends and
//                     receives, or NCCL's own collective where the tuner delegates);
//                     cuda-local (every rank in this one process on one GPU). The GPU
//                     backends are built where CUDA (and NCCL) were found.
//   --transport       how the ranks meet: auto (default), mpi or tcp. auto takes MPI when
//                     mpirun or srun started the job (and this build has MPI), TCP when a
//                     launcher set RANK and WORLD_SIZE without MPI (torchrun), and MPI, else
//                     TCP, for a process started alone. -B host moves its data that way too
//   --ranks --ranks-per-host   -B cuda-local: the ranks on the GPU and the modelled hosts
//   --lanes           -B cuda-local: the streams a call's channels run on (-B nccl reads
//                     RAILCC_LANES, as any NCCL communicator of railcc's)
//   --collective      all_reduce (default), reduce_scatter, all_gather, broadcast, reduce,
//                     all_to_all
//   --algo --inter --channels   the plan (default: the tuner's choice, a channel per lane)
//   --json FILE       the rows as JSON ("-": on stdout, instead of the table)
// Not taken: -g and -t (one GPU, one thread per process), -z (calls on one communicator
// complete in order, as on one stream), -p, -m. Each process is one rank (cuda-local: the
// process is every rank). Times are combined across ranks through the bootstrap. On
// -B nccl the calls are queued on a stream of the tool's, back to back, and the stream is
// synchronised after the timed ones, as nccl-tests times them.
// Columns: the out-of-place and in-place times (us, per iteration), algorithm and bus
// bandwidth (GB/s, nccl-tests' bus factors), #wrong (elements that failed the check,
// over all ranks), then `model` (us): the time the simulator predicts for this call on
// the tuner's fabric with this job's placement and plan (Communicator::model_time). On
// the host backend the model is a GPU fabric's, so measured times are far above it; on
// GPUs a row far above its model is a slow node or link.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "perf_report.hpp"
#include "railcc/bootstrap/launcher.hpp"
#include "railcc/launch/communicator.hpp"
#ifdef RAILCC_PERF_WITH_MPI
#include "railcc/mpi/bootstrap.hpp"
#include "railcc/mpi/communicator.hpp"
#endif
#ifdef RAILCC_PERF_WITH_CUDA
#include "perf_gpu.hpp"
#include "railcc/cuda/check.hpp"
#endif

namespace {

using namespace railcc;
using namespace railcc_tools::perf;

/// Where a size's buffers live: host memory, or the GPU's (-B nccl). Freed with it.
class PerfMemory {
 public:
  PerfMemory() = default;
  PerfMemory(const PerfMemory&) = delete;
  PerfMemory& operator=(const PerfMemory&) = delete;
  virtual ~PerfMemory() = default;
  virtual std::byte* allocate(std::size_t bytes) = 0;
  virtual void put(std::byte* dst, const std::byte* host, std::size_t bytes) = 0;
  virtual void get(std::byte* host, const std::byte* src, std::size_t bytes) = 0;
  /// The stream calls are queued on (null: host memory, calls complete as they return).
  virtual void* stream() = 0;
  /// Waits for what was queued on the stream.
  virtual void sync() = 0;
};

class HostPerfMemory final : public PerfMemory {
 public:
  std::byte* allocate(std::size_t bytes) override {
    blocks_.emplace_back(bytes, std::byte{0});
    return blocks_.back().data();
  }
  void put(std::byte* dst, const std::byte* host, std::size_t bytes) override {
    if (bytes != 0) std::memcpy(dst, host, bytes);
  }
  void get(std::byte* host, const std::byte* src, std::size_t bytes) override {
    if (bytes != 0) std::memcpy(host, src, bytes);
  }
  void* stream() override { return nullptr; }
  void sync() override {}

 private:
  std::vector<std::vector<std::byte>> blocks_;
};

#ifdef RAILCC_PERF_WITH_CUDA
class DevicePerfMemory final : public PerfMemory {
 public:
  DevicePerfMemory() { RAILCC_CUDA_CHECK(cudaStreamCreate(&stream_)); }
  ~DevicePerfMemory() override {
    (void)cudaStreamSynchronize(stream_);
    for (void* p : blocks_) (void)cudaFree(p);
    (void)cudaStreamDestroy(stream_);
  }
  std::byte* allocate(std::size_t bytes) override {
    void* p = nullptr;
    RAILCC_CUDA_CHECK(cudaMalloc(&p, std::max<std::size_t>(bytes, 1)));
    RAILCC_CUDA_CHECK(cudaMemset(p, 0, std::max<std::size_t>(bytes, 1)));
    blocks_.push_back(p);
    return static_cast<std::byte*>(p);
  }
  void put(std::byte* dst, const std::byte* host, std::size_t bytes) override {
    if (bytes != 0) RAILCC_CUDA_CHECK(cudaMemcpy(dst, host, bytes, cudaMemcpyHostToDevice));
  }
  void get(std::byte* host, const std::byte* src, std::size_t bytes) override {
    if (bytes != 0) RAILCC_CUDA_CHECK(cudaMemcpy(host, src, bytes, cudaMemcpyDeviceToHost));
  }
  void* stream() override { return stream_; }
  void sync() override { RAILCC_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
  std::vector<void*> blocks_;
};
#endif

/// One size of one placement: the buffers, the call, its check.
class SizeRun {
 public:
  SizeRun(Communicator& comm, const Run& q, int root, std::size_t count, bool in_place,
          PerfMemory& mem)
      : comm_(comm), q_(q), root_(root), count_(count), in_place_(in_place), mem_(mem) {
    const auto p = static_cast<std::size_t>(comm.size());
    e_ = size_of(q.type);
    const auto [in_elems, out_elems] = buffer_elements(q.coll, count, p);
    in_elems_ = in_elems;
    out_elems_ = out_elems;
    call_ = q.call;
    call_.stream = mem.stream();
    const std::size_t me = static_cast<std::size_t>(comm.rank());
    if (in_place_) {
      std::byte* one = mem.allocate(std::max(in_elems, out_elems) * e_);
      // NCCL's in-place layouts (communicator.hpp).
      switch (q.coll) {
        case Collective::reduce_scatter:
          send_ = one;
          recv_ = one + me * count * e_;
          break;
        case Collective::all_gather:
          recv_ = one;
          send_ = one + me * count * e_;
          break;
        default: send_ = recv_ = one; break;
      }
    } else {
      send_ = mem.allocate(in_elems * e_);
      recv_ = mem.allocate(out_elems * e_);
    }
  }

  /// Queues (device) or runs (host) one call.
  void call() {
    switch (q_.coll) {
      case Collective::all_reduce:
        comm_.all_reduce(send_, recv_, count_, q_.type, q_.op, call_);
        break;
      case Collective::reduce_scatter:
        comm_.reduce_scatter(send_, recv_, count_, q_.type, q_.op, call_);
        break;
      case Collective::all_gather: comm_.all_gather(send_, recv_, count_, q_.type, call_); break;
      case Collective::broadcast:
        comm_.broadcast(send_, recv_, count_, q_.type, root_, call_);
        break;
      case Collective::reduce:
        comm_.reduce(send_, recv_, count_, q_.type, q_.op, root_, call_);
        break;
      case Collective::all_to_all: comm_.all_to_all(send_, recv_, count_, q_.type, call_); break;
      case Collective::send_recv: break;
    }
  }

  /// Fills this rank's input, runs the call once, and counts the sampled output elements
  /// that are wrong on this rank.
  std::size_t check(std::uint64_t seed) {
    const int me = comm_.rank();
    std::vector<std::byte> host(std::max(in_elems_, out_elems_) * e_);
    fill_input(q_, me, comm_.size(), seed, host.data(), in_elems_);
    mem_.put(send_, host.data(), in_elems_ * e_);
    call();
    mem_.sync();
    mem_.get(host.data(), recv_, out_elems_ * e_);
    return count_wrong_output(q_, me, comm_.size(), count_, root_, seed, host.data(), out_elems_);
  }

 private:
  Communicator& comm_;
  const Run& q_;
  CallOptions call_;
  int root_;
  std::size_t count_;
  bool in_place_;
  PerfMemory& mem_;
  std::size_t e_ = 4;
  std::size_t in_elems_ = 0;
  std::size_t out_elems_ = 0;
  std::byte* send_ = nullptr;
  std::byte* recv_ = nullptr;
};

/// Every rank's `value`, through the bootstrap (any transport, any memory).
std::vector<double> gather(Communicator& comm, double value) {
  std::string mine(sizeof value, '\0');
  std::memcpy(mine.data(), &value, sizeof value);
  std::vector<double> out;
  for (const std::string& b : comm.transport().bootstrap().all_gather(mine)) {
    double v = 0;
    std::memcpy(&v, b.data(), sizeof v);
    out.push_back(v);
  }
  return out;
}

/// Seconds per iteration on this rank, combined across ranks as -a says.
double combine_ranks(Communicator& comm, double seconds, int average) {
  const std::vector<double> all = gather(comm, seconds);
  switch (average) {
    case 0: return all[0];
    case 1: {
      double sum = 0;
      for (double s : all) sum += s;
      return sum / static_cast<double>(all.size());
    }
    case 2: return *std::min_element(all.begin(), all.end());
    default: return *std::max_element(all.begin(), all.end());
  }
}

/// Where a size's buffers go on this backend.
std::unique_ptr<PerfMemory> memory_for(const Options& o) {
#ifdef RAILCC_PERF_WITH_CUDA
  if (o.backend == "nccl") return std::make_unique<DevicePerfMemory>();
#endif
  (void)o;
  return std::make_unique<HostPerfMemory>();
}

Timing time_placement(Communicator& comm, const Run& q, const Options& o, std::size_t count,
                      std::size_t size, bool in_place, std::uint64_t seed) {
  const auto mem = memory_for(o);
  SizeRun run(comm, q, o.root, count, in_place, *mem);
  Timing t;
  if (o.check == 1) {
    double wrong = 0;
    for (double w : gather(comm, static_cast<double>(run.check(seed)))) wrong += w;
    t.wrong = static_cast<long long>(wrong);
  }
  for (int i = 0; i < o.warmup; ++i) run.call();
  mem->sync();
  comm.transport().bootstrap().barrier();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.iters; ++i) run.call();
  mem->sync();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / o.iters;
  const double s = combine_ranks(comm, seconds, o.average);
  t.us = s * 1e6;
  t.algbw = static_cast<double>(size) / s / 1e9;
  t.busbw = t.algbw * bus_factor(q.coll, static_cast<std::size_t>(comm.size()));
  return t;
}

int run(Communicator& comm, const Options& o) {
  const Run q = check_options(o, comm.size());
  const bool lead = comm.rank() == 0;
  const bool json_out = o.json == "-";
  if (lead && !json_out)
    print_header(comm.transport_name(), comm.placement().describe(), comm.fabric_name(), q, o);
  Report report;
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
    if (lead && !json_out) print_row(q, row, o.root);
    report.add(row);
  }
  if (!lead) return report.wrong == 0 ? 0 : 1;
  return report.finish(q, o, comm.transport_name(), comm.size(), comm.placement().describe(),
                       comm.fabric_name());
}

/// Whether this build has backend `b`, or an InputError saying why not.
void check_backend(const std::string& b) {
  if (b == "host") return;
#ifdef RAILCC_PERF_WITH_NCCL
  if (b == "nccl") return;
#else
  if (b == "nccl")
    throw InputError(
        "-B nccl: this railcc-perf was built without NCCL (it needs the CUDA "
        "Toolkit and NCCL when railcc is built); -B host runs here");
#endif
#ifdef RAILCC_PERF_WITH_CUDA
  if (b == "cuda-local") return;
#else
  if (b == "cuda-local")
    throw InputError(
        "-B cuda-local: this railcc-perf was built without CUDA (it needs the "
        "CUDA Toolkit when railcc is built); -B host runs here");
#endif
  throw InputError("-B " + b + ": host, nccl or cuda-local");
}

/// Whether the ranks meet (and, on -B host, move data) over MPI (see the file's head), or
/// an InputError.
bool use_mpi(const Options& o, const Environment& env) {
  if (o.transport != "auto" && o.transport != "mpi" && o.transport != "tcp")
    throw InputError("--transport " + o.transport + ": auto, mpi or tcp");
  check_backend(o.backend);
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
  (void)mpi;
#endif
  int rc = 0;
  try {
#ifdef RAILCC_PERF_WITH_CUDA
    if (o.backend == "cuda-local") {
      const LaunchInfo launch = detect_launch(env);
      if (launch.world_size != 1)
        throw InputError("-B cuda-local runs every rank in this one process (--ranks), but " +
                         launch.describe() + ": start it alone");
      rc = run_cuda_local(o);
    }
#endif
#ifdef RAILCC_PERF_WITH_NCCL
    if (o.backend == "nccl") {
#ifdef RAILCC_PERF_WITH_MPI
      std::unique_ptr<MpiBootstrap> boot;
      if (mpi)
        boot = std::make_unique<MpiBootstrap>(MPI_COMM_WORLD,
                                              RailccSettings::from(env).bootstrap_timeout);
      Communicator comm = nccl_communicator(boot.get(), env);
#else
      Communicator comm = nccl_communicator(nullptr, env);
#endif
      rc = run(comm, o);
    }
#endif
    if (o.backend == "host") {
#ifdef RAILCC_PERF_WITH_MPI
      Communicator comm = mpi ? mpi_communicator() : tcp_communicator(env);
#else
      Communicator comm = tcp_communicator(env);
#endif
      rc = run(comm, o);
    }
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
  app.add_option("-B,--backend", o.backend, "host, nccl or cuda-local")->capture_default_str();
  app.add_option("--collective", o.collective,
                 "all_reduce, reduce_scatter, all_gather, broadcast, reduce, all_to_all")
      ->capture_default_str();
  app.add_option("--algo", o.algo, "auto, or ring, rabenseifner, tree, hierarchical, bruck, ...")
      ->capture_default_str();
  app.add_option("--inter", o.inter, "hierarchical's algorithm across hosts")
      ->capture_default_str();
  app.add_option("--channels", o.channels, "rings side by side (0: one per lane)")
      ->capture_default_str();
  app.add_option("--json", o.json, "write the rows as JSON to FILE ('-': stdout, no table)");
  app.add_option("--transport", o.transport, "how the ranks meet: auto, mpi or tcp")
      ->capture_default_str();
  app.add_option("--ranks", o.ranks, "-B cuda-local: ranks on the one GPU")->capture_default_str();
  app.add_option("--ranks-per-host", o.ranks_per_host,
                 "-B cuda-local: ranks per modelled host (0: all on one)")
      ->capture_default_str();
  app.add_option("--lanes", o.lanes,
                 "-B cuda-local: streams the channels run on (-B nccl: RAILCC_LANES)")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return start(argc, argv, o);
}
