// Open MPI's own MPI_Allreduce timed as railcc-perf times railcc's all-reduce (the same
// sizes, warm-up, iterations, barrier before the timed loop, average over ranks), so the
// two can be put side by side on the same machine: bench/host_vs_mpi.sh does.
//
//   mpirun -np 4 mpi_allreduce_perf -b 8 -e 256M -f 4 [-n 20] [-w 5]
//
// Prints one row per size: bytes, time per call (us), bus bandwidth (GB/s, nccl-tests'
// all-reduce factor 2 (p - 1) / p). Floats, sum, out of place.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "../tools/size_option.hpp"
#include "railcc/error.hpp"
#include "railcc/mpi/mpi_api.hpp"

int main(int argc, char** argv) {
  std::string min_bytes = "8";
  std::string max_bytes = "256M";
  double factor = 4;
  int iters = 20;
  int warmup = 5;
  CLI::App app{"MPI_Allreduce timed as railcc-perf times railcc's all-reduce"};
  app.add_option("-b,--minbytes", min_bytes)->capture_default_str();
  app.add_option("-e,--maxbytes", max_bytes)->capture_default_str();
  app.add_option("-f,--stepfactor", factor)->capture_default_str();
  app.add_option("-n,--iters", iters)->capture_default_str();
  app.add_option("-w,--warmup_iters", warmup)->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::size_t lo = 0;
  std::size_t hi = 0;
  try {
    lo = railcc_tools::parse_byte_size("-b", min_bytes, std::uint64_t{16} << 30, "16 GiB");
    hi = railcc_tools::parse_byte_size("-e", max_bytes, std::uint64_t{16} << 30, "16 GiB");
  } catch (const railcc::InputError& e) {
    std::fprintf(stderr, "mpi_allreduce_perf: %s\n", e.what());
    return 2;
  }
  if (!(factor > 1) || iters < 1 || warmup < 0) {
    std::fprintf(stderr, "mpi_allreduce_perf: -f must be > 1, -n >= 1, -w >= 0\n");
    return 2;
  }
  MPI_Init(&argc, &argv);
  int rank = 0;
  int size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank == 0)
    std::printf("# MPI_Allreduce, %d ranks, float sum, out of place\n#%11s %10s %8s\n", size,
                "size", "time_us", "busbw");
  for (std::size_t bytes = lo; bytes <= hi;) {
    const std::size_t count = bytes / sizeof(float);
    if (count > 0) {
      std::vector<float> in(count, 1.0f);
      std::vector<float> out(count);
      auto call = [&] {
        MPI_Allreduce(in.data(), out.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD);
      };
      for (int i = 0; i < warmup; ++i) call();
      MPI_Barrier(MPI_COMM_WORLD);
      const double t0 = MPI_Wtime();
      for (int i = 0; i < iters; ++i) call();
      const double mine = (MPI_Wtime() - t0) / iters;
      double sum = 0;
      MPI_Allreduce(&mine, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      const double s = sum / size;
      const double busbw =
          static_cast<double>(count * sizeof(float)) / s / 1e9 * 2.0 * (size - 1) / size;
      if (rank == 0) std::printf(" %11zu %10.2f %8.3f\n", count * sizeof(float), s * 1e6, busbw);
    }
    const auto next = static_cast<std::size_t>(static_cast<double>(bytes) * factor);
    if (next <= bytes) break;
    bytes = next;
  }
  MPI_Finalize();
  return 0;
}
