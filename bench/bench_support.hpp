// Helpers shared by railcc's benchmarks.
#pragma once

#include <fstream>
#include <string>

namespace railcc_bench {

/// The process's peak resident memory (VmHWM) in MiB; 0 where /proc is not there.
inline double peak_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

}  // namespace railcc_bench
