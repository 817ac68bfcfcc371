// railcc/nccl/tuner_abi.hpp: the C interface NCCL loads tuner plugins through, versions 4
// and 5, written from NCCL 2.28's documented plugin interface (its
// src/include/plugin/tuner/tuner_v4.h and tuner_v5.h) for railcc's own plugin.
//
// NCCL dlopen()s the library NCCL_TUNER_PLUGIN names and looks up the newest symbol it
// knows (ncclTunerPlugin_v5, then _v4, ...): a struct of a name and three functions. At
// each communicator's start it calls init; for each collective it calls getCollInfo with
// its own cost table, float[numAlgo][numProto] in microseconds, entries it will not use
// set to -1, which the plugin may rewrite before NCCL picks the cheapest entry; at the
// communicator's end destroy (v4) or finalize (v5). The types below must match NCCL's
// byte for byte: they are C structs of pointers and ints, and NCCL's enums are int-sized.
// No NCCL header is needed to build against them.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

/// ncclResult_t's values (nccl.h).
enum RailccNcclResult : int {
  railcc_nccl_success = 0,
  railcc_nccl_internal_error = 3,
  railcc_nccl_invalid_argument = 4,
};

/// ncclFunc_t: the collective a cost table is for.
enum RailccNcclFunc : int {
  railcc_nccl_broadcast = 0,
  railcc_nccl_reduce = 1,
  railcc_nccl_all_gather = 2,
  railcc_nccl_reduce_scatter = 3,
  railcc_nccl_all_reduce = 4,
};

/// The cost table's first index (NCCL_ALGO_*) and second (NCCL_PROTO_*).
enum RailccNcclAlgorithm : int {
  railcc_nccl_algo_tree = 0,
  railcc_nccl_algo_ring = 1,
  railcc_nccl_algo_collnet_direct = 2,
  railcc_nccl_algo_collnet_chain = 3,
  railcc_nccl_algo_nvls = 4,
  railcc_nccl_algo_nvls_tree = 5,
  railcc_nccl_algo_pat = 6,
};
enum RailccNcclProtocol : int {
  railcc_nccl_proto_ll = 0,
  railcc_nccl_proto_ll128 = 1,
  railcc_nccl_proto_simple = 2,
};

/// ncclDebugLogLevel and ncclDebugLogSubSys's NCCL_TUNING bit.
enum RailccNcclLogLevel : int {
  railcc_nccl_log_none = 0,
  railcc_nccl_log_version = 1,
  railcc_nccl_log_warn = 2,
  railcc_nccl_log_info = 3,
  railcc_nccl_log_abort = 4,
  railcc_nccl_log_trace = 5,
};
inline constexpr unsigned long railcc_nccl_log_tuning = 64;

/// ncclDebugLogger_t: NCCL's logger, printf-style.
typedef void (*RailccNcclLogger)(RailccNcclLogLevel level, unsigned long flags, const char* file,
                                 int line, const char* fmt, ...);

/// ncclTuner_v4_t.
typedef struct {
  const char* name;
  RailccNcclResult (*init)(std::size_t nRanks, std::size_t nNodes, RailccNcclLogger logFunction,
                           void** context);
  RailccNcclResult (*getCollInfo)(void* context, RailccNcclFunc collType, std::size_t nBytes,
                                  int numPipeOps, float** collCostTable, int numAlgo, int numProto,
                                  int regBuff, int* nChannels);
  RailccNcclResult (*destroy)(void* context);
} RailccNcclTunerV4;

/// ncclNvlDomainInfo_v5_t: how the ranks sit in NVLink domains (hosts, for H100 nodes).
typedef struct {
  int nNvlDomains;
  int minRanksPerNvlDomain;
  int maxRanksPerNvlDomain;
} RailccNcclNvlDomainInfoV5;

/// ncclTunerConstants_v5_t: NCCL's own tuning constants, which a plugin may change at init
/// (railcc leaves them as they are).
typedef struct {
  double baseLatencies[7][3];
  double hwLatencies[3][7][3];
  double llMaxBws[4][3];
  double perChMaxRingLL128Bws[4][3];
  double perChMaxTreeLL128Bws[4][3];
  double perChMaxTreeBws[4][3];
  double perChMaxNVLSTreeBws[4][3];
} RailccNcclTunerConstantsV5;

/// ncclTuner_v5_t.
typedef struct {
  const char* name;
  RailccNcclResult (*init)(void** context, std::uint64_t commId, std::size_t nRanks,
                           std::size_t nNodes, RailccNcclLogger logFunction,
                           RailccNcclNvlDomainInfoV5* nvlDomainInfo,
                           RailccNcclTunerConstantsV5* constants);
  RailccNcclResult (*getCollInfo)(void* context, RailccNcclFunc collType, std::size_t nBytes,
                                  int numPipeOps, float** collCostTable, int numAlgo, int numProto,
                                  int regBuff, int* nChannels);
  RailccNcclResult (*finalize)(void* context);
} RailccNcclTunerV5;

}  // extern "C"
