// railcc::core with nothing but the standard library (and POSIX sockets): this file is
// compiled with only railcc's include directory on the path, by g++ and (when present) by
// nvcc.
#include "railcc/railcc.hpp"

int railcc_core_only_check() {
  railcc::NodeTopology topo;
  railcc::CpuInfo cpu;
  cpu.numa_id = 0;
  const auto c = topo.add_cpu(cpu);
  const auto g =
      topo.add_device(railcc::DeviceKind::gpu, c, railcc::PciBusId::parse("0000:01:00.0"), {}, {});
  topo.finalize();
  return static_cast<int>(railcc::path_between(topo, g, g).smi);
}
