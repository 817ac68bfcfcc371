// railcc/coll/algorithms/all_to_all.hpp: all-to-all (pairwise, and PXN: rails kept by
// relaying over NVLink) and send/recv.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "railcc/coll/algorithms/common.hpp"
#include "railcc/coll/backend.hpp"
#include "railcc/coll/call.hpp"
#include "railcc/coll/collective.hpp"
#include "railcc/coll/order.hpp"
#include "railcc/coll/phases.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

namespace detail::coll {

/// PXN all-to-all (NCCL's PXN, "PCI x NVLink"): a chunk for a GPU on another host first
/// crosses NVLink to the GPU of its own host on the destination's rail, which sends it over
/// its NIC with the other chunks of the host for that destination. Every byte between hosts
/// then stays on its rail: on a rail-optimized fabric it climbs no higher than the rail's
/// leaves allow, where pairwise all-to-all sends seven of eight chunks across rails, through
/// the spines. The price is NVLink bytes ((G - 1) / G of the buffer) and a second latency.
///
///  - relay(X, d): the rank of host X on d's rail (the same local index first); a host
///    without one sends to d directly, as pairwise does;
///  - phase 1: rank s of host X puts its chunk for d into relay(X, d)'s scratch, at the
///    slot of (d, s's position in X); its chunks for its own host go straight to the
///    output over NVLink;
///  - phase 2: each relay sends, per destination, its host's chunks as one block into the
///    destination's output, where they lie together when the host's ranks are numbered in
///    a row (else one transfer per chunk).
template <CollectiveBackend B>
std::vector<Deps> pxn_all_to_all(B& b, const CollectiveCall& call, std::size_t chunk) {
  const int p = b.ranks();
  const auto P = static_cast<std::size_t>(p);
  const std::vector<std::vector<int>> hosts = placement_hosts(b);
  std::vector<std::size_t> host_of(P), position(P);  // host index, position in the host
  for (std::size_t x = 0; x < hosts.size(); ++x) {
    for (std::size_t i = 0; i < hosts[x].size(); ++i) {
      host_of[static_cast<std::size_t>(hosts[x][i])] = x;
      position[static_cast<std::size_t>(hosts[x][i])] = i;
    }
  }
  const auto relay = [&](std::size_t x, int d) {
    const RankPlacement pd = b.placement(d);
    int found = -1;
    for (int r : hosts[x]) {
      const RankPlacement pr = b.placement(r);
      if (pr.rail != pd.rail) continue;
      if (pr.local == pd.local) return r;
      if (found < 0) found = r;
    }
    return found;
  };
  // Per relay, the destinations it relays to, in rank order: the k-th's block of chunks
  // (one per rank of the relay's host) is slot k of its scratch.
  std::vector<std::vector<int>> relayed(P);
  std::size_t most_slots = 0;
  for (std::size_t x = 0; x < hosts.size(); ++x) {
    for (int d = 0; d < p; ++d) {
      if (host_of[static_cast<std::size_t>(d)] == x) continue;
      const int r = relay(x, d);
      if (r < 0) continue;
      auto& list = relayed[static_cast<std::size_t>(r)];
      list.push_back(d);
      most_slots = std::max(most_slots, list.size() * hosts[x].size());
    }
  }
  const BufferId scratch = b.allocate(std::max<std::size_t>(most_slots, 1) * chunk);
  const auto block_of = [&](int r, int d) {
    const auto& list = relayed[static_cast<std::size_t>(r)];
    return static_cast<std::size_t>(std::lower_bound(list.begin(), list.end(), d) - list.begin());
  };
  std::vector<std::vector<Deps>> staged(P);  // per relay and block: the ops that filled it
  for (int r = 0; r < p; ++r)
    staged[static_cast<std::size_t>(r)].resize(relayed[static_cast<std::size_t>(r)].size());
  std::vector<Deps> done(P);
  // Phase 1, and what needs no relay.
  for (int s = 0; s < p; ++s) {
    const std::size_t x = host_of[static_cast<std::size_t>(s)];
    const std::size_t g = hosts[x].size();
    for (int d = 0; d < p; ++d) {
      const Region from{call.input, static_cast<std::size_t>(d) * chunk, chunk};
      const Region into{call.output, static_cast<std::size_t>(s) * chunk, chunk};
      const int r = host_of[static_cast<std::size_t>(d)] == x ? -1 : relay(x, d);
      if (r < 0) {  // the same host, or no GPU of this host on d's rail
        done[static_cast<std::size_t>(d)].push_back(
            s == d ? b.local(s, into, from, RecvAction::copy, {})
                   : b.transfer(s, from, d, into, RecvAction::copy, {}, 0));
        continue;
      }
      const std::size_t k = block_of(r, d);
      const Region slot{scratch, (k * g + position[static_cast<std::size_t>(s)]) * chunk, chunk};
      staged[static_cast<std::size_t>(r)][k].push_back(
          s == r ? b.local(s, slot, from, RecvAction::copy, {})
                 : b.transfer(s, from, r, slot, RecvAction::copy, {}, 0));
    }
  }
  // Phase 2: over the rails, host to host in pairwise order (step = host distance).
  const std::size_t H = hosts.size();
  std::vector<bool> numbered_in_a_row(H, true);
  for (std::size_t x = 0; x < H; ++x)
    for (std::size_t i = 1; i < hosts[x].size(); ++i)
      if (hosts[x][i] != hosts[x][0] + static_cast<int>(i)) numbered_in_a_row[x] = false;
  for (int r = 0; r < p; ++r) {
    const std::size_t x = host_of[static_cast<std::size_t>(r)];
    const std::vector<int>& mine = hosts[x];
    const bool in_a_row = numbered_in_a_row[x];
    const auto& list = relayed[static_cast<std::size_t>(r)];
    for (std::size_t k = 0; k < list.size(); ++k) {
      const int d = list[k];
      const Deps& deps = staged[static_cast<std::size_t>(r)][k];
      const auto step =
          static_cast<std::uint32_t>((host_of[static_cast<std::size_t>(d)] + H - x) % H);
      const std::size_t first = k * mine.size() * chunk;
      if (in_a_row) {
        const Region from{scratch, first, mine.size() * chunk};
        const Region into{call.output, static_cast<std::size_t>(mine[0]) * chunk,
                          mine.size() * chunk};
        done[static_cast<std::size_t>(d)].push_back(
            b.transfer(r, from, d, into, RecvAction::copy, deps, step));
        continue;
      }
      for (std::size_t i = 0; i < mine.size(); ++i) {
        const Region from{scratch, first + i * chunk, chunk};
        const Region into{call.output, static_cast<std::size_t>(mine[i]) * chunk, chunk};
        done[static_cast<std::size_t>(d)].push_back(
            b.transfer(r, from, d, into, RecvAction::copy, deps, step));
      }
    }
  }
  return done;
}

}  // namespace detail::coll

/// All-to-all. pairwise: every pair exchanges its chunk at once; each rank copies its own.
/// pxn: relayed over NVLink onto the destination's rail (detail::coll::pxn_all_to_all).
template <CollectiveBackend B>
std::vector<Deps> all_to_all(B& b, const CollectiveCall& call,
                             Algorithm algo = Algorithm::pairwise) {
  using namespace detail::coll;
  check_call(b, call, "all_to_all");
  check_applies(Collective::all_to_all, algo);
  if (call.input == call.output)
    throw InputError("all_to_all: in place is not supported; give an output buffer");
  const std::size_t elem = size_of(b.reduction().type);
  const int p = b.ranks();
  const std::size_t chunk = call.count * elem;
  if (algo == Algorithm::pxn) return pxn_all_to_all(b, call, chunk);
  std::vector<Deps> done(static_cast<std::size_t>(p));
  for (int s = 0; s < p; ++s) {
    for (int r = 0; r < p; ++r) {
      const int to = (r + s) % p;  // step s: rank r sends to r + s (pairwise order)
      const Region from{call.input, static_cast<std::size_t>(to) * chunk, chunk};
      const Region into{call.output, static_cast<std::size_t>(r) * chunk, chunk};
      const OpId op = s == 0 ? b.local(r, into, from, RecvAction::copy, {})
                             : b.transfer(r, from, to, into, RecvAction::copy, {},
                                          static_cast<std::uint32_t>(s));
      done[static_cast<std::size_t>(to)].push_back(op);
    }
  }
  return done;
}

/// One rank's region to another's.
template <CollectiveBackend B>
OpId send_recv(B& b, int src, Region from, int dst, Region to) {
  return b.transfer(src, from, dst, to, RecvAction::copy, {}, 0);
}

RAILCC_NAMESPACE_END
