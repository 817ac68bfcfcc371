// railcc-topo: what a GPU node is made of, and whether it is wired the way training needs.
//
//   railcc-topo                          this machine, through hwloc
//   railcc-topo --nccl-xml FILE          an NCCL topology file (NCCL_TOPO_FILE format)
//   railcc-topo --hwloc-xml FILE         an hwloc XML export (lstopo --of xml)
//   --format matrix|json|nccl-xml        output (default: matrix, as nvidia-smi topo -m)
//   --check                              node health check; exit status 1 on findings
//
// Exit status: 0 success, 1 the health check found problems, 2 bad input or usage.
#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>
#include <string>

#include "railcc/formats.hpp"
#include "railcc/topology.hpp"
#ifdef RAILCC_TOPO_WITH_HWLOC
#include "railcc/hwloc/hwloc_topology.hpp"
#endif

namespace {

railcc::NodeTopology load(const std::string& nccl_xml, const std::string& hwloc_xml) {
  if (!nccl_xml.empty()) return railcc::read_nccl_topology_xml(nccl_xml);
#ifdef RAILCC_TOPO_WITH_HWLOC
  if (!hwloc_xml.empty()) return railcc::read_hwloc_xml(hwloc_xml);
  return railcc::discover_node_topology();
#else
  (void)hwloc_xml;
  throw railcc::InputError(
      "this railcc-topo was built without hwloc: live discovery and --hwloc-xml are "
      "unavailable; use --nccl-xml FILE");
#endif
}

std::string check_report(const railcc::NodeTopology& topo) {
  const auto findings = railcc::check_node(topo);
  std::string out = "railcc-topo check: " + topo.source() + ": " +
                    std::to_string(topo.gpus().size()) + " GPUs, " +
                    std::to_string(topo.nics().size()) + " NICs: ";
  if (findings.empty()) return out + "no findings\n";
  out += std::to_string(findings.size()) + (findings.size() == 1 ? " finding\n" : " findings\n");
  for (const auto& f : findings) {
    out += "  [" + std::string(railcc::to_string(f.kind)) + "] " + f.message + "\n";
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"railcc-topo: GPU node topology (GPUs, NICs, NVLink, PCIe, NUMA) and health check"};
  std::string nccl_xml;
  std::string hwloc_xml;
  std::string format = "matrix";
  std::string output;
  bool check = false;
  auto* nccl_opt =
      app.add_option("--nccl-xml", nccl_xml, "NCCL topology XML file (NCCL_TOPO_FILE format)")
          ->check(CLI::ExistingFile);
  app.add_option("--hwloc-xml", hwloc_xml, "hwloc XML file (lstopo --of xml)")
      ->check(CLI::ExistingFile)
      ->excludes(nccl_opt);
  auto* format_opt = app.add_option("--format", format, "output format")
                         ->check(CLI::IsMember({"matrix", "json", "nccl-xml"}));
  app.add_option("-o,--output", output, "write the output to this file instead of stdout");
  app.add_flag("--check", check,
               "node health check: GPU-NIC distance, NUMA placement, PCIe link training, NIC "
               "speeds, NVLink counts; exit status 1 when anything is found");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  try {
    const auto topo = load(nccl_xml, hwloc_xml);
    for (const auto& note : topo.notes()) std::cerr << "note: " << note << "\n";

    std::string text;
    if (!check || format_opt->count() > 0) {
      if (format == "json")
        text = railcc::node_topology_to_json(topo).dump(2, ' ', false,
                                                        nlohmann::json::error_handler_t::replace) +
               "\n";
      else if (format == "nccl-xml")
        text = railcc::write_nccl_topology_xml(topo);
      else
        text = railcc::render_topology_matrix(topo);
    }
    bool findings = false;
    if (check) {
      findings = !railcc::check_node(topo).empty();
      text += (text.empty() ? "" : "\n") + check_report(topo);
    }
    if (output.empty()) {
      std::cout << text;
    } else {
      std::ofstream out(output, std::ios::binary);
      if (!(out << text)) throw railcc::InputError(output + ": cannot write output file");
    }
    return findings ? 1 : 0;
  } catch (const railcc::InputError& e) {
    std::cerr << "railcc-topo: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "railcc-topo: internal error: " << e.what() << "\n";
    return 3;
  }
}
