// railcc/formats/fabric_spec.hpp: a fabric by the name users give it (railcc-sim's --fabric,
// RAILCC_FABRIC): a preset, or a fabric JSON file.
#pragma once

#include <cstdint>
#include <string>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/fabric/presets.hpp"
#include "railcc/formats/fabric_json.hpp"

RAILCC_NAMESPACE_BEGIN

/// The fabric `spec` names, with room for `gpus` where the preset scales (0: the preset's
/// own size):
///  - colossus: the rail-optimised Clos of ColossusParams, `gpus` rounded up to hosts;
///  - llama3, hpn: the presets as they are;
///  - fat-tree: the smallest k-ary fat tree (k even) with room for `gpus`;
///  - a path ending in .json: a fabric file (its fixed costs into `file_costs`).
/// `what` names the setting in errors ("--fabric", "RAILCC_FABRIC").
inline Fabric fabric_from_spec(const std::string& spec, std::uint64_t gpus,
                               FixedCosts* file_costs = nullptr,
                               const std::string& what = "--fabric") {
  if (spec == "colossus") {
    ColossusParams p;
    if (gpus > 0) p.gpus = gpus;
    return colossus(p);
  }
  if (spec == "llama3") return llama3();
  if (spec == "hpn") return hpn();
  if (spec == "fat-tree") {
    // gpus is at most max_fabric_endpoints, so k stays small (254 at 4M GPUs).
    std::uint32_t k = 4;
    while (gpus > 0 && static_cast<std::uint64_t>(k) * k * k / 4 < gpus) k += 2;
    if (gpus == 0) k = 16;
    return fat_tree(k);
  }
  if (spec.size() > 5 && spec.substr(spec.size() - 5) == ".json")
    return read_fabric_json(spec, file_costs);
  throw InputError(what + " '" + spec +
                   "': not a preset (colossus, llama3, hpn, fat-tree) nor a .json fabric file");
}

RAILCC_NAMESPACE_END
