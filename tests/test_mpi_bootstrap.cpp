// The MPI bootstrap (mpi/bootstrap.hpp) under mpirun with 1-4 processes: random calls
// against a plain reference (the blobs themselves), a late rank named by every rank, and
// ranks that make different calls. Every rank runs every test, in the same order.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "check_contains.hpp"
#include "railcc/mpi/bootstrap.hpp"

using namespace railcc;
using namespace std::chrono_literals;

namespace {

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

}  // namespace

TEST_CASE("MPI bootstrap: random calls give every rank the reference's answers") {
  INFO("rank " << world_rank());
  MpiBootstrap boot(MPI_COMM_WORLD, 20s, Logger(LogLevel::none));
  const int size = boot.size();
  CHECK(boot.rank() == world_rank());
  // The same draws on every rank: the calls, their roots and every rank's blob.
  std::mt19937 rng(5);
  for (int c = 0; c < 40; ++c) {
    const int kind = std::uniform_int_distribution<int>(0, 2)(rng);
    const int root = std::uniform_int_distribution<int>(0, size - 1)(rng);
    std::vector<std::string> blobs;
    for (int r = 0; r < size; ++r) {
      std::string b(static_cast<std::size_t>(std::uniform_int_distribution<int>(0, 2000)(rng)),
                    '\0');
      for (char& ch : b) ch = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
      blobs.push_back(std::move(b));
    }
    CAPTURE(c);
    const auto mine = blobs[static_cast<std::size_t>(boot.rank())];
    if (kind == 0) {
      CHECK(boot.all_gather(mine) == blobs);
    } else if (kind == 1) {
      CHECK(boot.broadcast(mine, root) == blobs[static_cast<std::size_t>(root)]);
    } else {
      boot.barrier();
    }
  }
}

TEST_CASE("MPI bootstrap: a late rank is named on every rank") {
  if (world_size() < 2) return;
  INFO("rank " << world_rank());
  MpiBootstrap boot(MPI_COMM_WORLD, 300ms, Logger(LogLevel::none));
  const int late = boot.size() - 1;
  if (boot.rank() == late) std::this_thread::sleep_for(1200ms);
  std::string error;
  try {
    boot.barrier();
  } catch (const PeerError& e) {
    error = e.what();
  }
  CHECK_CONTAINS(error, "call #0 (barrier) timed out after 300 ms: ranks " + std::to_string(late) +
                            " of " + std::to_string(boot.size()) + " did not make it");
  // A broken bootstrap refuses the next call at once.
  CHECK_THROWS_AS(boot.barrier(), PeerError);
}

TEST_CASE("MPI bootstrap: ranks that make different calls are named") {
  if (world_size() < 2) return;
  INFO("rank " << world_rank());
  MpiBootstrap boot(MPI_COMM_WORLD, 20s, Logger(LogLevel::none));
  std::string error;
  try {
    if (boot.rank() == 1) {
      boot.barrier();
    } else {
      (void)boot.all_gather("a");
    }
  } catch (const PeerError& e) {
    error = e.what();
  }
  CHECK_CONTAINS(error, "ranks made different calls as call #0: rank 0 all_gather, rank 1 barrier");
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  doctest::Context context(argc, argv);
  // Rank 0 reports; the others report their failures only.
  if (world_rank() != 0) context.setOption("minimal", true);
  const int failed = context.run();
  MPI_Finalize();
  return failed;
}
