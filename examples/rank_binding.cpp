// What a launcher needs to place one training process per GPU: for each local rank, the
// CPUs to bind to, the NUMA node to allocate from, and the NIC to use (its rail).
//
//   railcc_example_rank_binding NCCL_TOPO_FILE
//
// Prints one line per GPU, e.g.
//   local_rank=0 gpu=0000:a4:00.0 numa=0 cpus=0-79 nic=mlx5_7 rail=0 path=PIX
#include <iostream>
#include <string>

#include "railcc/formats.hpp"
#include "railcc/topology.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " NCCL_TOPO_FILE\n";
    return 2;
  }
  try {
    const auto topo = railcc::read_nccl_topology_xml(argv[1]);
    const auto rails = railcc::nic_rails(topo);
    for (railcc::DeviceId gpu : topo.gpus()) {
      const auto a = railcc::gpu_affinity(topo, gpu, rails);
      const auto& nics = a.rail_nics.empty() ? a.nearest_nics : a.rail_nics;
      const railcc::DeviceId nic = nics.empty() ? railcc::no_device : nics.front();
      std::string rail = "none";
      if (nic != railcc::no_device) {
        if (const auto r = rails[static_cast<std::size_t>(topo.nic_ordinal(nic))]) {
          rail = std::to_string(*r);
        }
      }
      std::cout << "local_rank=" << topo.device(gpu).gpu().index
                << " gpu=" << topo.device(gpu).bus_id->to_string() << " numa=" << a.numa_node
                << " cpus=" << a.cpus.to_list()
                << " nic=" << (nic == railcc::no_device ? std::string("none") : topo.nic_name(nic))
                << " rail=" << rail << " path="
                << (nic == railcc::no_device ? std::string("-")
                                             : railcc::path_between(topo, gpu, nic).smi_label())
                << "\n";
    }
  } catch (const railcc::InputError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}
