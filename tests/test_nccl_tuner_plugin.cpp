// librailcc-nccl-tuner.so, loaded with dlopen and called as NCCL calls a tuner plugin:
// both interface versions are there under NCCL's names, a collective's cost table gets
// railcc's times for the algorithms railcc models (the Simple entry railcc's time, the
// other protocols scaled alike) and keeps NCCL's everywhere else, and bad input is an
// error code and a message through NCCL's logger, never an exception or a crash.
#include <dlfcn.h>
#include <doctest/doctest.h>
#include <stdlib.h>

#include <cstdarg>
#include <cstdio>
#include <string>
#include <vector>

#include "railcc/nccl/tuner_abi.hpp"
#include "railcc/nccl/tuner_costs.hpp"

using namespace railcc;

namespace {

std::vector<std::string> logged;

void record(RailccNcclLogLevel, unsigned long flags, const char*, int, const char* fmt, ...) {
  char line[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(line, sizeof line, fmt, args);
  va_end(args);
  logged.emplace_back(line);
  CHECK(flags == railcc_nccl_log_tuning);
}

struct Plugin {
  Plugin() {
    handle = dlopen(RAILCC_NCCL_TUNER_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    REQUIRE_MESSAGE(handle != nullptr, dlerror());
    v4 = static_cast<RailccNcclTunerV4*>(dlsym(handle, "ncclTunerPlugin_v4"));
    v5 = static_cast<RailccNcclTunerV5*>(dlsym(handle, "ncclTunerPlugin_v5"));
    REQUIRE(v4 != nullptr);
    REQUIRE(v5 != nullptr);
  }
  ~Plugin() { dlclose(handle); }
  void* handle = nullptr;
  RailccNcclTunerV4* v4 = nullptr;
  RailccNcclTunerV5* v5 = nullptr;
};

/// A table as NCCL fills one: every entry used except CollNet's and PAT's (-1).
struct Table {
  Table() {
    for (int a = 0; a < 7; ++a) {
      for (int p = 0; p < 3; ++p)
        t[a][p] = 10.0f * static_cast<float>(a + 1) + static_cast<float>(p);
    }
    for (int p = 0; p < 3; ++p) {
      t[railcc_nccl_algo_collnet_direct][p] = -1;
      t[railcc_nccl_algo_collnet_chain][p] = -1;
      t[railcc_nccl_algo_pat][p] = -1;
    }
  }
  float** raw() { return reinterpret_cast<float**>(&t[0][0]); }
  float t[7][3];
};

/// railcc's time for NCCL algorithm `a`, from the cost model as the communicator builds it.
double railcc_us(std::size_t ranks, std::size_t nodes, Collective c, Algorithm a,
                 std::size_t bytes) {
  ColossusParams p;
  p.gpus = ranks;
  NodeShape shape;
  shape.gpus = static_cast<std::uint32_t>(ranks / nodes);
  shape.nvlink = h100_nvlink_usable;
  shape.nic = nic_400g_usable;
  shape.nvswitch_reduction = true;
  p.node = shape;
  const Fabric f = colossus(p);
  CostModel m = CostModel::of(f, ranks);
  m.channels = static_cast<int>(ranks / nodes);
  for (const TunerCandidate& k : m.candidates(c, bytes))
    if (k.choice.algorithm == a && k.runs()) return k.choice.predicted.in_us();
  FAIL("railcc has no ", to_string(a), " here");
  return 0;
}

}  // namespace

TEST_CASE("the plugin rewrites NCCL's table with railcc's times, through both interfaces") {
  unsetenv("RAILCC_FABRIC");
  Plugin plugin;
  CHECK(std::string(plugin.v4->name) == "railcc");
  CHECK(std::string(plugin.v5->name) == "railcc");

  logged.clear();
  void* c4 = nullptr;
  REQUIRE(plugin.v4->init(16, 2, record, &c4) == railcc_nccl_success);
  REQUIRE(c4 != nullptr);
  REQUIRE(logged.size() == 1);
  CHECK(logged[0].find("16 ranks on 2 nodes") != std::string::npos);

  void* c5 = nullptr;
  RailccNcclNvlDomainInfoV5 domains{2, 8, 8};
  RailccNcclTunerConstantsV5 constants{};
  constants.baseLatencies[1][2] = 8.4;
  REQUIRE(plugin.v5->init(&c5, 7, 16, 2, record, &domains, &constants) == railcc_nccl_success);
  CHECK(constants.baseLatencies[1][2] == 8.4);  // NCCL's constants are left alone

  for (std::size_t bytes : {std::size_t{1} << 10, std::size_t{1} << 20, std::size_t{1} << 30}) {
    CAPTURE(bytes);
    Table t4, t5;
    const Table nccl;
    int channels = 0;
    REQUIRE(plugin.v4->getCollInfo(c4, railcc_nccl_all_reduce, bytes, 1, t4.raw(), 7, 3, 0,
                                   &channels) == railcc_nccl_success);
    REQUIRE(plugin.v5->getCollInfo(c5, railcc_nccl_all_reduce, bytes, 1, t5.raw(), 7, 3, 0,
                                   &channels) == railcc_nccl_success);
    CHECK(channels == 0);  // NCCL's channel count stays NCCL's
    const double ring = railcc_us(16, 2, Collective::all_reduce, Algorithm::ring, bytes);
    const double tree = railcc_us(16, 2, Collective::all_reduce, Algorithm::tree, bytes);
    for (const Table* t : {&t4, &t5}) {
      CHECK(t->t[railcc_nccl_algo_ring][railcc_nccl_proto_simple] ==
            doctest::Approx(ring).epsilon(1e-6));
      CHECK(t->t[railcc_nccl_algo_tree][railcc_nccl_proto_simple] ==
            doctest::Approx(tree).epsilon(1e-6));
      // The other protocols scaled as the Simple entry was.
      for (int a : {railcc_nccl_algo_ring, railcc_nccl_algo_tree}) {
        const double factor =
            t->t[a][railcc_nccl_proto_simple] / nccl.t[a][railcc_nccl_proto_simple];
        for (int p : {railcc_nccl_proto_ll, railcc_nccl_proto_ll128})
          CHECK(t->t[a][p] == doctest::Approx(nccl.t[a][p] * factor).epsilon(1e-5));
      }
      // Rows railcc does not model (NVLS on two nodes, NVLS tree), and those NCCL does not
      // use, are NCCL's.
      for (int a : {railcc_nccl_algo_collnet_direct, railcc_nccl_algo_collnet_chain,
                    railcc_nccl_algo_nvls, railcc_nccl_algo_nvls_tree, railcc_nccl_algo_pat})
        for (int p = 0; p < 3; ++p) CHECK(t->t[a][p] == nccl.t[a][p]);
    }
  }

  // All-gather: the ring is railcc's, the tree (which NCCL runs for all-reduce alone) NCCL's,
  // after an all-reduce of the same size (the prices kept are per collective), and again.
  const Table nccl;
  const std::size_t bytes = std::size_t{16} << 20;
  Table before;
  REQUIRE(plugin.v4->getCollInfo(c4, railcc_nccl_all_reduce, bytes, 1, before.raw(), 7, 3, 0,
                                 nullptr) == railcc_nccl_success);
  for (int again = 0; again < 2; ++again) {
    Table t;
    REQUIRE(plugin.v4->getCollInfo(c4, railcc_nccl_all_gather, bytes, 1, t.raw(), 7, 3, 0,
                                   nullptr) == railcc_nccl_success);
    CHECK(t.t[railcc_nccl_algo_ring][railcc_nccl_proto_simple] ==
          doctest::Approx(railcc_us(16, 2, Collective::all_gather, Algorithm::ring, bytes))
              .epsilon(1e-6));
    for (int p = 0; p < 3; ++p)
      CHECK(t.t[railcc_nccl_algo_tree][p] == nccl.t[railcc_nccl_algo_tree][p]);
  }
  CHECK(before.t[railcc_nccl_algo_ring][railcc_nccl_proto_simple] ==
        doctest::Approx(railcc_us(16, 2, Collective::all_reduce, Algorithm::ring, bytes))
            .epsilon(1e-6));

  // Send and receive (ncclFuncSendRecv = 5): nothing to price, the table as it was.
  Table s;
  REQUIRE(plugin.v4->getCollInfo(c4, static_cast<RailccNcclFunc>(5), bytes, 1, s.raw(), 7, 3, 0,
                                 nullptr) == railcc_nccl_success);
  for (int a = 0; a < 7; ++a)
    for (int p = 0; p < 3; ++p) CHECK(s.t[a][p] == nccl.t[a][p]);

  CHECK(plugin.v4->destroy(c4) == railcc_nccl_success);
  CHECK(plugin.v5->finalize(c5) == railcc_nccl_success);
}

TEST_CASE("on one node the plugin prices NVLS, and a cheaper railcc time can change NCCL's pick") {
  unsetenv("RAILCC_FABRIC");
  Plugin plugin;
  void* c = nullptr;
  REQUIRE(plugin.v4->init(8, 1, record, &c) == railcc_nccl_success);
  Table t;
  const std::size_t bytes = std::size_t{256} << 20;
  REQUIRE(plugin.v4->getCollInfo(c, railcc_nccl_all_reduce, bytes, 1, t.raw(), 7, 3, 0, nullptr) ==
          railcc_nccl_success);
  const double ring = railcc_us(8, 1, Collective::all_reduce, Algorithm::ring, bytes);
  const double nvls = railcc_us(8, 1, Collective::all_reduce, Algorithm::nvls, bytes);
  CHECK(t.t[railcc_nccl_algo_ring][railcc_nccl_proto_simple] ==
        doctest::Approx(ring).epsilon(1e-6));
  CHECK(t.t[railcc_nccl_algo_nvls][railcc_nccl_proto_simple] ==
        doctest::Approx(nvls).epsilon(1e-6));
  // The table as NCCL gave it had ring (22 us, Simple) under NVLS (52 us); at 256 MiB
  // railcc's model has NVLS ahead on one node, and the table now says so.
  REQUIRE(nvls < ring);
  CHECK(t.t[railcc_nccl_algo_nvls][railcc_nccl_proto_simple] <
        t.t[railcc_nccl_algo_ring][railcc_nccl_proto_simple]);
  CHECK(plugin.v4->destroy(c) == railcc_nccl_success);
}

TEST_CASE("bad input: an error code and NCCL's logger, never an exception") {
  Plugin plugin;
  logged.clear();
  setenv("RAILCC_FABRIC", "/nonexistent/fabric.json", 1);
  void* c = reinterpret_cast<void*>(0x1);
  CHECK(plugin.v4->init(16, 2, record, &c) == railcc_nccl_internal_error);
  CHECK(c == nullptr);
  REQUIRE(logged.size() == 1);
  CHECK(logged[0].find("/nonexistent/fabric.json") != std::string::npos);
  CHECK(logged[0].find("NCCL tunes this communicator itself") != std::string::npos);

  // A fabric too small for the job, through the v5 interface.
  setenv("RAILCC_FABRIC", "llama3", 1);
  logged.clear();
  RailccNcclNvlDomainInfoV5 domains{4096, 8, 8};
  CHECK(plugin.v5->init(&c, 1, 32768, 4096, record, &domains, nullptr) ==
        railcc_nccl_internal_error);
  REQUIRE(logged.size() == 1);
  CHECK(logged[0].find("hosts of 8 GPUs, but NCCL's job has 4096 nodes") != std::string::npos);
  unsetenv("RAILCC_FABRIC");

  // Ranks that do not fill their nodes evenly (9 and 8), and no logger at all.
  CHECK(plugin.v4->init(17, 2, nullptr, &c) == railcc_nccl_success);  // 9 per node: fits
  CHECK(plugin.v4->destroy(c) == railcc_nccl_success);
  CHECK(plugin.v4->init(16, 2, nullptr, nullptr) == railcc_nccl_invalid_argument);
  REQUIRE(plugin.v4->init(16, 2, nullptr, &c) == railcc_nccl_success);
  CHECK(plugin.v4->getCollInfo(c, railcc_nccl_all_reduce, 1024, 1, nullptr, 7, 3, 0, nullptr) ==
        railcc_nccl_invalid_argument);
  CHECK(plugin.v4->getCollInfo(nullptr, railcc_nccl_all_reduce, 1024, 1, nullptr, 7, 3, 0,
                               nullptr) == railcc_nccl_invalid_argument);
  CHECK(plugin.v4->destroy(c) == railcc_nccl_success);
  CHECK(plugin.v4->destroy(nullptr) == railcc_nccl_success);
}
