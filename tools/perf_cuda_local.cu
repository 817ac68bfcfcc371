// railcc-perf -B cuda-local: every rank of the job in this one process, on one GPU, each
// with its own device buffers (cuda/local_ranks.cuh): the plans run with real kernels and
// device copies, checked as on any backend. Times are one GPU doing every rank's work in
// turn: a check of the plans and the kernels, not a job's speed.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "perf_gpu.hpp"
#include "railcc/backend/call_time.hpp"
#include "railcc/coll/collectives.hpp"
#include "railcc/coll/plan.hpp"
#include "railcc/coll/post.hpp"
#include "railcc/cuda/check.hpp"
#include "railcc/cuda/device_memory.cuh"
#include "railcc/cuda/local_ranks.cuh"
#include "railcc/fabric/presets.hpp"
#include "railcc/tune/cost_model.hpp"

namespace railcc_tools::perf {

namespace {

/// One size, in place or not: every rank's buffers on the GPU, the plan ready to queue.
class LocalSize {
 public:
  LocalSize(const Run& q, int ranks, int per_host, int lanes, std::size_t count, bool in_place,
            const PlannedCall& plan, int root)
      : q_(q), p_(ranks), count_(count), in_place_(in_place), root_(root) {
    const auto P = static_cast<std::size_t>(ranks);
    e_ = size_of(q.type);
    const auto [in_elems, out_elems] = buffer_elements(q.coll, count, P);
    in_elems_ = in_elems;
    out_elems_ = out_elems;
    PlanBuilder builder(PlanTarget::hosts(ranks, per_host), {q.type, q.op});
    const CollectiveBuffers b = allocate_buffers(builder, q.coll, count, e_, in_place);
    const Plan whole = builder.build(post_collective(
        builder, q.coll, planned_call(plan, count, b, root), plan.algorithm, plan.inter_host));
    user_ = in_place ? 1 : 2;
    local_ = std::make_unique<cuda::LocalRanks>(whole, user_, lanes);
    for (std::size_t r = 0; r < P; ++r) {
      std::vector<std::byte*> mine;
      for (std::size_t k = 0; k < user_; ++k) {
        memory_.emplace_back(whole.buffers()[k]);
        mine.push_back(memory_.back().get());
      }
      ptrs_.push_back(std::move(mine));
    }
  }

  /// Queues one call on `stream`.
  void enqueue(cudaStream_t stream) { (void)local_->enqueue(ptrs_, stream); }

  /// Fills every rank's input, runs the call once, and counts the sampled output
  /// elements that are wrong over all ranks.
  std::size_t check(std::uint64_t seed, cudaStream_t stream) {
    const auto P = static_cast<std::size_t>(p_);
    std::vector<std::byte> host(std::max(in_elems_, out_elems_) * e_);
    for (std::size_t r = 0; r < P; ++r) {
      fill_input(q_, static_cast<int>(r), p_, seed, host.data(), in_elems_);
      RAILCC_CUDA_CHECK(
          cudaMemcpy(input_of(r), host.data(), in_elems_ * e_, cudaMemcpyHostToDevice));
    }
    enqueue(stream);
    RAILCC_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::size_t wrong = 0;
    for (std::size_t r = 0; r < P; ++r) {
      RAILCC_CUDA_CHECK(
          cudaMemcpy(host.data(), output_of(r), out_elems_ * e_, cudaMemcpyDeviceToHost));
      wrong += count_wrong_output(q_, static_cast<int>(r), p_, count_, root_, seed, host.data(),
                                  out_elems_);
    }
    return wrong;
  }

 private:
  // NCCL's in-place layouts (comm/communicator.hpp): the one buffer is the larger.
  std::byte* input_of(std::size_t r) const {
    if (!in_place_) return ptrs_[r][0];
    if (q_.coll == Collective::all_gather) return ptrs_[r][0] + r * count_ * e_;
    return ptrs_[r][0];
  }
  std::byte* output_of(std::size_t r) const {
    if (!in_place_) return ptrs_[r][1];
    if (q_.coll == Collective::reduce_scatter) return ptrs_[r][0] + r * count_ * e_;
    return ptrs_[r][0];
  }

  const Run& q_;
  int p_;
  std::size_t count_;
  bool in_place_;
  int root_;
  std::size_t e_ = 4;
  std::size_t in_elems_ = 0;
  std::size_t out_elems_ = 0;
  std::size_t user_ = 2;
  std::unique_ptr<cuda::LocalRanks> local_;
  std::vector<cuda::DeviceBuffer> memory_;
  std::vector<std::vector<std::byte*>> ptrs_;
};

Timing time_local(LocalSize& run, const Run& q, const Options& o, int ranks, std::size_t size,
                  std::uint64_t seed, cudaStream_t stream) {
  Timing t;
  if (o.check == 1) t.wrong = static_cast<long long>(run.check(seed, stream));
  for (int i = 0; i < o.warmup; ++i) run.enqueue(stream);
  cudaEvent_t start;
  cudaEvent_t stop;
  RAILCC_CUDA_CHECK(cudaEventCreate(&start));
  RAILCC_CUDA_CHECK(cudaEventCreate(&stop));
  RAILCC_CUDA_CHECK(cudaEventRecord(start, stream));
  for (int i = 0; i < o.iters; ++i) run.enqueue(stream);
  RAILCC_CUDA_CHECK(cudaEventRecord(stop, stream));
  RAILCC_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  RAILCC_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
  const double s = static_cast<double>(ms) / 1e3 / o.iters;
  t.us = s * 1e6;
  t.algbw = static_cast<double>(size) / s / 1e9;
  t.busbw = t.algbw * bus_factor(q.coll, static_cast<std::size_t>(ranks));
  return t;
}

}  // namespace

int run_cuda_local(const Options& o) {
  if (o.ranks < 1 || o.ranks > 512) throw InputError("--ranks: 1 to 512 ranks on the one GPU");
  const int per_host = o.ranks_per_host > 0 ? o.ranks_per_host : o.ranks;
  if (per_host > o.ranks || o.ranks % per_host != 0)
    throw InputError("--ranks-per-host " + std::to_string(per_host) + " does not divide --ranks " +
                     std::to_string(o.ranks));
  if (o.lanes < 1 || o.lanes > WaveSchedule::max_lanes)
    throw InputError("--lanes: 1 to " + std::to_string(WaveSchedule::max_lanes));
  if (cuda::device_count() == 0)
    throw InputError("-B cuda-local: no GPU is visible to this process (CUDA reports none)");
  const Run q = check_options(o, o.ranks);
  const int hosts = o.ranks / per_host;
  // The tuner's fabric, as a communicator of this placement assumes by default.
  const Fabric fabric =
      rail_optimised_fabric(static_cast<std::uint64_t>(hosts), static_cast<std::uint32_t>(per_host),
                            /*nvswitch_reduction=*/false);
  CostModel model = CostModel::of(fabric, static_cast<std::size_t>(o.ranks));
  model.switch_reduction = false;
  const std::string fabric_name = "a rail-optimised fabric of " + std::to_string(hosts) + " host" +
                                  (hosts == 1 ? "" : "s") + " of " + std::to_string(per_host) +
                                  " GPUs";
  cudaDeviceProp prop{};
  RAILCC_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const std::string backend = std::string("cuda-local (") + prop.name + ")";
  const std::string placement = std::to_string(o.ranks) + " ranks on " + std::to_string(hosts) +
                                " host" + (hosts == 1 ? "" : "s") + " of " +
                                std::to_string(per_host) + ", all on one GPU" +
                                (o.lanes > 1 ? ", " + std::to_string(o.lanes) + " lanes" : "");
  const bool json_out = o.json == "-";
  if (!json_out) print_header(backend, placement, fabric_name, q, o);
  cudaStream_t stream;
  RAILCC_CUDA_CHECK(cudaStreamCreate(&stream));
  Report report;
  const auto P = static_cast<std::size_t>(o.ranks);
  for (std::size_t i = 0; i < q.sizes.size(); ++i) {
    const std::size_t count = count_for_size(q.coll, q.sizes[i], size_of(q.type), P);
    if (count == 0) continue;
    Row row;
    row.count = count;
    row.size = size_for_count(q.coll, count, size_of(q.type), P);
    PlannedCall plan;
    if (q.call.algorithm) {
      plan.algorithm = *q.call.algorithm;
      if (q.call.inter_host) plan.inter_host = *q.call.inter_host;
    } else {
      const AlgorithmChoice choice = model.choose(q.coll, row.size);
      plan.algorithm = choice.algorithm;
      plan.inter_host = choice.inter_host;
    }
    plan.channels = q.call.channels > 0 ? q.call.channels : o.lanes;  // as a communicator
    plan.phase_chunks = model.phase_chunks_for(plan.algorithm, plan.inter_host, row.size);
    plan.chunks_in_flight = model.chunks_in_flight_for(plan.algorithm, plan.inter_host, row.size);
    row.algorithm = std::string(to_string(plan.algorithm));
    if (plan.algorithm == Algorithm::hierarchical)
      row.algorithm += "+" + std::string(to_string(plan.inter_host));
    const std::uint64_t seed = 1000 + i;
    {
      LocalSize run(q, o.ranks, per_host, o.lanes, count, false, plan, o.root);
      row.out_of_place = time_local(run, q, o, o.ranks, row.size, seed, stream);
    }
    if (q.coll != Collective::all_to_all) {
      LocalSize run(q, o.ranks, per_host, o.lanes, count, true, plan, o.root);
      row.in_place = time_local(run, q, o, o.ranks, row.size, seed + 500, stream);
    }
    row.model_us =
        simulated_call_time(fabric, o.ranks, {}, q.coll, count, q.type, q.op, o.root, false, plan)
            .in_seconds() *
        1e6;
    if (!json_out) print_row(q, row, o.root);
    report.add(row);
  }
  RAILCC_CUDA_CHECK(cudaStreamDestroy(stream));
  return report.finish(q, o, backend, o.ranks, placement, fabric_name);
}

}  // namespace railcc_tools::perf
