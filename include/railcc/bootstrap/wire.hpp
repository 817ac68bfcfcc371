// railcc/bootstrap/wire.hpp: what both bootstraps (the TCP store and MPI) put on the wire
// and in their errors: little-endian integers, the broadcast root's check, an all-gather's answer
// (every rank's blob after its length), and the texts that name ranks and timeouts.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

namespace detail::wire {

inline void put32(char* at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) at[i] = static_cast<char>((v >> (8 * i)) & 0xffu);
}
inline void put64(char* at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) at[i] = static_cast<char>((v >> (8 * i)) & 0xffu);
}
inline std::uint32_t get32(const char* at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{static_cast<unsigned char>(at[i])} << (8 * i);
  return v;
}
inline std::uint64_t get64(const char* at) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<unsigned char>(at[i])} << (8 * i);
  return v;
}

/// Every rank's blob, in rank order, each after its 8-byte length.
inline std::string pack_blobs(const std::vector<std::string_view>& blobs) {
  std::string out;
  for (const std::string_view b : blobs) {
    char length[8];
    put64(length, b.size());
    out.append(length, 8);
    out.append(b);
  }
  return out;
}

/// `count` blobs back from pack_blobs; nothing if `packed` is cut short or too long.
inline std::optional<std::vector<std::string>> unpack_blobs(std::string_view packed, int count) {
  std::vector<std::string> out;
  out.reserve(static_cast<std::size_t>(std::max(count, 0)));
  std::size_t at = 0;
  for (int r = 0; r < count; ++r) {
    if (packed.size() - at < 8) return std::nullopt;
    const std::uint64_t length = get64(packed.data() + at);
    at += 8;
    if (length > packed.size() - at) return std::nullopt;
    out.emplace_back(packed.substr(at, length));
    at += length;
  }
  if (at != packed.size()) return std::nullopt;
  return out;
}

/// "2, 5, 9" (the first 16, then how many more).
inline std::string list_ranks(const std::vector<int>& ranks) {
  std::string s;
  const std::size_t shown = std::min<std::size_t>(ranks.size(), 16);
  for (std::size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  if (ranks.size() > shown) s += " and " + std::to_string(ranks.size() - shown) + " more";
  return s;
}

/// "120 s", or "300 ms" when not whole seconds.
inline std::string duration_text(std::chrono::milliseconds t) {
  const auto ms = t.count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

/// A broadcast's root must be a rank of the job: an InputError otherwise.
inline void check_root(int root, int size) {
  if (root < 0 || root >= size) {
    throw InputError("bootstrap: broadcast from root " + std::to_string(root) + ", not a rank of " +
                     std::to_string(size));
  }
}

}  // namespace detail::wire

RAILCC_NAMESPACE_END
