// railcc/nccl/lanes.hpp: when the NCCL transport may run more than one lane.
//
// A lane (comm/waves.hpp) is a stream with an NCCL communicator of its own, so lanes
// mean several communicators with operations in flight on one GPU at once. NCCL's
// kernels for one operation wait for their peers on the GPU; with two communicators,
// two ranks whose GPUs ran the communicators' kernels in opposite orders would wait for
// each other for ever. NCCL 2.26 added NCCL_LAUNCH_ORDER_IMPLICIT=1: operations of
// communicators on one device run in the order the host queued them (with CUDA 12.3 or
// later still overlapping, NCCL's documentation says). railcc queues its waves in the
// same order on every rank (level, then lane), so with that setting lanes cannot
// deadlock; without it they might, so they are refused. Plain C++ (no nccl.h): the rule
// is tested without NCCL.
#pragma once

#include <string>

#include "railcc/comm/waves.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/nccl/version.hpp"

RAILCC_NAMESPACE_BEGIN

namespace nccl {

/// The first NCCL with NCCL_LAUNCH_ORDER_IMPLICIT (2.26.0).
constexpr int launch_order_version = 22600;
/// The most lanes the transport runs (RAILCC_LANES).
constexpr int max_lanes = WaveSchedule::max_lanes;

/// Whether `lanes` lanes may run on NCCL `version` (its version code) with
/// NCCL_LAUNCH_ORDER_IMPLICIT set to `launch_order` (null: unset): an InputError that
/// says what is missing if not.
inline void require_lanes(int lanes, int version, const char* launch_order) {
  if (lanes < 1 || lanes > max_lanes)
    throw InputError("NCCL transport: " + std::to_string(lanes) + " lanes (RAILCC_LANES is 1 to " +
                     std::to_string(max_lanes) + ")");
  if (lanes == 1) return;
  const std::string what = "NCCL transport: RAILCC_LANES=" + std::to_string(lanes) + " runs " +
                           std::to_string(lanes) + " NCCL communicators at once on this GPU, ";
  if (version < launch_order_version)
    throw InputError(what +
                     "which needs NCCL 2.26 or later (NCCL_LAUNCH_ORDER_IMPLICIT); this process "
                     "loaded NCCL " +
                     version_text(version) + ". Use one lane, or a newer NCCL");
  if (launch_order == nullptr || std::string(launch_order) != "1")
    throw InputError(
        what + "which needs NCCL_LAUNCH_ORDER_IMPLICIT=1 (it is " +
        (launch_order == nullptr ? std::string("unset") : "\"" + std::string(launch_order) + "\"") +
        "): without it, NCCL may run two communicators' operations in another "
        "order than railcc queued them in, and they can wait for each other for "
        "ever. Set it, or use one lane");
}

}  // namespace nccl

RAILCC_NAMESPACE_END
