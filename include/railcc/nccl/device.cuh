// railcc/nccl/device.cuh: NCCL as a WaveDevice (comm/wave_transport.hpp): the NCCL
// transport is WaveTransport(NcclDevice).
//
// - The communicator starts from any Bootstrap (a TCP store as torchrun's, MPI): rank 0
//   makes NCCL's unique id, the bootstrap carries it to the others, every rank calls
//   ncclCommInitRankConfig on its GPU. From then on railcc's own small exchanges
//   (placements, call checks) go over NCCL too (NcclBootstrap), so a split communicator
//   needs nothing else.
// - The communicator is non-blocking (ncclConfig_t::blocking = 0): a call that NCCL
//   leaves in progress is waited for by polling ncclCommGetAsyncError against the
//   timeout, so a peer that never initialises, never connects or never joins a call ends
//   in ncclCommAbort and a PeerError, not a hang.
// - Sends and receives of a wave are one ncclGroupStart/End of ncclSend/ncclRecv of
//   bytes; copies are cudaMemcpyAsync and reductions railcc's kernels, all on one stream:
//   the transport's own, or the caller's (CallOptions::stream).
// - Lanes (RAILCC_LANES > 1): each further lane is a stream and a communicator of its
//   own (ncclCommSplit of the first, same ranks), and marks between lanes are CUDA
//   events. NCCL runs one communicator's operations one after another, so only
//   communicators of their own let lanes overlap; and operations of several
//   communicators on one GPU can wait for each other unless NCCL runs them in the order
//   the host queued them (NCCL_LAUNCH_ORDER_IMPLICIT=1, NCCL 2.26 on). railcc queues
//   them in the same order on every rank (level, then lane), so the device refuses more
//   than one lane without that guarantee.
// - The library's own collectives (ncclAllReduce's ring and tree, the others' ring, and
//   broadcast's and reduce's pipelined chain) are what the communicator may delegate to.
// - Splits are ncclCommSplit, so a communicator per rail or per node is one call:
//   Communicator::split(rail, rank).
//
// Needs nvcc and NCCL: include it from .cu files (target railcc::nccl).
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "railcc/bootstrap/bootstrap.hpp"
#include "railcc/bootstrap/wire.hpp"
#include "railcc/comm/wave_transport.hpp"
#include "railcc/config.hpp"
#include "railcc/cuda/check.hpp"
#include "railcc/cuda/device_memory.cuh"
#include "railcc/cuda/device_range.hpp"
#include "railcc/cuda/kernels.cuh"
#include "railcc/error.hpp"
#include "railcc/log.hpp"
#include "railcc/nccl/check.hpp"
#include "railcc/nccl/lanes.hpp"

RAILCC_NAMESPACE_BEGIN

namespace nccl {

namespace detail {

/// Waits for a non-blocking communicator's call left in progress, polling NCCL's
/// asynchronous error until the call is done, failed (NcclError), or `timeout` has passed
/// (PeerError; the caller aborts the communicator). `what` names the call in errors.
inline void settle(ncclComm_t comm, ncclResult_t rc, const char* what,
                   std::chrono::milliseconds timeout) {
  if (rc != ncclInProgress) {
    check(rc, what, comm);
    return;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(1);
  for (;;) {
    ncclResult_t state = ncclSuccess;
    check(ncclCommGetAsyncError(comm, &state), "ncclCommGetAsyncError", comm);
    if (state == ncclSuccess) return;
    if (state != ncclInProgress) check(state, what, comm);
    if (std::chrono::steady_clock::now() > deadline) {
      throw PeerError(std::string("NCCL: ") + what + " did not complete in " +
                      railcc::detail::wire::duration_text(timeout) +
                      ": a rank died, stopped, or did not make this call");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

/// Waits for everything queued on `stream`; an asynchronous error of `comm` is an
/// NcclError, `timeout` a PeerError (the caller aborts the communicator).
inline void wait_stream(ncclComm_t comm, cudaStream_t stream, const std::string& what,
                        std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(1);
  for (;;) {
    const cudaError_t q = cudaStreamQuery(stream);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady) RAILCC_CUDA_CHECK(q);
    ncclResult_t state = ncclSuccess;
    check(ncclCommGetAsyncError(comm, &state), "ncclCommGetAsyncError", comm);
    if (state != ncclSuccess && state != ncclInProgress) check(state, what.c_str(), comm);
    if (std::chrono::steady_clock::now() > deadline) {
      throw PeerError("NCCL: " + what + " did not complete in " +
                      railcc::detail::wire::duration_text(timeout) +
                      ": a rank died, stopped, or did not make this call");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

inline ncclConfig_t non_blocking_config() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  return config;
}

}  // namespace detail

/// railcc's small exchanges over an NCCL communicator: every blob's size, then every
/// blob padded to the largest, each with one ncclAllGather through device memory.
class NcclBootstrap final : public Bootstrap {
 public:
  /// Over `*comm`, the device's communicator (null once the device aborted it).
  /// `on_failure` runs when an exchange fails (the device aborts its communicator).
  NcclBootstrap(const ncclComm_t* comm, int rank, int size, std::chrono::milliseconds timeout,
                std::function<void()> on_failure)
      : comm_(comm),
        rank_(rank),
        size_(size),
        timeout_(timeout),
        on_failure_(std::move(on_failure)) {
    RAILCC_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~NcclBootstrap() override { (void)cudaStreamDestroy(stream_); }

  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return size_; }

  std::vector<std::string> all_gather(std::string_view mine) override {
    const auto p = static_cast<std::size_t>(size_);
    const auto me = static_cast<std::size_t>(rank_);
    std::vector<std::int64_t> sizes(p, 0);
    sizes[me] = static_cast<std::int64_t>(mine.size());
    gather(sizes.data(), sizeof(std::int64_t), "bootstrap all_gather (sizes)");
    std::size_t most = 0;
    for (std::int64_t s : sizes) most = std::max(most, static_cast<std::size_t>(s));
    std::vector<char> blobs(std::max<std::size_t>(most, 1) * p, '\0');
    std::memcpy(blobs.data() + me * std::max<std::size_t>(most, 1), mine.data(), mine.size());
    gather(blobs.data(), std::max<std::size_t>(most, 1), "bootstrap all_gather (blobs)");
    std::vector<std::string> out;
    for (std::size_t r = 0; r < p; ++r)
      out.emplace_back(blobs.data() + r * std::max<std::size_t>(most, 1),
                       static_cast<std::size_t>(sizes[r]));
    return out;
  }
  std::string broadcast(std::string_view blob, int root) override {
    railcc::detail::wire::check_root(root, size_);
    return all_gather(rank_ == root ? blob : std::string_view())[static_cast<std::size_t>(root)];
  }
  void barrier() override { (void)all_gather({}); }

 private:
  /// Every rank's `bytes` at `host + rank * bytes`, gathered into `host` on every rank.
  void gather(void* host, std::size_t bytes, const char* what) {
    try {
      gather_once(host, bytes, what);
    } catch (...) {
      on_failure_();
      throw;
    }
  }
  void gather_once(void* host, std::size_t bytes, const char* what) {
    if (*comm_ == nullptr)
      throw PeerError(std::string("NCCL: ") + what + ": the communicator was aborted");
    const ncclComm_t comm = *comm_;
    const std::size_t total = bytes * static_cast<std::size_t>(size_);
    if (staging_.bytes() < total) staging_ = cuda::DeviceBuffer(total);
    std::byte* mine = staging_.get() + bytes * static_cast<std::size_t>(rank_);
    RAILCC_CUDA_CHECK(cudaMemcpyAsync(
        mine, static_cast<const std::byte*>(host) + bytes * static_cast<std::size_t>(rank_), bytes,
        cudaMemcpyHostToDevice, stream_));
    detail::settle(comm, ncclAllGather(mine, staging_.get(), bytes, ncclUint8, comm, stream_), what,
                   timeout_);
    // Waited for here, against the timeout: a copy into pageable host memory would
    // otherwise wait for the gather, and for a dead peer, without one.
    detail::wait_stream(comm, stream_, what, timeout_);
    RAILCC_CUDA_CHECK(cudaMemcpy(host, staging_.get(), total, cudaMemcpyDeviceToHost));
  }

  const ncclComm_t* comm_;
  int rank_;
  int size_;
  std::chrono::milliseconds timeout_;
  std::function<void()> on_failure_;
  cudaStream_t stream_ = nullptr;
  cuda::DeviceBuffer staging_;
};

/// NCCL as comm/wave_transport.hpp's device.
class NcclDevice final : public WaveDevice {
 public:
  /// Collective over `bootstrap`'s ranks: this rank's communicator on CUDA device
  /// `device`. `timeout` bounds the start and every later wait of railcc's own.
  /// `lanes`: the streams a program's channels run on (comm/waves.hpp), each with a
  /// communicator of its own.
  static std::unique_ptr<NcclDevice> create(Bootstrap& bootstrap, int device,
                                            std::chrono::milliseconds timeout,
                                            Logger log = Logger(), int lanes = 1) {
    const int version = loaded_version();
    require_lanes(lanes, version, std::getenv("NCCL_LAUNCH_ORDER_IMPLICIT"));
    const int gpus = cuda::device_count();
    if (gpus == 0)
      throw InputError("NCCL transport: no GPU is visible to this process (CUDA reports none)");
    if (device < 0 || device >= gpus)
      throw InputError("NCCL transport: GPU " + std::to_string(device) + " is not one of the " +
                       std::to_string(gpus) + " this process sees");
    RAILCC_CUDA_CHECK(cudaSetDevice(device));
    ncclUniqueId id{};
    if (bootstrap.rank() == 0) RAILCC_NCCL_CHECK(ncclGetUniqueId(&id));
    const std::string blob =
        bootstrap.broadcast(std::string_view(reinterpret_cast<const char*>(&id), sizeof id), 0);
    if (blob.size() != sizeof id)
      throw LogicError("NCCL transport: a unique id of " + std::to_string(blob.size()) + " bytes");
    std::memcpy(&id, blob.data(), sizeof id);
    ncclConfig_t config = detail::non_blocking_config();
    ncclComm_t comm = nullptr;
    const ncclResult_t rc =
        ncclCommInitRankConfig(&comm, bootstrap.size(), id, bootstrap.rank(), &config);
    if (comm == nullptr) check(rc, "ncclCommInitRankConfig");
    try {
      detail::settle(comm, rc, "ncclCommInitRankConfig", timeout);
    } catch (...) {
      (void)ncclCommAbort(comm);  // ends its threads; a peer may never have come
      throw;
    }
    std::vector<ncclComm_t> lane_comms;
    try {
      lane_comms = split_all({comm}, lanes - 1, 0, bootstrap.rank(), timeout);
    } catch (...) {
      (void)ncclCommAbort(comm);
      throw;
    }
    log.info("NCCL " + version_text(version) + ": rank " + std::to_string(bootstrap.rank()) +
             " of " + std::to_string(bootstrap.size()) + " on GPU " + std::to_string(device) +
             (lanes > 1 ? ", " + std::to_string(lanes) + " lanes" : ""));
    return std::unique_ptr<NcclDevice>(new NcclDevice(comm, std::move(lane_comms), bootstrap.rank(),
                                                      bootstrap.size(), device, version, timeout));
  }

  NcclDevice(const NcclDevice&) = delete;
  NcclDevice& operator=(const NcclDevice&) = delete;
  ~NcclDevice() override {
    bootstrap_.reset();
    for (cudaEvent_t e : events_) {
      if (e != nullptr) (void)cudaEventDestroy(e);
    }
    for (std::size_t l = 1; l < lane_streams_.size(); ++l)
      (void)cudaStreamDestroy(lane_streams_[l]);
    if (own_ != nullptr) (void)cudaStreamDestroy(own_);
    for (std::size_t l = 1; l < lane_comms_.size(); ++l) {
      if (lane_comms_[l] != nullptr) (void)ncclCommDestroy(lane_comms_[l]);
    }
    if (comm_ != nullptr) (void)ncclCommDestroy(comm_);
  }

  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return size_; }
  [[nodiscard]] std::string name() const override {
    return "NCCL " + version_text(version_) + " on GPU " + std::to_string(device_);
  }
  Bootstrap& bootstrap() override { return *bootstrap_; }
  void use_stream(void* stream) override {
    // Every call starts here: the calling thread's current device is this one's, for the
    // allocations and launches that follow.
    RAILCC_CUDA_CHECK(cudaSetDevice(device_));
    lane_streams_[0] = stream != nullptr ? static_cast<cudaStream_t>(stream) : own_;
    use_lane(0);
  }
  [[nodiscard]] int lanes() const override { return static_cast<int>(lane_comms_.size()); }
  void use_lane(int lane) override {
    if (lane < 0 || lane >= lanes())
      throw LogicError("NCCL transport: lane " + std::to_string(lane) + " of " +
                       std::to_string(lanes()));
    memory_.stream = lane_streams_[static_cast<std::size_t>(lane)];
    lane_comm_ = lane_comms_[static_cast<std::size_t>(lane)];
  }
  void signal(std::size_t mark) override {
    if (mark >= events_.size()) events_.resize(mark + 1, nullptr);
    if (events_[mark] == nullptr)
      RAILCC_CUDA_CHECK(cudaEventCreateWithFlags(&events_[mark], cudaEventDisableTiming));
    RAILCC_CUDA_CHECK(cudaEventRecord(events_[mark], memory_.stream));
  }
  void wait_for(std::size_t mark) override {
    if (mark >= events_.size() || events_[mark] == nullptr)
      throw LogicError("NCCL transport: a wait for mark " + std::to_string(mark) +
                       ", which no lane made");
    RAILCC_CUDA_CHECK(cudaStreamWaitEvent(memory_.stream, events_[mark], 0));
  }
  /// The communicator, for calls of NCCL's own beside railcc's.
  [[nodiscard]] ncclComm_t comm() const { return comm_; }
  /// The transport's own stream.
  [[nodiscard]] cudaStream_t stream() const { return own_; }

  void copy(std::byte* dst, const std::byte* src, std::size_t bytes) override {
    memory_.copy(dst, src, bytes);
  }
  void reduce(ReductionSpec red, std::byte* dst, const std::byte* src, std::size_t count) override {
    memory_.reduce(red, dst, src, count);
  }
  void finish(ReductionSpec red, std::byte* buf, std::size_t count, int ranks) override {
    memory_.finish(red, buf, count, ranks);
  }
  void group_start() override { check(ncclGroupStart(), "ncclGroupStart", lane_comm_); }
  // Inside a group NCCL defers the work to ncclGroupEnd; a non-blocking communicator may
  // answer "in progress" already, which settles there.
  void send(const std::byte* src, std::size_t bytes, int peer, OpId /*op*/) override {
    const ncclResult_t rc = ncclSend(src, bytes, ncclUint8, peer, lane_comm_, memory_.stream);
    if (rc != ncclInProgress) check(rc, "ncclSend", lane_comm_);
  }
  void recv(std::byte* dst, std::size_t bytes, int peer, OpId /*op*/) override {
    const ncclResult_t rc = ncclRecv(dst, bytes, ncclUint8, peer, lane_comm_, memory_.stream);
    if (rc != ncclInProgress) check(rc, "ncclRecv", lane_comm_);
  }
  void group_end() override {
    detail::settle(lane_comm_, ncclGroupEnd(), "ncclGroupEnd", timeout_);
  }

  void check_memory(const void* p, std::size_t bytes, const std::string& what,
                    const std::string& call) override {
    RAILCC_CUDA_CHECK(cudaSetDevice(device_));
    cuda::require_device_bytes(p, bytes, what, call);
  }
  [[nodiscard]] std::string library() const override { return "NCCL"; }
  [[nodiscard]] std::vector<Algorithm> native_algorithms(Collective c) const override {
    switch (c) {
      case Collective::all_reduce: return {Algorithm::ring, Algorithm::tree};
      case Collective::reduce_scatter:
      case Collective::all_gather: return {Algorithm::ring};
      case Collective::broadcast:
      case Collective::reduce: return {Algorithm::chain};
      default: return {};
    }
  }
  void native(const NativeCall& c) override {
    const ncclDataType_t t = type_of(c.type);
    const ncclRedOp_t op = op_of(c.op);
    const cudaStream_t s = memory_.stream;
    ncclResult_t rc = ncclInvalidUsage;
    switch (c.collective) {
      case Collective::all_reduce:
        rc = ncclAllReduce(c.send, c.recv, c.count, t, op, comm_, s);
        break;
      case Collective::reduce_scatter:
        rc = ncclReduceScatter(c.send, c.recv, c.count, t, op, comm_, s);
        break;
      case Collective::all_gather: rc = ncclAllGather(c.send, c.recv, c.count, t, comm_, s); break;
      case Collective::broadcast:
        rc = ncclBroadcast(c.send, c.recv, c.count, t, c.root, comm_, s);
        break;
      case Collective::reduce:
        rc = ncclReduce(c.send, c.recv, c.count, t, op, c.root, comm_, s);
        break;
      default:
        throw LogicError("NCCL transport: no NCCL collective for " +
                         std::string(to_string(c.collective)));
    }
    detail::settle(comm_, rc, "NCCL's collective", timeout_);
  }

  std::unique_ptr<DeviceBlock> allocate(std::size_t bytes) override {
    return std::make_unique<Block>(bytes);
  }
  std::unique_ptr<StreamMark> mark() override {
    return std::make_unique<EventMark>(memory_.stream);
  }
  std::string async_error() override {
    if (comm_ == nullptr) return "the communicator was aborted";
    for (std::size_t l = 0; l < lane_comms_.size(); ++l) {
      const ncclComm_t c = lane_comms_[l];
      ncclResult_t state = ncclSuccess;
      if (ncclCommGetAsyncError(c, &state) != ncclSuccess) return "ncclCommGetAsyncError failed";
      if (state == ncclSuccess || state == ncclInProgress) continue;
      std::string text = ncclGetErrorString(state);
      const char* detail = ncclGetLastError(c);
      if (detail != nullptr && *detail != '\0') text += " (" + std::string(detail) + ")";
      if (l != 0) text += " on lane " + std::to_string(l);
      return text;
    }
    return "";
  }
  void abort() override {
    // Every lane's communicator: a kernel of any of them may wait for the dead peer.
    for (std::size_t l = 1; l < lane_comms_.size(); ++l) {
      if (lane_comms_[l] != nullptr) (void)ncclCommAbort(lane_comms_[l]);
      lane_comms_[l] = nullptr;
    }
    if (comm_ != nullptr) (void)ncclCommAbort(comm_);
    comm_ = nullptr;
    lane_comms_[0] = nullptr;
    lane_comm_ = nullptr;
  }
  std::unique_ptr<WaveDevice> split(int color, int key) override {
    if (comm_ == nullptr) throw PeerError("NCCL transport: split: the communicator was aborted");
    // Each lane's communicator splits the same way, so the part has as many lanes.
    std::vector<ncclComm_t> parts = split_all(lane_comms_, 1, color, key, timeout_);
    if (parts.empty()) return nullptr;
    int r = 0;
    int n = 0;
    check(ncclCommUserRank(parts[0], &r), "ncclCommUserRank", parts[0]);
    check(ncclCommCount(parts[0], &n), "ncclCommCount", parts[0]);
    const ncclComm_t first = parts[0];
    parts.erase(parts.begin());
    return std::unique_ptr<NcclDevice>(
        new NcclDevice(first, std::move(parts), r, n, device_, version_, timeout_));
  }

 private:
  /// `more_lanes`: the communicators of lanes 1, 2, ... (the same ranks as `comm`).
  NcclDevice(ncclComm_t comm, std::vector<ncclComm_t> more_lanes, int rank, int size, int device,
             int version, std::chrono::milliseconds timeout)
      : comm_(comm),
        rank_(rank),
        size_(size),
        device_(device),
        version_(version),
        timeout_(timeout) {
    lane_comms_.push_back(comm);
    lane_comms_.insert(lane_comms_.end(), more_lanes.begin(), more_lanes.end());
    // A blocking stream: a call without a stream of the caller's starts after what the
    // caller queued on the legacy default stream (a cudaMemcpy of its input), as one
    // would expect of a call that also waits for its own end. The other lanes start
    // after lane 0's mark, so they need not be.
    RAILCC_CUDA_CHECK(cudaStreamCreate(&own_));
    lane_streams_.assign(lane_comms_.size(), nullptr);
    lane_streams_[0] = own_;
    for (std::size_t l = 1; l < lane_streams_.size(); ++l)
      RAILCC_CUDA_CHECK(cudaStreamCreateWithFlags(&lane_streams_[l], cudaStreamNonBlocking));
    use_lane(0);
    bootstrap_ = std::make_unique<NcclBootstrap>(&comm_, rank, size, timeout, [this] { abort(); });
  }

  /// Splits each of `comms` by (`color`, `key`), `times` times over each: the parts in
  /// that order, or none where the color is negative. On failure every part made is
  /// aborted, and the error thrown.
  static std::vector<ncclComm_t> split_all(const std::vector<ncclComm_t>& comms, int times,
                                           int color, int key, std::chrono::milliseconds timeout) {
    std::vector<ncclComm_t> parts;
    try {
      for (ncclComm_t parent : comms) {
        for (int t = 0; t < times; ++t) {
          ncclConfig_t config = detail::non_blocking_config();
          ncclComm_t child = nullptr;
          const ncclResult_t rc =
              ncclCommSplit(parent, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &child, &config);
          detail::settle(parent, rc, "ncclCommSplit", timeout);
          if (child == nullptr) continue;
          parts.push_back(child);
          detail::settle(child, ncclInProgress, "ncclCommSplit", timeout);
        }
      }
    } catch (...) {
      for (ncclComm_t c : parts) (void)ncclCommAbort(c);
      throw;
    }
    return parts;
  }

  struct Block final : DeviceBlock {
    explicit Block(std::size_t n) : buffer(n) {}
    [[nodiscard]] std::byte* data() const override { return buffer.get(); }
    cuda::DeviceBuffer buffer;
  };
  struct EventMark final : StreamMark {
    explicit EventMark(cudaStream_t stream) {
      RAILCC_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
      RAILCC_CUDA_CHECK(cudaEventRecord(event, stream));
    }
    ~EventMark() override { (void)cudaEventDestroy(event); }
    bool reached() override {
      const cudaError_t q = cudaEventQuery(event);
      if (q == cudaErrorNotReady) return false;
      RAILCC_CUDA_CHECK(q);
      return true;
    }
    cudaEvent_t event = nullptr;
  };

  ncclComm_t comm_;
  int rank_;
  int size_;
  int device_;
  int version_;
  std::chrono::milliseconds timeout_;
  cudaStream_t own_ = nullptr;
  std::vector<ncclComm_t> lane_comms_;      // lane 0's is comm_
  std::vector<cudaStream_t> lane_streams_;  // lane 0's is the caller's, or own_
  ncclComm_t lane_comm_ = nullptr;          // the current lane's
  std::vector<cudaEvent_t> events_;         // marks between lanes, by name
  cuda::StreamMemory memory_;
  std::unique_ptr<NcclBootstrap> bootstrap_;
};

}  // namespace nccl

RAILCC_NAMESPACE_END
