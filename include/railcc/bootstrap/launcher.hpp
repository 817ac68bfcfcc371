// railcc/bootstrap/launcher.hpp: who this process is in its job, from the launcher's
// environment (torchrun, Slurm's srun, Open MPI's mpirun), the way jobs start.
//
// Each launcher gives every process its rank, the job's size, and its rank and count on
// its node, under its own names:
//  - torchrun (and torch.distributed.launch): RANK, WORLD_SIZE, LOCAL_RANK,
//    LOCAL_WORLD_SIZE, GROUP_RANK (the node), MASTER_ADDR, MASTER_PORT;
//  - Open MPI's mpirun: OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE;
//  - Slurm's srun: SLURM_PROCID, SLURM_STEP_NUM_TASKS (or SLURM_NTASKS), SLURM_LOCALID,
//    SLURM_NODEID, and the tasks per node as SLURM_STEP_TASKS_PER_NODE (or
//    SLURM_TASKS_PER_NODE) in Slurm's compressed form ("4(x2),3": 4 on the first two
//    nodes, 3 on the third).
// They are tried in that order: torchrun and mpirun run inside Slurm allocations, whose
// SLURM_* variables then describe the allocation, not this process. A batch script's own
// shell also has SLURM_PROCID and SLURM_NTASKS but is no task of a step: Slurm is used
// only under a step srun started (SLURM_STEP_ID, not the batch or extern step's id).
// With none of them, the process is a job of one.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "railcc/bootstrap/env.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

enum class Launcher : std::uint8_t { none, torchrun, open_mpi, slurm };

[[nodiscard]] inline std::string_view launcher_name(Launcher l) {
  switch (l) {
    case Launcher::none: return "no launcher";
    case Launcher::torchrun: return "torchrun";
    case Launcher::open_mpi: return "Open MPI";
    case Launcher::slurm: return "Slurm";
  }
  return "no launcher";
}

/// This process's place in its job.
struct LaunchInfo {
  Launcher launcher = Launcher::none;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  ///< among the processes of its node
  int local_size = 1;
  int node = -1;  ///< the node's index in the job, where the launcher says (-1: it does not)
  /// Where rank 0's bootstrap store listens, where the launcher says (torchrun).
  std::optional<std::string> master_addr;
  std::optional<int> master_port;

  [[nodiscard]] std::string describe() const {
    std::string s = std::string(launcher_name(launcher)) + ": rank " + std::to_string(rank) +
                    " of " + std::to_string(world_size) + ", local rank " +
                    std::to_string(local_rank) + " of " + std::to_string(local_size);
    if (node >= 0) s += " on node " + std::to_string(node);
    return s;
  }
};

namespace detail::launch {

inline constexpr long long max_ranks = 1LL << 30;

/// Slurm's compressed task counts ("4(x2),3,2(x3)") expanded, one count per node.
inline std::vector<int> slurm_tasks_per_node(const std::string& text, const std::string& name) {
  const auto bad = [&]() {
    return InputError("environment: " + name + "=\"" + text +
                      "\" is not Slurm's tasks per node (such as \"4(x2),3\")");
  };
  std::vector<int> counts;
  std::string_view rest(text);
  while (true) {
    int tasks = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), tasks);
    if (ec != std::errc{} || tasks < 1) throw bad();
    rest.remove_prefix(static_cast<std::size_t>(end - rest.data()));
    int times = 1;
    if (rest.size() >= 2 && rest.substr(0, 2) == "(x") {
      rest.remove_prefix(2);
      auto [e2, ec2] = std::from_chars(rest.data(), rest.data() + rest.size(), times);
      if (ec2 != std::errc{} || times < 1) throw bad();
      rest.remove_prefix(static_cast<std::size_t>(e2 - rest.data()));
      if (rest.empty() || rest.front() != ')') throw bad();
      rest.remove_prefix(1);
    }
    if (counts.size() + static_cast<std::size_t>(times) > static_cast<std::size_t>(max_ranks))
      throw bad();
    counts.insert(counts.end(), static_cast<std::size_t>(times), tasks);
    if (rest.empty()) break;
    if (rest.front() != ',') throw bad();
    rest.remove_prefix(1);
  }
  return counts;
}

inline void check(const LaunchInfo& info, const std::string& names) {
  const auto bad = [&](const std::string& why) {
    return InputError("environment: " + std::string(launcher_name(info.launcher)) + "'s " + names +
                      " disagree: " + why);
  };
  if (info.rank >= info.world_size) {
    throw bad("rank " + std::to_string(info.rank) + " is not below the job's " +
              std::to_string(info.world_size) + " processes");
  }
  if (info.local_rank >= info.local_size) {
    throw bad("local rank " + std::to_string(info.local_rank) + " is not below the node's " +
              std::to_string(info.local_size) + " processes");
  }
  if (info.local_size > info.world_size) {
    throw bad(std::to_string(info.local_size) + " processes on the node, more than the job's " +
              std::to_string(info.world_size));
  }
}

}  // namespace detail::launch

/// This process's place in its job, from the first launcher whose variables are set
/// (see above). A launcher's set that is incomplete, malformed or inconsistent is an
/// InputError naming the variable.
[[nodiscard]] inline LaunchInfo detect_launch(const Environment& env) {
  using detail::launch::max_ranks;
  LaunchInfo info;
  const auto to_int = [](long long v) { return static_cast<int>(v); };
  if (env.has("RANK") || env.has("LOCAL_RANK")) {
    info.launcher = Launcher::torchrun;
    const char* why = "a torchrun-style launch (RANK is set)";
    info.rank = to_int(env.required_integer("RANK", 0, max_ranks - 1, why));
    info.world_size = to_int(env.required_integer("WORLD_SIZE", 1, max_ranks, why));
    info.local_rank = to_int(env.required_integer("LOCAL_RANK", 0, max_ranks - 1, why));
    info.local_size = to_int(env.required_integer("LOCAL_WORLD_SIZE", 1, max_ranks, why));
    if (const auto node = env.integer("GROUP_RANK", 0, max_ranks - 1)) info.node = to_int(*node);
    info.master_addr = env.get("MASTER_ADDR");
    if (info.master_addr && info.master_addr->empty())
      throw InputError("environment: MASTER_ADDR is set but empty");
    if (const auto port = env.integer("MASTER_PORT", 1, 65535)) info.master_port = to_int(*port);
    detail::launch::check(info, "RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE");
    return info;
  }
  if (env.has("OMPI_COMM_WORLD_RANK")) {
    info.launcher = Launcher::open_mpi;
    const char* why = "an Open MPI launch (OMPI_COMM_WORLD_RANK is set)";
    info.rank = to_int(env.required_integer("OMPI_COMM_WORLD_RANK", 0, max_ranks - 1, why));
    info.world_size = to_int(env.required_integer("OMPI_COMM_WORLD_SIZE", 1, max_ranks, why));
    info.local_rank =
        to_int(env.required_integer("OMPI_COMM_WORLD_LOCAL_RANK", 0, max_ranks - 1, why));
    info.local_size = to_int(env.required_integer("OMPI_COMM_WORLD_LOCAL_SIZE", 1, max_ranks, why));
    detail::launch::check(info, "OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK and _LOCAL_SIZE");
    return info;
  }
  const auto step = env.has("SLURM_STEP_ID") ? env.integer("SLURM_STEP_ID", 0, 0xffffffffLL)
                                             : env.integer("SLURM_STEPID", 0, 0xffffffffLL);
  // 0xfffffffe and 0xffffffff are the batch script's and the extern step's ids.
  if (step && *step < 0xfffffffeLL && env.has("SLURM_PROCID")) {
    info.launcher = Launcher::slurm;
    const char* why = "an srun launch (SLURM_PROCID and SLURM_STEP_ID are set)";
    info.rank = to_int(env.required_integer("SLURM_PROCID", 0, max_ranks - 1, why));
    info.world_size = to_int(env.has("SLURM_STEP_NUM_TASKS")
                                 ? env.required_integer("SLURM_STEP_NUM_TASKS", 1, max_ranks, why)
                                 : env.required_integer("SLURM_NTASKS", 1, max_ranks, why));
    info.local_rank = to_int(env.required_integer("SLURM_LOCALID", 0, max_ranks - 1, why));
    info.node = to_int(env.required_integer("SLURM_NODEID", 0, max_ranks - 1, why));
    const std::string per_node_name =
        env.has("SLURM_STEP_TASKS_PER_NODE") ? "SLURM_STEP_TASKS_PER_NODE" : "SLURM_TASKS_PER_NODE";
    const auto per_node_text = env.get(per_node_name);
    if (!per_node_text)
      throw InputError("environment: SLURM_TASKS_PER_NODE is not set, and " + std::string(why) +
                       " needs it");
    const auto per_node = detail::launch::slurm_tasks_per_node(*per_node_text, per_node_name);
    if (static_cast<std::size_t>(info.node) >= per_node.size()) {
      throw InputError("environment: SLURM_NODEID=" + std::to_string(info.node) + " but " +
                       per_node_name + "=\"" + *per_node_text + "\" lists " +
                       std::to_string(per_node.size()) + " nodes");
    }
    long long total = 0;
    for (const int n : per_node) total += n;
    if (total != info.world_size) {
      throw InputError("environment: " + per_node_name + "=\"" + *per_node_text + "\" adds up to " +
                       std::to_string(total) + " tasks, but the step has " +
                       std::to_string(info.world_size));
    }
    info.local_size = per_node[static_cast<std::size_t>(info.node)];
    detail::launch::check(info, "SLURM_PROCID, tasks, SLURM_LOCALID and tasks per node");
    return info;
  }
  return info;
}

RAILCC_NAMESPACE_END
