// Helpers shared by railcc's tests.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/units.hpp"

namespace railcc_test {

/// The InputError message `fn` throws, or "(no error)".
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const railcc::InputError& e) {
    return e.what();
  }
  return "(no error)";
}

/// The LogicError message `fn` throws, or "(no error)".
template <class Fn>
std::string logic_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const railcc::LogicError& e) {
    return e.what();
  }
  return "(no error)";
}

/// `hosts` single-GPU hosts on one 400G leaf, cables of the given latency: the
/// uncontended fabric closed forms are checked on.
inline railcc::Fabric one_leaf(std::uint32_t hosts, railcc::Picoseconds cable) {
  railcc::Fabric f;
  for (std::uint32_t h = 0; h < hosts; ++h) f.add_endpoint(h, 0, 0);
  const auto leaf = f.add_switch(1);
  for (std::uint32_t h = 0; h < hosts; ++h) f.connect(h, leaf, railcc::Bandwidth::gbps(400), cable);
  f.finalize();
  return f;
}

}  // namespace railcc_test
