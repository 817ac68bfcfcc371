// railcc/utf8.hpp: UTF-8 validity, for text that comes from files and from the system.
//
// railcc writes names and notes into JSON and XML, and neither can carry bytes that are
// not UTF-8. Files with such bytes are damaged and refused (with the offset of the first
// bad byte); strings from the live system (hwloc's, sysfs's) are repaired instead, since a
// node with an odd DMI string is still a node.
#pragma once

#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

/// The byte length of the UTF-8 sequence starting at `i`, or 0 when it is not one
/// (a stray continuation byte, a truncated or overlong sequence, a byte never used).
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char c = p[i];
  const std::size_t len = c < 0x80           ? 1
                          : (c >> 5) == 0x6  ? 2
                          : (c >> 4) == 0xe  ? 3
                          : (c >> 3) == 0x1e ? 4
                                             : 0;
  if (len == 0 || i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((p[i + k] & 0xc0) != 0x80) return 0;
  }
  if (len == 2 && c < 0xc2) return 0;                       // overlong
  if (len == 3 && c == 0xe0 && p[i + 1] < 0xa0) return 0;   // overlong
  if (len == 3 && c == 0xed && p[i + 1] >= 0xa0) return 0;  // a UTF-16 surrogate
  if (len == 4 && (c > 0xf4 || (c == 0xf0 && p[i + 1] < 0x90))) return 0;
  return len;
}

/// The offset of the first byte that is not part of valid UTF-8, if any.
inline std::optional<std::size_t> first_invalid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = utf8_sequence_length(s, i);
    if (len == 0) return i;
    i += len;
  }
  return std::nullopt;
}

/// "not UTF-8 text (byte 0xNN)" for the byte at `at`: how railcc's readers name it.
inline std::string invalid_utf8_message(std::string_view s, std::size_t at) {
  char byte[8];
  std::snprintf(byte, sizeof byte, "0x%02x",
                static_cast<unsigned>(static_cast<unsigned char>(s[at])));
  return std::string("not UTF-8 text (byte ") + byte + ")";
}

/// `s` with every byte that is not valid UTF-8 replaced by '?'.
inline std::string repair_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = utf8_sequence_length(s, i);
    if (len == 0) {
      out += '?';
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

RAILCC_NAMESPACE_END
