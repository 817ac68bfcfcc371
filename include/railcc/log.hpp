// railcc/log.hpp: the messages railcc writes for operators, by level (RAILCC_DEBUG).
//
// A job of thousands of ranks writes thousands of copies of each line, so every line says
// which rank wrote it, and nothing is written below the level the user asked for. The
// level comes from the environment (bootstrap/env.hpp); the sink is stderr unless a test
// or an embedding program gives another stream.
#pragma once

#include <cstdint>
#include <iostream>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

/// How much railcc says, as NCCL_DEBUG's levels: nothing, warnings, what it found and
/// chose (INFO), and every step it takes (TRACE).
enum class LogLevel : std::uint8_t { none = 0, warn = 1, info = 2, trace = 3 };

[[nodiscard]] inline std::string_view log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::none: return "NONE";
    case LogLevel::warn: return "WARN";
    case LogLevel::info: return "INFO";
    case LogLevel::trace: return "TRACE";
  }
  return "NONE";
}

/// The level named by `text`, in any case as NCCL_DEBUG takes it; nothing for any other
/// text.
[[nodiscard]] inline std::optional<LogLevel> parse_log_level(std::string_view text) {
  for (const LogLevel level : {LogLevel::none, LogLevel::warn, LogLevel::info, LogLevel::trace}) {
    const std::string_view name = log_level_name(level);
    if (text.size() != name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < name.size(); ++i) {
      const char c = text[i];
      same = same && (c == name[i] || c == static_cast<char>(name[i] - 'A' + 'a'));
    }
    if (same) return level;
  }
  return std::nullopt;
}

/// Writes whole lines ("railcc INFO rank 3: ...") at or above its level. Lines from
/// several threads of one process do not interleave.
class Logger {
 public:
  explicit Logger(LogLevel level = LogLevel::warn, std::ostream* sink = &std::cerr)
      : level_(level), sink_(sink) {}

  void set_rank(int rank) { rank_ = rank; }
  [[nodiscard]] LogLevel level() const { return level_; }
  [[nodiscard]] bool enabled(LogLevel level) const {
    return level != LogLevel::none && level <= level_;
  }

  void write(LogLevel level, std::string_view message) const {
    if (!enabled(level) || sink_ == nullptr) return;
    std::string line = "railcc ";
    line += log_level_name(level);
    if (rank_ >= 0) line += " rank " + std::to_string(rank_);
    line += ": ";
    line += message;
    line += '\n';
    static std::mutex lines;
    const std::lock_guard<std::mutex> lock(lines);
    *sink_ << line << std::flush;
  }
  void warn(std::string_view message) const { write(LogLevel::warn, message); }
  void info(std::string_view message) const { write(LogLevel::info, message); }
  void trace(std::string_view message) const { write(LogLevel::trace, message); }

 private:
  LogLevel level_;
  std::ostream* sink_;
  int rank_ = -1;
};

RAILCC_NAMESPACE_END
