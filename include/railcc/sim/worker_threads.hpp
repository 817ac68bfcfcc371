// railcc/sim/worker_threads.hpp: work split into independent parts, run side by side.
//
// Routing a large step's flows and choosing the QPs of many steps split into parts that
// share nothing but read-only inputs (the fabric); each part's result is its own, so what
// comes out does not depend on how many threads ran it. Each part keeps per-link state
// (a router's caches, a chooser's loads: up to 240 MB at 1,000,000 GPUs), so at most 4
// run at once.
#pragma once

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

/// Threads for `parts` independent parts: `wanted` (0: the machine's hardware threads, at
/// most 4), never more than the parts, at least 1.
inline unsigned worker_threads(std::size_t parts, unsigned wanted = 0) {
  if (wanted == 0) wanted = std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
  return static_cast<unsigned>(std::clamp<std::size_t>(parts, 1, wanted));
}

/// Calls work(t) for t = 0 .. threads - 1, each on its own thread (t = 0 on the caller's),
/// and returns when all have. `work` must not throw: a part catches its own failures, so
/// that the caller can report the first by its own order.
template <class Work>
void run_on_threads(unsigned threads, Work work) {
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0u);
  for (std::thread& t : pool) t.join();
}

RAILCC_NAMESPACE_END
