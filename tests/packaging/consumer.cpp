// Reads an NCCL topology file through an installed or vendored railcc.
#include <railcc/formats.hpp>
#include <railcc/railcc.hpp>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const auto topo = railcc::read_nccl_topology_xml(argv[1]);
  std::cout << "railcc " << RAILCC_VERSION_MAJOR << "." << RAILCC_VERSION_MINOR << ": "
            << topo.gpus().size() << " GPUs, " << topo.nics().size() << " NICs\n";
  return topo.gpus().size() == 8 ? 0 : 1;
}
