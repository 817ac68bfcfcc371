// railcc/units.hpp: strong unit types for quantities that cross module boundaries.
//
// Bandwidth is stored as bytes per second and built only through named constructors
// (`Bandwidth::gbps(400)` for 400 Gb/s, `Bandwidth::GBps(50)` for 50 GB/s), so a
// gigabit can never be passed where a gigabyte is meant. Decimal prefixes throughout,
// as vendors quote link speeds: 1 GB/s = 1e9 bytes/s, 1 Gb/s = 1e9 bits/s.
#pragma once

#include <compare>

#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

/// A data rate in one direction. Value type; all operations are constexpr.
class Bandwidth {
 public:
  constexpr Bandwidth() = default;

  static constexpr Bandwidth bytes_per_second(double v) { return Bandwidth(v); }
  /// Gigabits per second (network convention: a "400G" NIC is `gbps(400)`).
  static constexpr Bandwidth gbps(double v) { return Bandwidth(v * 1e9 / 8.0); }
  /// Megabits per second (NCCL's `<net speed=...>` unit).
  static constexpr Bandwidth mbps(double v) { return Bandwidth(v * 1e6 / 8.0); }
  /// Gigabytes per second (GPU and PCIe convention).
  static constexpr Bandwidth GBps(double v) { return Bandwidth(v * 1e9); }  // NOLINT
  /// Megabytes per second (hwloc's NVLinkBandwidth distances unit).
  static constexpr Bandwidth MBps(double v) { return Bandwidth(v * 1e6); }  // NOLINT

  [[nodiscard]] constexpr double in_bytes_per_second() const { return bytes_per_second_; }
  [[nodiscard]] constexpr double in_gbps() const { return bytes_per_second_ * 8.0 / 1e9; }
  [[nodiscard]] constexpr double in_mbps() const { return bytes_per_second_ * 8.0 / 1e6; }
  [[nodiscard]] constexpr double in_GBps() const { return bytes_per_second_ / 1e9; }  // NOLINT

  constexpr auto operator<=>(const Bandwidth&) const = default;

  friend constexpr Bandwidth operator+(Bandwidth a, Bandwidth b) {
    return Bandwidth(a.bytes_per_second_ + b.bytes_per_second_);
  }
  friend constexpr Bandwidth operator*(Bandwidth a, double k) {
    return Bandwidth(a.bytes_per_second_ * k);
  }
  friend constexpr Bandwidth operator*(double k, Bandwidth a) { return a * k; }
  friend constexpr Bandwidth operator/(Bandwidth a, double k) {
    return Bandwidth(a.bytes_per_second_ / k);
  }
  /// Ratio of two bandwidths (dimensionless).
  friend constexpr double operator/(Bandwidth a, Bandwidth b) {
    return a.bytes_per_second_ / b.bytes_per_second_;
  }

 private:
  constexpr explicit Bandwidth(double bytes_per_second) : bytes_per_second_(bytes_per_second) {}
  double bytes_per_second_ = 0.0;
};

RAILCC_NAMESPACE_END
