#include <doctest/doctest.h>

#include "railcc/topology/pci.hpp"
#include "railcc/units.hpp"

using railcc::Bandwidth;
using railcc::PciBusId;
using railcc::PcieLink;

TEST_CASE("Bandwidth named constructors agree on decimal units") {
  CHECK(Bandwidth::gbps(400).in_GBps() == doctest::Approx(50.0));
  CHECK(Bandwidth::mbps(200000).in_gbps() == doctest::Approx(200.0));
  CHECK(Bandwidth::GBps(25).in_bytes_per_second() == doctest::Approx(25e9));
  CHECK(Bandwidth::MBps(25000) == Bandwidth::GBps(25));
  CHECK(Bandwidth::GBps(25) * 18 == Bandwidth::GBps(450));
  CHECK(Bandwidth::GBps(450) / Bandwidth::GBps(50) == doctest::Approx(9.0));
  CHECK(Bandwidth::gbps(100) < Bandwidth::gbps(400));
}

TEST_CASE("PciBusId parses and prints sysfs addresses") {
  const auto id = PciBusId::parse("0000:a4:00.0");
  REQUIRE(id);
  CHECK(id->domain == 0);
  CHECK(id->bus == 0xa4);
  CHECK(id->device == 0);
  CHECK(id->function == 0);
  CHECK(id->to_string() == "0000:a4:00.0");
  CHECK(PciBusId::parse("A4:1F.7")->to_string() == "0000:a4:1f.7");
  CHECK(PciBusId::parse("ffff:ff:01.0")->to_string() == "ffff:ff:01.0");  // Azure placeholder
  CHECK(*PciBusId::parse("0000:3b:00.0") < *PciBusId::parse("0000:a4:00.0"));
  CHECK(*PciBusId::parse("0000:ff:00.0") < *PciBusId::parse("0001:00:00.0"));
  for (const char* bad :
       {"", "a4", "0000:a4:00", "0000:a4:20.0", "0000:a4:00.8", "zz:00.0", "0000:1a4:00.0",
        "10000:00:00.0", "0000:a4:00.0x", "::.", "0000:-1:00.0"}) {
    CAPTURE(bad);
    CHECK_FALSE(PciBusId::parse(bad));
  }
}

TEST_CASE("PCIe link rates follow the PCI-SIG encodings") {
  // hwloc reports 15.753846 GB/s for a Gen3 x16 link: 8 GT/s x 128/130 x 16 / 8.
  CHECK(PcieLink{3, 16, {}}.bandwidth()->in_GBps() == doctest::Approx(15.753846).epsilon(1e-6));
  CHECK(PcieLink{5, 16, {}}.bandwidth()->in_GBps() == doctest::Approx(63.015385).epsilon(1e-6));
  CHECK(PcieLink{4, 16, {}}.bandwidth()->in_GBps() == doctest::Approx(31.507692).epsilon(1e-6));
  CHECK(PcieLink{1, 1, {}}.bandwidth()->in_GBps() == doctest::Approx(0.25));
  CHECK(PcieLink{2, 4, {}}.bandwidth()->in_GBps() == doctest::Approx(2.0));
  CHECK_FALSE(PcieLink{}.bandwidth());
  CHECK_FALSE(PcieLink{5, {}, {}}.bandwidth());
  CHECK(PcieLink{{}, {}, Bandwidth::GBps(15.75)}.bandwidth() == Bandwidth::GBps(15.75));
  CHECK(PcieLink{5, 16, {}}.describe() == "Gen5 x16 (32.0 GT/s)");
  CHECK(PcieLink{}.describe() == "unknown");
  CHECK(railcc::pcie_x16_bandwidth(5) > Bandwidth::gbps(400));  // why 400G NICs need Gen5
  CHECK(railcc::pcie_x16_bandwidth(4) < Bandwidth::gbps(400));
}

TEST_CASE("PCI class tests match by base and sub-class") {
  using namespace railcc::pci_class;
  CHECK(is_display(0x030200));
  CHECK(is_display(0x030000));
  CHECK(is_network(0x020700));
  CHECK(is_network(0x020000));
  CHECK(is_pci_bridge(0x060400));
  CHECK_FALSE(is_pci_bridge(0x068000));
  CHECK(is_other_bridge(0x068000));
  CHECK_FALSE(is_display(0x020000));
}
