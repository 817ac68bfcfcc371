// railcc/input_file.hpp: reading a file that a user named, safely.
//
// Every reader of a user's file (fabric JSON, NCCL and hwloc XML) reads it through here,
// so none of them can be made to block or read forever: a FIFO would block the open until
// a writer came, and a character device (/dev/zero, /dev/urandom) never ends. Only
// regular files are read, and only up to a size that no real input comes near.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

/// The largest input file railcc reads: 256 MiB. A node's topology is kilobytes; a
/// fabric of 1M GPUs as railcc.fabric.v1 JSON is about 150 MB.
inline constexpr std::uintmax_t max_input_file_bytes = std::uintmax_t{256} << 20;

/// The whole of the regular file at `path`, or an InputError naming it: missing, not a
/// regular file (a directory, a FIFO, a device), larger than `max_bytes`, unreadable.
inline std::string read_input_file(const std::string& path,
                                   std::uintmax_t max_bytes = max_input_file_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw InputError(path + ": cannot open file (no such file)");
  if (!fs::is_regular_file(status)) {
    throw InputError(path + ": not a regular file (a directory, pipe or device); give a file");
  }
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) throw InputError(path + ": cannot open file (" + ec.message() + ")");
  if (size > max_bytes) {
    throw InputError(path + ": " + std::to_string(size) + " bytes, more than the " +
                     std::to_string(max_bytes) + " railcc reads from one file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open file");
  std::string text(static_cast<std::size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  // A file that shrank while being read is cut where it ended; one that grew is read to
  // the size it had, never further.
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (in.bad()) throw InputError(path + ": read error");
  return text;
}

RAILCC_NAMESPACE_END
