// The environment (bootstrap/env.hpp) and the launcher detection (bootstrap/launcher.hpp):
// each launcher's variables as it sets them, and what is wrong with them named.
#include <doctest/doctest.h>

#include <array>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "check_contains.hpp"
#include "railcc/bootstrap/env.hpp"
#include "railcc/bootstrap/launcher.hpp"
#include "railcc/bootstrap/start.hpp"
#include "railcc/log.hpp"
#include "test_support.hpp"

using namespace railcc;

using railcc_test::error_of;

namespace {

using Vars = std::map<std::string, std::string>;

std::string launch_error(const Vars& vars) {
  return error_of([&] { (void)detect_launch(Environment::of(vars)); });
}

/// `vars` with `name` set to `value` (or unset, with no value).
Vars with(Vars vars, const std::string& name, std::optional<std::string> value = std::nullopt) {
  if (value) {
    vars[name] = *value;
  } else {
    vars.erase(name);
  }
  return vars;
}

/// The launcher and the place it gives: rank, job size, local rank, local size, node.
void check_place(const LaunchInfo& info, Launcher launcher, std::array<int, 5> place) {
  CHECK(info.launcher == launcher);
  CHECK(std::array<int, 5>{info.rank, info.world_size, info.local_rank, info.local_size,
                           info.node} == place);
}

}  // namespace

TEST_CASE("Launcher: torchrun's variables") {
  const Vars torchrun{{"RANK", "11"},           {"WORLD_SIZE", "16"},
                      {"LOCAL_RANK", "3"},      {"LOCAL_WORLD_SIZE", "8"},
                      {"GROUP_RANK", "1"},      {"MASTER_ADDR", "node-0"},
                      {"MASTER_PORT", "29500"}, {"SLURM_PROCID", "0"},
                      {"SLURM_STEP_ID", "0"}};
  const LaunchInfo info = detect_launch(Environment::of(torchrun));
  check_place(info, Launcher::torchrun, {11, 16, 3, 8, 1});
  CHECK(info.master_addr == std::optional<std::string>("node-0"));
  CHECK(info.master_port == std::optional<int>(29500));
  CHECK(info.describe() == "torchrun: rank 11 of 16, local rank 3 of 8 on node 1");

  CHECK_CONTAINS(launch_error(with(torchrun, "LOCAL_WORLD_SIZE")), "LOCAL_WORLD_SIZE is not set");
  CHECK_CONTAINS(launch_error(with(torchrun, "RANK", "16")),
                 "rank 16 is not below the job's 16 processes");
  CHECK_CONTAINS(launch_error(with(torchrun, "LOCAL_RANK", "8")),
                 "local rank 8 is not below the node's 8");
  CHECK_CONTAINS(launch_error(with(torchrun, "WORLD_SIZE", "16x")),
                 "WORLD_SIZE=\"16x\" is not a whole number");
  CHECK_CONTAINS(launch_error(with(torchrun, "MASTER_PORT", "70000")),
                 "MASTER_PORT=70000 is outside 1..65535");
}

TEST_CASE("Launcher: Open MPI's variables, inside a Slurm allocation") {
  const Vars ompi{{"OMPI_COMM_WORLD_RANK", "5"},
                  {"OMPI_COMM_WORLD_SIZE", "8"},
                  {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                  {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"},
                  {"SLURM_PROCID", "0"},
                  {"SLURM_NTASKS", "2"}};
  check_place(detect_launch(Environment::of(ompi)), Launcher::open_mpi, {5, 8, 1, 4, -1});
  CHECK_CONTAINS(launch_error(with(ompi, "OMPI_COMM_WORLD_LOCAL_SIZE", "9")),
                 "9 processes on the node, more than the job's 8");
}

TEST_CASE("Launcher: Slurm's srun, and a batch script's shell that is no task") {
  const Vars srun{{"SLURM_PROCID", "9"},  {"SLURM_NTASKS", "11"},
                  {"SLURM_LOCALID", "1"}, {"SLURM_NODEID", "2"},
                  {"SLURM_STEP_ID", "0"}, {"SLURM_TASKS_PER_NODE", "4(x2),3"}};
  check_place(detect_launch(Environment::of(srun)), Launcher::slurm, {9, 11, 1, 3, 2});

  // The step's own counts win over the allocation's.
  Vars step = srun;
  step["SLURM_NTASKS"] = "64";
  step["SLURM_TASKS_PER_NODE"] = "32(x2)";
  step["SLURM_STEP_NUM_TASKS"] = "11";
  step["SLURM_STEP_TASKS_PER_NODE"] = "4(x2),3";
  CHECK(detect_launch(Environment::of(step)).local_size == 3);

  // The batch script's shell: Slurm's variables of the allocation, but no step srun made.
  CHECK(detect_launch(Environment::of(with(srun, "SLURM_STEP_ID"))).launcher == Launcher::none);
  CHECK(detect_launch(Environment::of(with(srun, "SLURM_STEP_ID", "4294967294"))).launcher ==
        Launcher::none);

  CHECK_CONTAINS(launch_error(with(srun, "SLURM_TASKS_PER_NODE", "4(x3)")),
                 "adds up to 12 tasks, but the step has 11");
  CHECK_CONTAINS(launch_error(with(srun, "SLURM_NODEID", "3")),
                 "SLURM_NODEID=3 but SLURM_TASKS_PER_NODE=\"4(x2),3\" lists 3");
  for (const char* garbled : {"", "4(x2", "4(2)", "x", "4,,3", "0", "4(x0)", "4(x2),"}) {
    CAPTURE(garbled);
    CHECK_CONTAINS(launch_error(with(srun, "SLURM_TASKS_PER_NODE", garbled)),
                   "is not Slurm's tasks per node");
  }
}

TEST_CASE("Launcher: Slurm's compressed tasks per node, against a plain expansion") {
  // Random lists of (tasks, repeats), written in Slurm's form, then read back.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<int> expected;
    std::ostringstream text;
    const int groups = std::uniform_int_distribution<int>(1, 6)(rng);
    for (int g = 0; g < groups; ++g) {
      const int tasks = std::uniform_int_distribution<int>(1, 16)(rng);
      const int times = std::uniform_int_distribution<int>(1, 4)(rng);
      if (g > 0) text << ',';
      text << tasks;
      if (times > 1 || std::uniform_int_distribution<int>(0, 1)(rng) == 1)
        text << "(x" << times << ')';
      for (int t = 0; t < times; ++t) expected.push_back(tasks);
    }
    CAPTURE(text.str());
    CHECK(detail::launch::slurm_tasks_per_node(text.str(), "SLURM_TASKS_PER_NODE") == expected);
  }
}

TEST_CASE("Launcher: none is a job of one") {
  const LaunchInfo info = detect_launch(Environment::of({}));
  CHECK(info.launcher == Launcher::none);
  CHECK(info.rank == 0);
  CHECK(info.world_size == 1);
  CHECK(info.describe() == "no launcher: rank 0 of 1, local rank 0 of 1");
}

TEST_CASE("Environment: railcc's own variables") {
  const RailccSettings defaults = RailccSettings::from(Environment::of({}));
  CHECK(defaults.debug == LogLevel::warn);
  CHECK(defaults.bootstrap_timeout == std::chrono::seconds(120));
  CHECK(!defaults.bootstrap_host);

  const RailccSettings s =
      RailccSettings::from(Environment::of({{"RAILCC_DEBUG", "info"},
                                            {"RAILCC_BOOTSTRAP_TIMEOUT", "5"},
                                            {"RAILCC_BOOTSTRAP_ADDR", "[fe80::1]:4000"}}));
  CHECK(s.debug == LogLevel::info);
  CHECK(s.bootstrap_timeout == std::chrono::seconds(5));
  CHECK(s.bootstrap_host == std::optional<std::string>("fe80::1"));
  CHECK(s.bootstrap_port == std::optional<int>(4000));
  CHECK(RailccSettings::from(Environment::of({{"RAILCC_BOOTSTRAP_ADDR", "10.0.0.1:29500"}}))
            .bootstrap_host == std::optional<std::string>("10.0.0.1"));

  const auto error = [](const Vars& vars) {
    return error_of([&] { (void)RailccSettings::from(Environment::of(vars)); });
  };
  CHECK_CONTAINS(error({{"RAILCC_DEBUG", "VERBOSE"}}),
                 "RAILCC_DEBUG=\"VERBOSE\" is not a level: NONE, WARN, INFO or TRACE");
  CHECK_CONTAINS(error({{"RAILCC_BOOTSTRAP_TIMEOUT", "0"}}), "outside 1..86400");
  CHECK_CONTAINS(error({{"RAILCC_BOOTSTRAP_TIMEOUT", "-3"}}), "outside 1..86400");
  for (const char* addr : {"host", ":80", "host:", "host:0", "host:99999", "[::1]80", "[::1"}) {
    CAPTURE(addr);
    CHECK_CONTAINS(error({{"RAILCC_BOOTSTRAP_ADDR", addr}}), "RAILCC_BOOTSTRAP_ADDR=");
  }
}

TEST_CASE("Logger: whole lines at or above the level, with the rank") {
  std::ostringstream out;
  Logger log(LogLevel::info, &out);
  log.set_rank(3);
  log.trace("hidden");
  log.info("found 8 GPUs");
  log.warn("slow");
  CHECK(out.str() == "railcc INFO rank 3: found 8 GPUs\nrailcc WARN rank 3: slow\n");
  std::ostringstream quiet;
  Logger none(LogLevel::none, &quiet);
  none.warn("nothing");
  CHECK(quiet.str().empty());
  CHECK(parse_log_level("TRACE") == LogLevel::trace);
  CHECK(parse_log_level("Info") == LogLevel::info);
  CHECK(parse_log_level("INFO2") == std::nullopt);
}

TEST_CASE("start_job: a job of one, a job with no store address, what INFO logs") {
  std::ostringstream log;
  Job solo = start_job(Environment::of({{"RAILCC_DEBUG", "INFO"}}), &log);
  CHECK(solo.bootstrap->size() == 1);
  CHECK(solo.bootstrap->all_gather("me") == std::vector<std::string>{"me"});
  CHECK(solo.bootstrap->broadcast("b", 0) == "b");
  CHECK_THROWS_AS(solo.bootstrap->broadcast("b", 1), InputError);
  CHECK(log.str() ==
        "railcc INFO rank 0: launched by no launcher: rank 0 of 1, local rank 0 of 1\n");

  const Vars no_address{
      {"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}, {"LOCAL_WORLD_SIZE", "2"}};
  CHECK_CONTAINS(error_of([&] { (void)start_job(Environment::of(no_address)); }),
                 "torchrun: rank 0 of 2, local rank 0 of 2, but no store address: set "
                 "RAILCC_BOOTSTRAP_ADDR=HOST:PORT");
  // RAILCC_BOOTSTRAP_ADDR wins over MASTER_ADDR; MASTER_ADDR serves without it.
  LaunchInfo torchrun;
  torchrun.master_addr = "node-0";
  torchrun.master_port = 29500;
  RailccSettings settings;
  CHECK(store_address(torchrun, settings) == std::pair<std::string, int>{"node-0", 29500});
  settings.bootstrap_host = "10.1.1.1";
  settings.bootstrap_port = 4000;
  CHECK(store_address(torchrun, settings) == std::pair<std::string, int>{"10.1.1.1", 4000});
}
