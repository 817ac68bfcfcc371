// Steps mode against the per-operation schedule on pipelined all-reduce across hosts: a
// grid of host counts, algorithms, sizes (also a few bytes over a power of two) and chunk
// counts on the colossus preset, in place, bf16. Prints every case and the largest gap
// per family; docs/collectives.md ("Steps mode") quotes its summary.
//   railcc_steps_vs_timing [--hosts 2,3,4,6,8] [--chunks 1,2,8,16,32,64]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "railcc/backend/sim_backend.hpp"
#include "railcc/coll/collectives.hpp"
#include "railcc/fabric/presets.hpp"

using namespace railcc;

namespace {

std::vector<int> list_of(const char* text) {
  std::vector<int> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::atoi(item.c_str()));
  return out;
}

double simulated_us(const Fabric& fabric, int ranks, SimMode mode, std::size_t count,
                    Algorithm algo, Algorithm inter, int chunks) {
  SimBackendConfig cfg;
  cfg.mode = mode;
  SimBackend b(fabric, ranks, cfg);
  b.set_reduction({DataType::bfloat16, ReduceOp::sum});
  const BufferId buf = b.allocate(count * 2);
  CollectiveCall call{count, buf, buf};
  call.phase_chunks = chunks;
  all_reduce(b, call, algo, inter);
  return b.run().makespan.in_us();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> hosts{2, 3, 4, 6, 8};
  std::vector<int> chunks{1, 2, 8, 16, 32, 64};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--hosts") {
      hosts = list_of(argv[i + 1]);
    } else if (flag == "--chunks") {
      chunks = list_of(argv[i + 1]);
    } else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  const std::size_t sizes[] = {std::size_t{8} << 20, std::size_t{32} << 20, std::size_t{128} << 20,
                               std::size_t{512} << 20};
  const std::size_t extra[] = {0, 16, 8198};
  // Families: (hosts a power of two or not) x (ring or Rabenseifner across hosts).
  double worst[2][2] = {{0, 0}, {0, 0}};
  int cases[2][2] = {{0, 0}, {0, 0}};
  std::printf("%5s %-13s %-13s %11s %6s %12s %12s %9s\n", "hosts", "algorithm", "across hosts",
              "bytes", "chunks", "timing_us", "steps_us", "gap_%");
  for (const int h : hosts) {
    ColossusParams params;
    params.gpus = static_cast<std::uint32_t>(h * 8);
    const Fabric fabric = colossus(params);
    const bool power = (h & (h - 1)) == 0;
    for (const Algorithm algo : {Algorithm::hierarchical, Algorithm::nvls}) {
      for (const Algorithm inter : {Algorithm::ring, Algorithm::rabenseifner}) {
        for (const std::size_t size : sizes) {
          for (const std::size_t over : extra) {
            const std::size_t bytes = size + over;
            for (const int k : chunks) {
              const double timing =
                  simulated_us(fabric, h * 8, SimMode::timing, bytes / 2, algo, inter, k);
              const double steps =
                  simulated_us(fabric, h * 8, SimMode::steps, bytes / 2, algo, inter, k);
              const double gap = (steps / timing - 1) * 100;
              const int fam = inter == Algorithm::ring ? 0 : 1;
              worst[power ? 0 : 1][fam] = std::max(worst[power ? 0 : 1][fam], std::abs(gap));
              ++cases[power ? 0 : 1][fam];
              std::printf("%5d %-13s %-13s %11zu %6d %12.3f %12.3f %9.4f\n", h,
                          std::string(to_string(algo)).c_str(),
                          std::string(to_string(inter)).c_str(), bytes, k, timing, steps, gap);
              std::fflush(stdout);
            }
          }
        }
      }
    }
  }
  const char* hosts_name[2] = {"hosts a power of two", "other host counts"};
  const char* inter_name[2] = {"ring across hosts", "Rabenseifner across hosts"};
  for (int p = 0; p < 2; ++p) {
    for (int f = 0; f < 2; ++f) {
      std::printf("# %s, %s: %d cases, largest gap %.4f%%\n", hosts_name[p], inter_name[f],
                  cases[p][f], worst[p][f]);
    }
  }
  return 0;
}
