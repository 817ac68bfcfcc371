// railcc/cuda/local_ranks.cuh: several ranks of one job on one GPU, in one process.
//
// Each rank has its own device buffers; a transfer between ranks is a device-to-device
// copy; every rank's program of the plan runs in waves (comm/waves.hpp) on one stream,
// through the same wave executor the NCCL transport queues its ranks' programs with. So
// a plan runs with real data on real kernels on a single GPU: how the plans are tested
// on one GPU (tests/cuda/test_local_ranks.cu), and railcc-perf's cuda-local backend.
// Its times are those of one GPU doing every rank's work in turn, not a job's.
//
// With lanes (comm/waves.hpp), lane 0 is the stream given to enqueue() and each other
// lane a stream of this object's, shared by every rank; the marks between lanes are
// events, one per rank and mark. Every rank's lane-l work is in order on lane l's stream,
// so the copies between ranks need no more than the marks each rank's own schedule asks
// for.
//
// Needs nvcc: include it from .cu files (target railcc::cuda).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "railcc/coll/plan.hpp"
#include "railcc/coll/projection.hpp"
#include "railcc/comm/host_steps.hpp"
#include "railcc/comm/waves.hpp"
#include "railcc/config.hpp"
#include "railcc/cuda/device_memory.cuh"
#include "railcc/cuda/device_range.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

namespace cuda {

class LocalRanks {
 public:
  /// Every rank's program of `plan`, ready to queue on `lanes` streams. The caller gives
  /// the memory of the plan's first `user_buffers` buffers at each run (a collective's
  /// input and output); the rest, and each rank's wave scratch, are allocated here on
  /// the current device.
  LocalRanks(const Plan& plan, std::size_t user_buffers, int lanes = 1)
      : user_buffers_(user_buffers), lanes_(std::make_unique<Lanes>(lanes)) {
    const auto sizes = plan.buffers();
    if (user_buffers > sizes.size())
      throw LogicError("local ranks: " + std::to_string(user_buffers) +
                       " user buffers of a plan of " + std::to_string(sizes.size()));
    const PlanIndex index(plan);
    const auto p = static_cast<std::size_t>(plan.ranks());
    programs_.reserve(p);
    schedules_.reserve(p);
    for (int r = 0; r < plan.ranks(); ++r) {
      programs_.push_back(project(plan, index, r));
      schedules_.emplace_back(programs_.back(), lanes);
      std::vector<DeviceBuffer> own;
      for (std::size_t b = user_buffers; b < sizes.size(); ++b) own.emplace_back(sizes[b]);
      own.emplace_back(schedules_.back().scratch_bytes());
      owned_.push_back(std::move(own));
    }
  }

  [[nodiscard]] int ranks() const { return static_cast<int>(programs_.size()); }
  [[nodiscard]] int lanes() const { return static_cast<int>(lanes_->streams.size()); }
  [[nodiscard]] const RankProgram& program(int rank) const {
    return programs_[static_cast<std::size_t>(rank)];
  }

  /// Queues the plan on `stream`; `user[r][b]` is rank r's buffer b (b < user_buffers),
  /// device memory of the plan's size. Returns at once: the work is on the stream.
  WaveRunStats enqueue(std::span<const std::vector<std::byte*>> user, cudaStream_t stream) {
    const std::size_t p = programs_.size();
    if (user.size() != p)
      throw InputError("local ranks: buffers for " + std::to_string(user.size()) + " ranks of " +
                       std::to_string(p));
    std::vector<RankBuffers> mem;
    std::vector<std::byte*> scratch;
    mem.reserve(p);
    for (std::size_t r = 0; r < p; ++r) {
      if (user[r].size() != user_buffers_)
        throw InputError("local ranks: rank " + std::to_string(r) + " gives " +
                         std::to_string(user[r].size()) + " buffers, the plan takes " +
                         std::to_string(user_buffers_));
      for (std::size_t b = 0; b < user_buffers_; ++b)
        require_device_bytes(user[r][b], programs_[r].buffers()[b],
                             "rank " + std::to_string(r) + "'s buffer " + std::to_string(b),
                             "local ranks");
      std::vector<std::byte*> ptrs = user[r];
      for (std::size_t k = 0; k + 1 < owned_[r].size(); ++k) ptrs.push_back(owned_[r][k].get());
      mem.emplace_back(programs_[r], std::move(ptrs));
      scratch.push_back(owned_[r].back().get());
    }
    StreamMemory memory{stream};
    lanes_->streams[0] = stream;
    LaneStreams lanes{*lanes_, memory};
    return run_ranks_in_waves(programs_, schedules_, mem, scratch, memory, lanes);
  }

 private:
  /// The lanes' streams (lane 0's is the caller's, set at each enqueue) and the events of
  /// their marks, kept from one enqueue to the next.
  struct Lanes {
    explicit Lanes(int n) {
      if (n < 1 || n > WaveSchedule::max_lanes)
        throw InputError("local ranks: " + std::to_string(n) + " lanes (1 to " +
                         std::to_string(WaveSchedule::max_lanes) + ")");
      streams.assign(static_cast<std::size_t>(n), nullptr);
      for (std::size_t l = 1; l < streams.size(); ++l)
        RAILCC_CUDA_CHECK(cudaStreamCreateWithFlags(&streams[l], cudaStreamNonBlocking));
    }
    Lanes(const Lanes&) = delete;
    Lanes& operator=(const Lanes&) = delete;
    ~Lanes() {
      for (auto& [key, e] : events) (void)cudaEventDestroy(e);
      for (std::size_t l = 1; l < streams.size(); ++l) (void)cudaStreamDestroy(streams[l]);
    }
    std::vector<cudaStream_t> streams;
    std::map<std::pair<int, std::size_t>, cudaEvent_t> events;  // by (rank, mark)
  };
  /// comm/waves.hpp's Lanes over them: the memory's stream is the current lane's.
  struct LaneStreams {
    Lanes& lanes;
    StreamMemory& memory;
    void lane(int l) { memory.stream = lanes.streams[static_cast<std::size_t>(l)]; }
    void signal(int rank, std::size_t mark) {
      cudaEvent_t& e = lanes.events[{rank, mark}];
      if (e == nullptr) RAILCC_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      RAILCC_CUDA_CHECK(cudaEventRecord(e, memory.stream));
    }
    void wait(int rank, std::size_t mark) {
      const auto it = lanes.events.find({rank, mark});
      if (it == lanes.events.end())
        throw LogicError("local ranks: rank " + std::to_string(rank) + " waits for mark " +
                         std::to_string(mark) + ", which no lane made");
      RAILCC_CUDA_CHECK(cudaStreamWaitEvent(memory.stream, it->second, 0));
    }
  };

  std::size_t user_buffers_;
  std::unique_ptr<Lanes> lanes_;
  std::vector<RankProgram> programs_;
  std::vector<WaveSchedule> schedules_;
  std::vector<std::vector<DeviceBuffer>> owned_;  // per rank: plan buffers, then scratch
};

}  // namespace cuda

RAILCC_NAMESPACE_END
