// cuda/local_ranks.cuh on a GPU: every rank of a plan on one device, each with its own
// device buffers, the programs run in waves with the real kernels and device copies.
// The correctness matrix (less NVLS, which reduces in a switch) gives the reference
// results; a plan whose waves disagree is refused before anything is queued. Needs a
// GPU: scripts/gpu-check runs it.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "../correctness_matrix.hpp"
#include "railcc/backend/in_process_backend.hpp"
#include "railcc/coll/collectives.hpp"
#include "railcc/coll/post.hpp"
#include "railcc/coll/reference.hpp"
#include "railcc/cuda/check.hpp"
#include "railcc/cuda/local_ranks.cuh"

using namespace railcc;

TEST_CASE("Ranks on one GPU give the reference results on the correctness matrix") {
  REQUIRE_MESSAGE(cuda::device_count() > 0, "no GPU: this test needs one (scripts/gpu-check)");
  cudaStream_t stream;
  RAILCC_CUDA_CHECK(cudaStreamCreate(&stream));
  std::size_t cases = 0;
  std::size_t laned = 0;
  std::size_t waves = 0;
  // Every case on one stream, then the cases with channels again on a lane per channel:
  // streams the GPU runs at once, ordered only by the schedule's events.
  auto run_case = [&](const railcc_test::MatrixCase& c, int lanes) {
    const PlanTarget target = PlanTarget::hosts(c.p, std::min(c.p, 8));
    // The inputs, and the reference's count of wrong outputs, come from host copies.
    InProcessBackend holder(target);
    holder.set_reduction({c.type, c.op});
    const VerifiedCall call{c.coll,     c.algo, c.inter, c.count,       c.in_place,
                            c.channels, c.root, 3,       c.phase_chunks};
    const VerifiedInputs in = fill_verified(holder, call, c.seed);
    PlanBuilder builder(target, {c.type, c.op});
    const CollectiveBuffers buffers =
        allocate_buffers(builder, c.coll, c.count, size_of(c.type), c.in_place);
    const auto done =
        post_collective(builder, c.coll, verified_collective_call(call, buffers), c.algo, c.inter);
    const Plan plan = builder.build(done);
    const std::size_t user = c.in_place ? 1 : 2;
    cuda::LocalRanks ranks(plan, user, lanes);
    std::vector<std::vector<cuda::DeviceBuffer>> device(static_cast<std::size_t>(c.p));
    std::vector<std::vector<std::byte*>> ptrs(static_cast<std::size_t>(c.p));
    for (int r = 0; r < c.p; ++r) {
      for (std::size_t b = 0; b < user; ++b) {
        const auto host = holder.buffer(r, static_cast<BufferId>(b));
        auto& d = device[static_cast<std::size_t>(r)].emplace_back(host.size());
        RAILCC_CUDA_CHECK(
            cudaMemcpyAsync(d.get(), host.data(), host.size(), cudaMemcpyHostToDevice, stream));
        ptrs[static_cast<std::size_t>(r)].push_back(d.get());
      }
    }
    waves += ranks.enqueue(ptrs, stream).waves;
    for (int r = 0; r < c.p; ++r) {
      for (std::size_t b = 0; b < user; ++b) {
        const auto host = holder.buffer(r, static_cast<BufferId>(b));
        RAILCC_CUDA_CHECK(cudaMemcpyAsync(host.data(), device[static_cast<std::size_t>(r)][b].get(),
                                          host.size(), cudaMemcpyDeviceToHost, stream));
      }
    }
    RAILCC_CUDA_CHECK(cudaStreamSynchronize(stream));
    CHECK(count_wrong(holder, call, in) == 0);
  };
  railcc_test::for_each_matrix_case([&](const railcc_test::MatrixCase& c) {
    if (c.algo == Algorithm::nvls) return;  // reduces in the switch: not a wave transport's
    run_case(c, 1);
    ++cases;
    if (c.channels < 2) return;
    run_case(c, c.channels);
    ++laned;
  });
  RAILCC_CUDA_CHECK(cudaStreamDestroy(stream));
  MESSAGE(cases << " cases, " << laned << " of them also on a lane per channel, " << waves
                << " waves");
  CHECK(cases > 1000);
  CHECK(laned > 300);
}

TEST_CASE("Ranks on one GPU refuse a plan with switch operations before queuing anything") {
  REQUIRE_MESSAGE(cuda::device_count() > 0, "no GPU: this test needs one (scripts/gpu-check)");
  PlanTarget target = PlanTarget::hosts(4, 4);
  target.switch_domain.assign(4, 0);
  PlanBuilder builder(target, {DataType::float32, ReduceOp::sum});
  const CollectiveBuffers buffers = allocate_buffers(builder, Collective::all_reduce, 64, 4, false);
  const auto done = post_collective(builder, Collective::all_reduce,
                                    CollectiveCall{64, buffers.input, buffers.output},
                                    Algorithm::nvls, Algorithm::ring);
  const Plan plan = builder.build(done);
  bool refused = false;
  try {
    cuda::LocalRanks ranks(plan, 2);
  } catch (const LogicError& e) {
    refused =
        std::string(e.what()).find("switch operations (NVLS) do not run") != std::string::npos;
  }
  CHECK(refused);
}
