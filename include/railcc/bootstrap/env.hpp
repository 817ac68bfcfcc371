// railcc/bootstrap/env.hpp: the process environment, and every RAILCC_* variable railcc
// reads (docs/env.md lists them).
//
// Everything railcc takes from the environment goes through an `Environment`: the
// launcher's variables (launcher.hpp) and railcc's own, read here in one place. Tests and
// programs that are not launched as jobs pass a map instead of the process environment.
// A variable that is set but malformed is an InputError naming it and its value, never a
// silent default.
#pragma once

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/log.hpp"

RAILCC_NAMESPACE_BEGIN

/// Where environment variables come from: a name's value, or nothing when it is unset.
class Environment {
 public:
  using Lookup = std::function<std::optional<std::string>(const std::string&)>;

  explicit Environment(Lookup lookup) : lookup_(std::move(lookup)) {}

  /// The process's own environment (std::getenv).
  [[nodiscard]] static Environment process() {
    return Environment([](const std::string& name) -> std::optional<std::string> {
      const char* value = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe)
      if (value == nullptr) return std::nullopt;
      return std::string(value);
    });
  }
  /// A fixed set of variables (tests; programs that set ranks themselves).
  [[nodiscard]] static Environment of(std::map<std::string, std::string> variables) {
    return Environment([vars = std::move(variables)](const std::string& name) {
      const auto it = vars.find(name);
      return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
    });
  }

  [[nodiscard]] std::optional<std::string> get(const std::string& name) const {
    return lookup_(name);
  }
  [[nodiscard]] bool has(const std::string& name) const { return get(name).has_value(); }

  /// A whole number in [least, most], or nothing when unset. Anything else set there
  /// (empty, signs where none belong, trailing text, out of range) is an InputError.
  [[nodiscard]] std::optional<long long> integer(const std::string& name, long long least,
                                                 long long most) const {
    const auto value = get(name);
    if (!value) return std::nullopt;
    long long parsed = 0;
    const char* first = value->data();
    const char* last = value->data() + value->size();
    const auto [end, ec] = std::from_chars(first, last, parsed);
    if (value->empty() || ec != std::errc{} || end != last) {
      throw InputError("environment: " + name + "=\"" + *value + "\" is not a whole number");
    }
    if (parsed < least || parsed > most) {
      throw InputError("environment: " + name + "=" + *value + " is outside " +
                       std::to_string(least) + ".." + std::to_string(most));
    }
    return parsed;
  }
  /// As integer(), but the variable must be set.
  [[nodiscard]] long long required_integer(const std::string& name, long long least, long long most,
                                           std::string_view why) const {
    const auto value = integer(name, least, most);
    if (!value) {
      throw InputError("environment: " + name + " is not set, and " + std::string(why) +
                       " needs it");
    }
    return *value;
  }

 private:
  Lookup lookup_;
};

/// railcc's own settings from the environment. docs/env.md documents each.
struct RailccSettings {
  /// RAILCC_DEBUG: NONE, WARN (default), INFO, TRACE, as NCCL_DEBUG.
  LogLevel debug = LogLevel::warn;
  /// RAILCC_BOOTSTRAP_TIMEOUT: seconds any bootstrap wait may take before it fails,
  /// naming the ranks that did not arrive (default 120; 1 to 86,400).
  std::chrono::milliseconds bootstrap_timeout{std::chrono::seconds(120)};
  /// RAILCC_BOOTSTRAP_ADDR: HOST:PORT of the TCP store (rank 0 listens there). Unset:
  /// MASTER_ADDR and MASTER_PORT, as torchrun sets them.
  std::optional<std::string> bootstrap_host;
  std::optional<int> bootstrap_port;
  /// RAILCC_TIMEOUT: seconds a collective may go without progress (no message arriving,
  /// none leaving) before it fails, naming the ranks it waits for (default 600, as
  /// PyTorch's process groups; 1 to 86,400).
  std::chrono::milliseconds timeout{std::chrono::seconds(600)};
  /// RAILCC_CHECK_CALLS=1: before every call, the ranks compare what they were asked to
  /// do (collective, count, type, op, root) and a mismatch fails naming the ranks and
  /// their calls. Costs one bootstrap all-gather per call; off by default.
  bool check_calls = false;
  /// RAILCC_ALGO: the algorithm every call uses where it applies (ring, rabenseifner,
  /// tree, hierarchical, bruck, ...), instead of the tuner's choice; as NCCL_ALGO.
  std::optional<std::string> algorithm;
  /// RAILCC_FABRIC: the fabric the tuner and railcc-perf's model assume: a preset
  /// (colossus, llama3, hpn, fat-tree) or a fabric JSON file. Unset: a rail-optimised
  /// fabric of the hosts found.
  std::optional<std::string> fabric;
  /// RAILCC_TOPO_FILE: this node's topology as an NCCL topology XML, instead of discovery:
  /// each local rank's rail is the rail of its GPU's nearest NIC.
  std::optional<std::string> topo_file;
  /// RAILCC_RANKS_PER_HOST: treat every N consecutive ranks as one host, whatever host
  /// they run on, so one machine runs hierarchical algorithms with both levels (tests,
  /// and trying a plan before a multi-node job). Unset: hosts by host name.
  std::optional<int> ranks_per_host;
  /// RAILCC_LANES: the streams a GPU transport runs a call's channels on at once, each
  /// with an NCCL communicator of its own (comm/waves.hpp; default 1, 1 to 32). Host
  /// transports run every step as it becomes ready and take no lanes.
  int lanes = 1;

  [[nodiscard]] static RailccSettings from(const Environment& env) {
    RailccSettings s;
    if (const auto debug = env.get("RAILCC_DEBUG")) {
      const auto level = parse_log_level(*debug);
      if (!level) {
        throw InputError("environment: RAILCC_DEBUG=\"" + *debug +
                         "\" is not a level: NONE, WARN, INFO or TRACE");
      }
      s.debug = *level;
    }
    if (const auto seconds = env.integer("RAILCC_BOOTSTRAP_TIMEOUT", 1, 86'400))
      s.bootstrap_timeout = std::chrono::seconds(*seconds);
    if (const auto addr = env.get("RAILCC_BOOTSTRAP_ADDR")) {
      auto [host, port] = split_host_port(*addr, "RAILCC_BOOTSTRAP_ADDR");
      s.bootstrap_host = std::move(host);
      s.bootstrap_port = port;
    }
    if (const auto seconds = env.integer("RAILCC_TIMEOUT", 1, 86'400))
      s.timeout = std::chrono::seconds(*seconds);
    if (const auto check = env.integer("RAILCC_CHECK_CALLS", 0, 1)) s.check_calls = *check == 1;
    s.algorithm = non_empty(env, "RAILCC_ALGO");
    s.fabric = non_empty(env, "RAILCC_FABRIC");
    s.topo_file = non_empty(env, "RAILCC_TOPO_FILE");
    if (const auto n = env.integer("RAILCC_RANKS_PER_HOST", 1, 1 << 20))
      s.ranks_per_host = static_cast<int>(*n);
    // 32: WaveSchedule::max_lanes.
    if (const auto n = env.integer("RAILCC_LANES", 1, 32)) s.lanes = static_cast<int>(*n);
    return s;
  }

  /// A variable's value; set but empty is an InputError naming it.
  [[nodiscard]] static std::optional<std::string> non_empty(const Environment& env,
                                                            const std::string& name) {
    auto value = env.get(name);
    if (value && value->empty())
      throw InputError("environment: " + name + " is set but empty (unset it, or give a value)");
    return value;
  }

  /// "HOST:PORT" or "[IPV6]:PORT" into its parts; `name` is the variable, for errors.
  [[nodiscard]] static std::pair<std::string, int> split_host_port(const std::string& text,
                                                                   const std::string& name) {
    const auto bad = [&](const std::string& why) {
      return InputError("environment: " + name + "=\"" + text + "\" " + why);
    };
    std::string host;
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
      const auto close = text.find(']');
      if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
        throw bad("is not [IPV6]:PORT");
      host = text.substr(1, close - 1);
      port_text = std::string_view(text).substr(close + 2);
    } else {
      const auto colon = text.rfind(':');
      if (colon == std::string::npos) throw bad("is not HOST:PORT");
      host = text.substr(0, colon);
      port_text = std::string_view(text).substr(colon + 1);
    }
    if (host.empty()) throw bad("has no host");
    int port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc{} || end != port_text.data() + port_text.size() ||
        port < 1 || port > 65535)
      throw bad("has no port in 1..65535");
    return {host, port};
  }
};

RAILCC_NAMESPACE_END
