// A job's processes meet: each finds its rank from the launcher's environment (torchrun,
// srun, mpirun), joins the others through railcc's bootstrap, and they exchange who they
// are; rank 0 prints one line per rank.
//
//   torchrun --nproc-per-node 4 --no-python railcc_example_bootstrap_job
//   RAILCC_BOOTSTRAP_ADDR=node0:29500 srun -n 16 railcc_example_bootstrap_job
//   railcc_example_bootstrap_job --exit-before-gather 2   # rank 2 dies: the others say so
//
// Exit status: 0, 2 for bad input (the environment), 3 when another rank failed or did
// not arrive in time (the message names it).
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "railcc/bootstrap.hpp"

int main(int argc, char** argv) {
  int exit_rank = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--exit-before-gather" && i + 1 < argc) {
      exit_rank = std::atoi(argv[++i]);
    } else {
      std::cerr << "usage: " << argv[0] << " [--exit-before-gather RANK]\n";
      return 2;
    }
  }
  try {
    railcc::Job job = railcc::start_job(railcc::Environment::process());
    railcc::Bootstrap& boot = *job.bootstrap;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    const std::string me = std::string(host) + " pid " + std::to_string(::getpid()) +
                           ", local rank " + std::to_string(job.launch.local_rank) + " of " +
                           std::to_string(job.launch.local_size);
    // A process that dies here leaves without a goodbye, as a crash does.
    if (boot.rank() == exit_rank) std::_Exit(4);
    const std::vector<std::string> everyone = boot.all_gather(me);
    const std::string launcher = boot.broadcast(job.launch.describe(), 0);
    boot.barrier();
    if (boot.rank() == 0) {
      std::cout << "job of " << boot.size() << " (" << launcher << ")\n";
      for (std::size_t r = 0; r < everyone.size(); ++r)
        std::cout << "rank " << r << ": " << everyone[r] << "\n";
    }
    return 0;
  } catch (const railcc::InputError& e) {
    std::cerr << "railcc_example_bootstrap_job: " << e.what() << "\n";
    return 2;
  } catch (const railcc::PeerError& e) {
    std::cerr << "railcc_example_bootstrap_job: " << e.what() << "\n";
    return 3;
  }
}
