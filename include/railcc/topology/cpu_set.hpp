// railcc/topology/cpu_set.hpp: a set of logical CPUs.
//
// Reads the two forms tools print: the Linux/NCCL mask ("0000ffff,ffffffff", 32-bit
// hex groups, most significant first) and the list form ("0-47,96-143") that
// nvidia-smi and hwloc show; prints the list form.
#pragma once

#include <bit>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

class CpuSet {
 public:
  /// Largest CPU index accepted from a file; a larger one is a typo, not a machine.
  static constexpr std::size_t max_cpus = 1u << 16;

  CpuSet() = default;

  void insert(std::size_t cpu) {
    if (cpu / 64 >= words_.size()) words_.resize(cpu / 64 + 1, 0);
    words_[cpu / 64] |= std::uint64_t{1} << (cpu % 64);
  }
  [[nodiscard]] bool contains(std::size_t cpu) const {
    return cpu / 64 < words_.size() && ((words_[cpu / 64] >> (cpu % 64)) & 1u) != 0;
  }
  [[nodiscard]] std::size_t count() const {
    std::size_t n = 0;
    for (auto w : words_) n += static_cast<std::size_t>(std::popcount(w));
    return n;
  }
  [[nodiscard]] bool empty() const { return count() == 0; }

  bool operator==(const CpuSet& other) const {
    const auto& a = words_.size() >= other.words_.size() ? words_ : other.words_;
    const auto& b = words_.size() >= other.words_.size() ? other.words_ : words_;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (a[i] != (i < b.size() ? b[i] : 0)) return false;
    }
    return true;
  }

  /// Parses the comma-separated 32-bit hex groups of a Linux cpumask (`cpulist` in
  /// sysfs is the other form). nullopt when a group is not hex or is wider than 32 bits.
  static std::optional<CpuSet> from_mask(std::string_view text) {
    std::vector<std::uint32_t> groups;
    std::size_t pos = 0;
    while (true) {
      auto comma = text.find(',', pos);
      auto group = text.substr(pos, comma == std::string_view::npos ? comma : comma - pos);
      if (group.starts_with("0x") || group.starts_with("0X")) group.remove_prefix(2);
      if (group.empty() || group.size() > 8) return std::nullopt;
      std::uint32_t v = 0;
      auto [p, ec] = std::from_chars(group.data(), group.data() + group.size(), v, 16);
      if (ec != std::errc{} || p != group.data() + group.size()) return std::nullopt;
      groups.push_back(v);
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
    if (groups.size() * 32 > max_cpus) return std::nullopt;
    CpuSet set;
    for (std::size_t g = 0; g < groups.size(); ++g) {
      const std::uint32_t bits = groups[groups.size() - 1 - g];
      for (unsigned b = 0; b < 32; ++b) {
        if ((bits >> b) & 1u) set.insert(g * 32 + b);
      }
    }
    return set;
  }

  /// Parses "0-3,8,10-11". nullopt on a malformed range or an index above max_cpus.
  static std::optional<CpuSet> from_list(std::string_view text) {
    CpuSet set;
    if (text.empty()) return set;
    std::size_t pos = 0;
    auto number = [](std::string_view s) -> std::optional<std::size_t> {
      std::size_t v = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (s.empty() || ec != std::errc{} || p != s.data() + s.size() || v >= max_cpus) {
        return std::nullopt;
      }
      return v;
    };
    while (true) {
      auto comma = text.find(',', pos);
      auto item = text.substr(pos, comma == std::string_view::npos ? comma : comma - pos);
      auto dash = item.find('-');
      auto lo = number(item.substr(0, dash));
      auto hi = dash == std::string_view::npos ? lo : number(item.substr(dash + 1));
      if (!lo || !hi || *hi < *lo) return std::nullopt;
      for (std::size_t c = *lo; c <= *hi; ++c) set.insert(c);
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
    return set;
  }

  /// "0-47,96-143"; empty string for the empty set.
  [[nodiscard]] std::string to_list() const {
    std::string out;
    const std::size_t n = words_.size() * 64;
    std::size_t c = 0;
    while (c < n) {
      if (!contains(c)) {
        ++c;
        continue;
      }
      std::size_t end = c;
      while (end + 1 < n && contains(end + 1)) ++end;
      if (!out.empty()) out += ',';
      out += std::to_string(c);
      if (end > c) out += '-' + std::to_string(end);
      c = end + 1;
    }
    return out;
  }

  /// Linux cpumask form, 32-bit groups most significant first ("0000ffff,ffffffff").
  [[nodiscard]] std::string to_mask() const {
    std::size_t groups = 1;
    for (std::size_t c = 0; c < words_.size() * 64; ++c) {
      if (contains(c)) groups = c / 32 + 1;
    }
    std::string out;
    for (std::size_t g = groups; g-- > 0;) {
      std::uint32_t bits = 0;
      for (unsigned b = 0; b < 32; ++b) {
        if (contains(g * 32 + b)) bits |= 1u << b;
      }
      char buf[9];
      static constexpr char digits[] = "0123456789abcdef";
      for (int i = 7; i >= 0; --i) {
        buf[7 - i] = digits[(bits >> (4 * i)) & 0xfu];
      }
      buf[8] = '\0';
      if (!out.empty()) out += ',';
      out += buf;
    }
    return out;
  }

 private:
  std::vector<std::uint64_t> words_;
};

RAILCC_NAMESPACE_END
