// railcc/comm/placement.hpp: where each rank of a job sits (host, local index, rail),
// from what every rank says of itself.
//
// Ranks on one host are those that give the same host name; hosts are numbered in the
// order their first rank appears, and a host's ranks take local indices in rank order, as
// launchers number local ranks. A rank's rail is its GPU's NIC's rail where the node's
// topology says (RAILCC_TOPO_FILE), else its local index (one NIC per GPU, NIC i on rail
// i, as rail-optimised fabrics are built). Under RAILCC_RANKS_PER_HOST every N
// consecutive ranks name one host instead of their machine's.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "railcc/coll/backend.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/topology/affinity.hpp"
#include "railcc/topology/node_topology.hpp"

RAILCC_NAMESPACE_BEGIN

/// Every rank's placement, and the hosts' shape.
struct JobPlacement {
  std::vector<RankPlacement> ranks;
  std::size_t hosts = 0;
  std::size_t max_per_host = 0;
  /// Every host has the same number of ranks (hierarchical algorithms need it).
  bool uniform = false;
  /// The names of the hosts, by host index.
  std::vector<std::string> host_names;

  /// "8 ranks on 2 hosts of 4 (node-a: ranks 0-3, ...)" for the log.
  [[nodiscard]] std::string describe() const {
    std::string s = std::to_string(ranks.size()) + " rank" + (ranks.size() == 1 ? "" : "s") +
                    " on " + std::to_string(hosts) + " host" + (hosts == 1 ? "" : "s");
    if (uniform) s += " of " + std::to_string(max_per_host);
    return s;
  }
};

/// Placement from each rank's host (in rank order: ranks that give the same string share
/// a host). Rails are the local indices; the communicator replaces them where the node's
/// topology says otherwise.
inline JobPlacement place_ranks(const std::vector<std::string>& host_of_rank) {
  JobPlacement p;
  const std::size_t n = host_of_rank.size();
  p.ranks.resize(n);
  std::vector<std::size_t> count;
  std::map<std::string, std::uint32_t> index;
  for (std::size_t r = 0; r < n; ++r) {
    const auto [it, fresh] =
        index.emplace(host_of_rank[r], static_cast<std::uint32_t>(p.host_names.size()));
    if (fresh) {
      p.host_names.push_back(host_of_rank[r]);
      count.push_back(0);
    }
    const std::uint32_t host = it->second;
    const auto local = static_cast<std::uint32_t>(count[host]++);
    p.ranks[r] = {host, local, local};
  }
  p.hosts = count.size();
  p.max_per_host = count.empty() ? 0 : *std::max_element(count.begin(), count.end());
  p.uniform = !count.empty() && std::all_of(count.begin(), count.end(),
                                            [&](std::size_t c) { return c == p.max_per_host; });
  return p;
}

/// The host a rank names under RAILCC_RANKS_PER_HOST=`per_host`.
inline std::string grouped_host(int rank, int per_host) {
  return "host " + std::to_string(rank / per_host) +
         " (RAILCC_RANKS_PER_HOST=" + std::to_string(per_host) + ")";
}

/// The rail of the GPU at `local` index of a node: the rail of its own NIC where it has
/// one, else of its nearest NIC, else `local`. A node with fewer GPUs than the host runs
/// ranks is an InputError: the topology is not this machine's.
inline std::uint32_t rail_from_topology(const NodeTopology& topo, std::uint32_t local,
                                        std::size_t ranks_here) {
  const auto gpus = topo.gpus();
  if (ranks_here > gpus.size())
    throw InputError("RAILCC_TOPO_FILE: " + topo.source() + " has " + std::to_string(gpus.size()) +
                     " GPU" + (gpus.size() == 1 ? "" : "s") + ", but this host runs " +
                     std::to_string(ranks_here) + " ranks: it is not this machine's topology");
  const auto rails = nic_rails(topo);
  const DeviceId gpu = gpus[local];
  const auto a = gpu_affinity(topo, gpu, rails);
  if (!a.rail_nics.empty()) return static_cast<std::uint32_t>(topo.device(gpu).gpu().index);
  for (DeviceId nic : a.nearest_nics) {
    if (const auto r = rails[static_cast<std::size_t>(topo.nic_ordinal(nic))])
      return static_cast<std::uint32_t>(*r);
  }
  return local;
}

RAILCC_NAMESPACE_END
