// librailcc-nccl-tuner.so: railcc's cost model inside NCCL, as a tuner plugin
// (NCCL_TUNER_PLUGIN=/path/to/librailcc-nccl-tuner.so). It exports ncclTunerPlugin_v5 and
// ncclTunerPlugin_v4 (nccl/tuner_abi.hpp); NCCL takes the newest it knows. Each
// communicator gets a context holding railcc's cost model for its placement on the fabric
// (nccl/tuner_costs.hpp), and each collective's cost table is rewritten with it.
// Nothing thrown crosses into NCCL: every entry point catches, logs through NCCL's logger
// and returns an error, on which NCCL falls back to its own tuning.
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>

#include "railcc/fabric/fabric.hpp"
#include "railcc/formats/fabric_spec.hpp"
#include "railcc/nccl/tuner_abi.hpp"
#include "railcc/nccl/tuner_costs.hpp"

#define RAILCC_EXPORT __attribute__((visibility("default")))

namespace {

struct Context {
  railcc::nccl::CostTable costs;
  RailccNcclLogger log;
};

template <class... Args>
void log(RailccNcclLogger logger, RailccNcclLogLevel level, const char* fmt, Args... args) {
  if (logger != nullptr) logger(level, railcc_nccl_log_tuning, __FILE__, __LINE__, fmt, args...);
}

RailccNcclResult init_job(railcc::nccl::TunerJob job, RailccNcclLogger logger, void** context) {
  if (context == nullptr) return railcc_nccl_invalid_argument;
  *context = nullptr;
  try {
    std::optional<railcc::Fabric> fabric;
    std::string name;
    if (const char* spec = std::getenv("RAILCC_FABRIC"); spec != nullptr && *spec != '\0') {
      fabric = railcc::fabric_from_spec(spec, job.nodes * job.per_node, nullptr, "RAILCC_FABRIC");
      name = spec;
    }
    auto* c = new Context{railcc::nccl::CostTable(job, std::move(fabric), name), logger};
    *context = c;
    log(logger, railcc_nccl_log_info,
        "railcc tuner: %zu ranks on %zu nodes, on %s: ring, tree and NVLS priced by railcc",
        job.ranks, job.nodes, c->costs.fabric_name().c_str());
    return railcc_nccl_success;
  } catch (const std::exception& e) {
    log(logger, railcc_nccl_log_warn, "railcc tuner: %s (NCCL tunes this communicator itself)",
        e.what());
  } catch (...) {
    log(logger, railcc_nccl_log_warn, "railcc tuner: an unknown error (NCCL tunes itself)");
  }
  return railcc_nccl_internal_error;
}

RailccNcclResult init_v4(std::size_t nRanks, std::size_t nNodes, RailccNcclLogger logFunction,
                         void** context) {
  const std::size_t nodes = nNodes == 0 ? 1 : nNodes;
  return init_job({nRanks, nNodes, (nRanks + nodes - 1) / nodes}, logFunction, context);
}

RailccNcclResult init_v5(void** context, std::uint64_t /*commId*/, std::size_t nRanks,
                         std::size_t nNodes, RailccNcclLogger logFunction,
                         RailccNcclNvlDomainInfoV5* nvlDomainInfo,
                         RailccNcclTunerConstantsV5* /*constants: NCCL's, left as they are*/) {
  const std::size_t nodes = nNodes == 0 ? 1 : nNodes;
  std::size_t per_node = (nRanks + nodes - 1) / nodes;
  if (nvlDomainInfo != nullptr && nvlDomainInfo->maxRanksPerNvlDomain > 0 &&
      nvlDomainInfo->nNvlDomains == static_cast<int>(nNodes))
    per_node = static_cast<std::size_t>(nvlDomainInfo->maxRanksPerNvlDomain);
  return init_job({nRanks, nNodes, per_node}, logFunction, context);
}

RailccNcclResult get_coll_info(void* context, RailccNcclFunc collType, std::size_t nBytes,
                               int /*numPipeOps*/, float** collCostTable, int numAlgo, int numProto,
                               int /*regBuff*/, int* /*nChannels: NCCL's*/) {
  auto* c = static_cast<Context*>(context);
  if (c == nullptr || collCostTable == nullptr || numAlgo < 0 || numProto < 0)
    return railcc_nccl_invalid_argument;
  try {
    // NCCL passes its float[numAlgo][numProto] as float**: the first entry's address.
    c->costs.rewrite(collType, nBytes, reinterpret_cast<float*>(collCostTable), numAlgo, numProto);
    return railcc_nccl_success;
  } catch (const std::exception& e) {
    log(c->log, railcc_nccl_log_warn, "railcc tuner: %s (NCCL's own costs kept)", e.what());
  } catch (...) {
    log(c->log, railcc_nccl_log_warn, "railcc tuner: an unknown error (NCCL's own costs kept)");
  }
  return railcc_nccl_internal_error;
}

RailccNcclResult finish(void* context) {
  delete static_cast<Context*>(context);
  return railcc_nccl_success;
}

}  // namespace

extern "C" {
RAILCC_EXPORT RailccNcclTunerV5 ncclTunerPlugin_v5 = {"railcc", init_v5, get_coll_info, finish};
RAILCC_EXPORT RailccNcclTunerV4 ncclTunerPlugin_v4 = {"railcc", init_v4, get_coll_info, finish};
}
