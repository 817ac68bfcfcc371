// size_option.hpp: byte sizes on the command line as nccl-tests reads them ("8", "64K",
// "128M", "1G"), for railcc-sim and railcc-perf.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>

#include "railcc/error.hpp"

namespace railcc_tools {

/// "8", "1K", "64M", "1G": bytes, suffixes in powers of 1024. More than `most` is an
/// InputError that says it is more than `limit` ("the 1 TiB railcc-sim simulates").
inline std::size_t parse_byte_size(const std::string& option, const std::string& s,
                                   std::uint64_t most, const std::string& limit) {
  const auto digits = s.find_first_not_of("0123456789");
  const std::string number = s.substr(0, digits);
  const std::string rest = digits == std::string::npos ? "" : s.substr(digits);
  unsigned shift = 0;
  if (rest == "K" || rest == "k")
    shift = 10;
  else if (rest == "M" || rest == "m")
    shift = 20;
  else if (rest == "G" || rest == "g")
    shift = 30;
  else if (!rest.empty() && !number.empty())
    throw railcc::InputError(option + " '" + s + "': unknown suffix '" + rest +
                             "' (use K, M or G)");
  if (number.empty())
    throw railcc::InputError(option + " '" + s +
                             "' is not a number of bytes (e.g. 8, 64K, 128M, 1G)");
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
  (void)end;
  if (ec != std::errc{} || v > (most >> shift))
    throw railcc::InputError(option + " " + s + " is more than " + limit);
  return static_cast<std::size_t>(v) << shift;
}

}  // namespace railcc_tools
