// railcc/nccl/version.hpp: NCCL's version codes as text. Plain C++ (no nccl.h), so what
// reasons about versions is tested without NCCL.
#pragma once

#include <string>

#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

namespace nccl {

/// "2.28.9" from NCCL's version code.
inline std::string version_text(int code) {
  // Codes are MAJOR*1000 + MINOR*100 + PATCH before 2.9, MAJOR*10000 + MINOR*100 + PATCH since.
  const int major = code >= 10000 ? code / 10000 : code / 1000;
  const int minor = code >= 10000 ? code / 100 % 100 : code / 100 % 10;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(code % 100);
}

}  // namespace nccl

RAILCC_NAMESPACE_END
