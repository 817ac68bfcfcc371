// railcc/nccl/check.hpp: every NCCL call checked, NCCL's types from railcc's, and the
// oldest NCCL the transport runs on.
//
// Needs nccl.h (target railcc::nccl); compiles with the host compiler.
#pragma once

#include <nccl.h>

#include <stdexcept>
#include <string>

#include "railcc/coll/collective.hpp"
#include "railcc/coll/data_type.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/nccl/version.hpp"

RAILCC_NAMESPACE_BEGIN

namespace nccl {

/// An NCCL call failed. `code()` is NCCL's result; `what()` names the call.
class NcclError : public std::runtime_error {
 public:
  NcclError(ncclResult_t code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  [[nodiscard]] ncclResult_t code() const { return code_; }

 private:
  ncclResult_t code_;
};

/// The oldest NCCL the transport runs on: ncclCommSplit (the per-rail communicators) came
/// in 2.18.
inline constexpr int oldest_version = 21800;

/// The NCCL library this process loaded; an InputError if it is older than the transport
/// needs.
inline int loaded_version() {
  int v = 0;
  const ncclResult_t rc = ncclGetVersion(&v);
  if (rc != ncclSuccess)
    throw NcclError(rc, std::string("NCCL: ncclGetVersion failed: ") + ncclGetErrorString(rc));
  if (v < oldest_version)
    throw InputError("NCCL " + version_text(v) + " is loaded, older than " +
                     version_text(oldest_version) +
                     ", the oldest railcc's NCCL transport runs on (it splits communicators "
                     "with ncclCommSplit): install a newer NCCL or put it first on "
                     "LD_LIBRARY_PATH");
  return v;
}

/// Throws NcclError naming `call` unless `rc` is ncclSuccess. `comm`, if given, adds
/// NCCL's last error message for it.
inline void check(ncclResult_t rc, const char* call, ncclComm_t comm = nullptr) {
  if (rc == ncclSuccess) return;
  std::string message = std::string("NCCL: ") + call + " failed: " + ncclGetErrorString(rc);
  const char* detail = ncclGetLastError(comm);
  if (detail != nullptr && *detail != '\0') message += " (" + std::string(detail) + ")";
  throw NcclError(rc, message);
}

inline ncclDataType_t type_of(DataType t) {
  switch (t) {
    case DataType::uint8: return ncclUint8;
    case DataType::int32: return ncclInt32;
    case DataType::int64: return ncclInt64;
    case DataType::float16: return ncclFloat16;
    case DataType::bfloat16: return ncclBfloat16;
    case DataType::float32: return ncclFloat32;
    case DataType::float64: return ncclFloat64;
  }
  throw LogicError("nccl: a data type with no NCCL type");
}

inline ncclRedOp_t op_of(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::prod: return ncclProd;
    case ReduceOp::min: return ncclMin;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::avg: return ncclAvg;
  }
  throw LogicError("nccl: a reduction with no NCCL operator");
}

}  // namespace nccl

RAILCC_NAMESPACE_END

/// Checks an NCCL call: RAILCC_NCCL_CHECK(ncclGroupEnd()).
#define RAILCC_NCCL_CHECK(call) ::railcc::nccl::check((call), #call)
