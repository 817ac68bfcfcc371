// railcc/units.hpp: strong unit types for quantities that cross module boundaries.
//
// Bandwidth is stored as bytes per second and built only through named constructors
// (`Bandwidth::gbps(400)` for 400 Gb/s, `Bandwidth::GBps(50)` for 50 GB/s), so a
// gigabit can never be passed where a gigabyte is meant. Decimal prefixes throughout,
// as vendors quote link speeds: 1 GB/s = 1e9 bytes/s, 1 Gb/s = 1e9 bits/s.
// Time is integer picoseconds (`Picoseconds`), as in htsim: exact sums, no drift, and
// +-106 days of range. Sizes are `Bytes` (binary prefixes: `Bytes::MiB(64)`).
#pragma once

#include <cmath>
#include <compare>
#include <cstdint>
#include <limits>

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

/// A duration or a point in simulated time, in integer picoseconds.
class Picoseconds {
 public:
  constexpr Picoseconds() = default;
  static constexpr Picoseconds ps(std::int64_t v) { return Picoseconds(v); }
  /// Rounded to the nearest picosecond.
  static constexpr Picoseconds ns(double v) { return Picoseconds(round(v * 1e3)); }
  static constexpr Picoseconds us(double v) { return Picoseconds(round(v * 1e6)); }
  static constexpr Picoseconds ms(double v) { return Picoseconds(round(v * 1e9)); }
  static constexpr Picoseconds seconds(double v) { return Picoseconds(round(v * 1e12)); }
  static constexpr Picoseconds max() {
    return Picoseconds(std::numeric_limits<std::int64_t>::max());
  }
  /// Conversions from floating point saturate at this many picoseconds, just under 2^63:
  /// a cost past 106 days is "too long" to every caller, and converting it unchecked
  /// would be undefined.
  static constexpr double saturation = 9.2e18;

  [[nodiscard]] constexpr std::int64_t count() const { return ps_; }
  [[nodiscard]] constexpr double in_ns() const { return static_cast<double>(ps_) / 1e3; }
  [[nodiscard]] constexpr double in_us() const { return static_cast<double>(ps_) / 1e6; }
  [[nodiscard]] constexpr double in_ms() const { return static_cast<double>(ps_) / 1e9; }
  [[nodiscard]] constexpr double in_seconds() const { return static_cast<double>(ps_) / 1e12; }

  constexpr auto operator<=>(const Picoseconds&) const = default;
  friend constexpr Picoseconds operator+(Picoseconds a, Picoseconds b) {
    return Picoseconds(a.ps_ + b.ps_);
  }
  friend constexpr Picoseconds operator-(Picoseconds a, Picoseconds b) {
    return Picoseconds(a.ps_ - b.ps_);
  }
  friend constexpr Picoseconds operator*(Picoseconds a, std::int64_t k) {
    return Picoseconds(a.ps_ * k);
  }
  friend constexpr Picoseconds operator*(std::int64_t k, Picoseconds a) { return a * k; }
  constexpr Picoseconds& operator+=(Picoseconds o) {
    ps_ += o.ps_;
    return *this;
  }

 private:
  constexpr explicit Picoseconds(std::int64_t v) : ps_(v) {}
  /// Saturates at the ends of the range (and NaN at the top).
  static constexpr std::int64_t round(double v) {
    if (!(v < saturation)) return std::numeric_limits<std::int64_t>::max();
    if (v <= -saturation) return std::numeric_limits<std::int64_t>::min();
    return static_cast<std::int64_t>(v < 0 ? v - 0.5 : v + 0.5);
  }
  std::int64_t ps_ = 0;
};

/// An amount of data.
class Bytes {
 public:
  constexpr Bytes() = default;
  static constexpr Bytes of(std::uint64_t n) { return Bytes(n); }
  static constexpr Bytes KiB(std::uint64_t n) { return Bytes(n << 10); }  // NOLINT
  static constexpr Bytes MiB(std::uint64_t n) { return Bytes(n << 20); }  // NOLINT
  static constexpr Bytes GiB(std::uint64_t n) { return Bytes(n << 30); }  // NOLINT

  [[nodiscard]] constexpr std::uint64_t count() const { return n_; }
  constexpr auto operator<=>(const Bytes&) const = default;
  friend constexpr Bytes operator+(Bytes a, Bytes b) { return Bytes(a.n_ + b.n_); }
  friend constexpr Bytes operator*(Bytes a, std::uint64_t k) { return Bytes(a.n_ * k); }
  constexpr Bytes& operator+=(Bytes o) {
    n_ += o.n_;
    return *this;
  }

 private:
  constexpr explicit Bytes(std::uint64_t n) : n_(n) {}
  std::uint64_t n_ = 0;
};

/// Time to push `size` through `rate`, rounded up to a whole picosecond (a transfer is
/// not complete before its last byte is).
inline Picoseconds transfer_time(Bytes size, Bandwidth rate) {
  const long double ps = static_cast<long double>(size.count()) * 1e12L /
                         static_cast<long double>(rate.in_bytes_per_second());
  // Saturates as Picoseconds' conversions do (a zero rate included).
  if (!(ps < Picoseconds::saturation)) return Picoseconds::max();
  return Picoseconds::ps(static_cast<std::int64_t>(std::ceil(ps - 1e-6L)));
}

RAILCC_NAMESPACE_END
