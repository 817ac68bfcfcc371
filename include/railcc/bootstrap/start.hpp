// railcc/bootstrap/start.hpp: from the environment a launcher gave this process to a
// bootstrap every rank of the job shares: start_job().
//
// It reads railcc's settings and the launcher (env.hpp, launcher.hpp), logs which
// launcher it found, and meets the other ranks:
//  - a job of one needs nobody: its bootstrap answers at once (SoloBootstrap);
//  - any other job meets at the TCP store (tcp_store.hpp), rank 0 listening at
//    RAILCC_BOOTSTRAP_ADDR, or else at MASTER_ADDR:MASTER_PORT as torchrun sets them.
//    With neither (mpirun and srun set no address), that is an InputError saying which
//    variables to set.
#pragma once

#include <iostream>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "railcc/bootstrap/bootstrap.hpp"
#include "railcc/bootstrap/env.hpp"
#include "railcc/bootstrap/launcher.hpp"
#include "railcc/bootstrap/tcp_store.hpp"
#include "railcc/bootstrap/wire.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/log.hpp"

RAILCC_NAMESPACE_BEGIN

/// The bootstrap of a job of one process: every call returns at once.
class SoloBootstrap final : public Bootstrap {
 public:
  [[nodiscard]] int rank() const override { return 0; }
  [[nodiscard]] int size() const override { return 1; }
  std::vector<std::string> all_gather(std::string_view mine) override {
    return {std::string(mine)};
  }
  std::string broadcast(std::string_view blob, int root) override {
    detail::wire::check_root(root, 1);
    return std::string(blob);
  }
  void barrier() override {}
};

/// A started job: who this process is, railcc's settings, its logger, and the bootstrap.
struct Job {
  LaunchInfo launch;
  RailccSettings settings;
  Logger log;
  std::unique_ptr<Bootstrap> bootstrap;
  /// The address this process reached the store from (empty in a job of one): where a
  /// transport listens for the other ranks.
  std::string address;
};

/// Where the TCP store is for this job: RAILCC_BOOTSTRAP_ADDR, else MASTER_ADDR and
/// MASTER_PORT.
[[nodiscard]] inline std::pair<std::string, int> store_address(const LaunchInfo& launch,
                                                               const RailccSettings& settings) {
  if (settings.bootstrap_host && settings.bootstrap_port)
    return {*settings.bootstrap_host, *settings.bootstrap_port};
  if (launch.master_addr && launch.master_port) return {*launch.master_addr, *launch.master_port};
  throw InputError("bootstrap: " + launch.describe() +
                   ", but no store address: set RAILCC_BOOTSTRAP_ADDR=HOST:PORT (rank 0's "
                   "host and a free port) or MASTER_ADDR and MASTER_PORT");
}

/// Starts this process's part of the job described by `env` (see above). `sink` is where
/// the log goes (stderr unless a test says otherwise).
[[nodiscard]] inline Job start_job(const Environment& env, std::ostream* sink = &std::cerr) {
  Job job;
  job.settings = RailccSettings::from(env);
  job.launch = detect_launch(env);
  job.log = Logger(job.settings.debug, sink);
  job.log.set_rank(job.launch.rank);
  job.log.info("launched by " + job.launch.describe());
  if (job.launch.world_size == 1) {
    job.bootstrap = std::make_unique<SoloBootstrap>();
    return job;
  }
  const auto [host, port] = store_address(job.launch, job.settings);
  TcpStoreOptions options;
  options.host = host;
  options.port = port;
  options.timeout = job.settings.bootstrap_timeout;
  options.log = job.log;
  auto store = std::make_unique<TcpStore>(job.launch.rank, job.launch.world_size, options);
  job.address = store->local_address();
  job.bootstrap = std::move(store);
  return job;
}

RAILCC_NAMESPACE_END
