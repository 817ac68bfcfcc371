// railcc/comm/wave_transport.hpp: a transport that queues a rank's program on a device
// in waves (comm/waves.hpp): the NCCL transport's logic, apart from NCCL's calls.
//
// A WaveTransport owns a WaveDevice: the few things a device library does (queue a copy,
// a reduction, a group of sends and receives, the library's own collective; mark a point
// on the stream and ask whether it was reached; report an asynchronous error; abort).
// NCCL is one device (nccl/device.cuh); the tests drive another on host memory, with
// ranks as threads and NCCL's matching of groups. Everything else is here and plain C++:
//  - start() queues every wave of the program, on the device's lanes where it has more
//    than one, then marks the stream; the run completes when the device reaches the
//    mark. Nothing waits on the host while queuing, so calls queue back to back on one
//    stream.
//  - The program's buffers the communicator leaves null (the plan's scratch) and the
//    wave scratch are device memory the transport keeps per program (the communicator
//    keeps one program per call shape), so a training loop allocates once per shape.
//  - A run that does not complete within its timeout, or that the device reports an
//    asynchronous error for, aborts the device (NCCL: ncclCommAbort, which ends the
//    kernels waiting for a dead peer) and raises a PeerError naming the call and the
//    ranks this rank exchanges data with in it. The transport is then broken: every later
//    run fails at once.
//  - On the caller's stream (RunInfo::stream) a run completes once queued, as NCCL's
//    calls return; the caller synchronises or orders its work after it. Nothing here
//    then touches the host side of the stream, so a CUDA graph can capture the call.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "railcc/bootstrap/bootstrap.hpp"
#include "railcc/bootstrap/wire.hpp"
#include "railcc/coll/backend.hpp"
#include "railcc/coll/projection.hpp"
#include "railcc/comm/host_steps.hpp"
#include "railcc/comm/transport.hpp"
#include "railcc/comm/waves.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

/// Device memory a WaveDevice allocated, freed with its handle.
class DeviceBlock {
 public:
  DeviceBlock() = default;
  DeviceBlock(const DeviceBlock&) = delete;
  DeviceBlock& operator=(const DeviceBlock&) = delete;
  virtual ~DeviceBlock() = default;
  [[nodiscard]] virtual std::byte* data() const = 0;
};

/// A point on a device's stream.
class StreamMark {
 public:
  StreamMark() = default;
  StreamMark(const StreamMark&) = delete;
  StreamMark& operator=(const StreamMark&) = delete;
  virtual ~StreamMark() = default;
  /// Whether the device has done everything queued before the mark.
  [[nodiscard]] virtual bool reached() = 0;
};

/// What a WaveTransport asks of a device library. Calls queue work on the current stream
/// (the device's own, or the one use_stream() named) and return at once.
class WaveDevice {
 public:
  WaveDevice() = default;
  WaveDevice(const WaveDevice&) = delete;
  WaveDevice& operator=(const WaveDevice&) = delete;
  virtual ~WaveDevice() = default;

  [[nodiscard]] virtual int rank() const = 0;
  [[nodiscard]] virtual int size() const = 0;
  /// "NCCL 2.28.9 on GPU 3", for logs and railcc-perf.
  [[nodiscard]] virtual std::string name() const = 0;
  /// Small blobs between the ranks (placements, call checks).
  virtual Bootstrap& bootstrap() = 0;
  /// The stream later calls queue on: a cudaStream_t, or null for the device's own.
  virtual void use_stream(void* stream) = 0;

  /// The lanes (comm/waves.hpp) the device runs a program on: lane 0 is the stream of
  /// use_stream(); each other lane a stream of the device's own, with a communicator of
  /// its own for its sends and receives.
  [[nodiscard]] virtual int lanes() const = 0;
  /// Later calls queue on lane `lane` (after use_stream(), lane 0).
  virtual void use_lane(int lane) = 0;
  /// A mark named `mark` after what the current lane has queued so far (an event); a
  /// later signal of the same name replaces it. The names are a schedule's
  /// (WaveSchedule::waits), used while one program is queued.
  virtual void signal(std::size_t mark) = 0;
  /// The current lane waits for mark `mark` before what is queued next.
  virtual void wait_for(std::size_t mark) = 0;

  // comm/waves.hpp's Memory and Messages.
  virtual void copy(std::byte* dst, const std::byte* src, std::size_t bytes) = 0;
  virtual void reduce(ReductionSpec red, std::byte* dst, const std::byte* src,
                      std::size_t count) = 0;
  virtual void finish(ReductionSpec red, std::byte* buf, std::size_t count, int ranks) = 0;
  virtual void group_start() = 0;
  virtual void send(const std::byte* src, std::size_t bytes, int peer, OpId op) = 0;
  virtual void recv(std::byte* dst, std::size_t bytes, int peer, OpId op) = 0;
  virtual void group_end() = 0;

  /// Transport::check_memory: `p` is device memory with `bytes` bytes from it.
  virtual void check_memory(const void* p, std::size_t bytes, const std::string& what,
                            const std::string& call) = 0;
  /// The library's own collectives: its name, the algorithms of `c` it runs, and a call.
  [[nodiscard]] virtual std::string library() const = 0;
  [[nodiscard]] virtual std::vector<Algorithm> native_algorithms(Collective c) const = 0;
  virtual void native(const NativeCall& call) = 0;

  /// `bytes` of device memory (at least 256-byte aligned).
  virtual std::unique_ptr<DeviceBlock> allocate(std::size_t bytes) = 0;
  /// A mark after everything queued so far on the current stream.
  virtual std::unique_ptr<StreamMark> mark() = 0;
  /// The library's asynchronous error ("" if none): a peer that failed, a network error.
  virtual std::string async_error() = 0;
  /// Ends whatever the device is doing for this job, now (a kernel waiting for a dead
  /// peer included); the device is unusable afterwards.
  virtual void abort() = 0;
  /// A device over the ranks that give `color` (>= 0), ordered by `key` then rank; null
  /// for a negative color. Every rank calls it.
  virtual std::unique_ptr<WaveDevice> split(int color, int key) = 0;
};

namespace detail::wave_transport {

/// What the transport keeps for one program: its waves, the memory of the buffers the
/// caller leaves null, and its wave scratch.
struct Prepared {
  Prepared(const RankProgram& program, int lanes) : schedule(program, lanes) {}
  WaveSchedule schedule;
  std::vector<std::unique_ptr<DeviceBlock>> buffers;  // per program buffer; null: caller's
  std::unique_ptr<DeviceBlock> scratch;
  std::vector<int> peers;  // the ranks the program exchanges data with
};

/// What the runs of one transport share: the device, and whether it broke.
struct State {
  std::unique_ptr<WaveDevice> device;
  bool broken = false;
  std::string why_broken;
  std::mutex mutex;  // the transport and its runs may be used from different threads

  /// Aborts the device and breaks the transport: every later run fails with `why`.
  void break_down(std::string why) {
    device->abort();
    broken = true;
    why_broken = std::move(why);
  }
};

class Run final : public TransportRun {
 public:
  Run(std::shared_ptr<State> state, std::unique_ptr<StreamMark> mark, RunInfo info,
      std::vector<int> peers)
      : state_(std::move(state)),
        mark_(std::move(mark)),
        info_(std::move(info)),
        peers_(std::move(peers)),
        start_(std::chrono::steady_clock::now()) {}

  bool test() override {
    if (done_) return true;
    const std::lock_guard lock(state_->mutex);
    if (state_->broken) throw PeerError(info_.label + ": " + state_->why_broken);
    if (mark_->reached()) {
      done_ = true;
      return true;
    }
    const std::string error = state_->device->async_error();
    if (!error.empty()) fail(error);
    if (std::chrono::steady_clock::now() - start_ > info_.timeout)
      fail("did not complete in " + detail::wire::duration_text(info_.timeout));
    return false;
  }
  void wait() override {
    // The device completes runs without the host's help: poll, yielding the core.
    auto pause = std::chrono::microseconds(1);
    while (!test()) {
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
  }

 private:
  /// Aborts the device and breaks the transport (the mutex is held).
  [[noreturn]] void fail(const std::string& what) {
    const std::string peers = peers_.empty()       ? "no other rank"
                              : peers_.size() == 1 ? "rank " + detail::wire::list_ranks(peers_)
                                                   : "ranks " + detail::wire::list_ranks(peers_);
    const std::string why = what + " on rank " + std::to_string(state_->device->rank()) + " (" +
                            state_->device->name() + "), which exchanges data with " + peers +
                            " in it: one of them died, stopped, or did not make this call; the "
                            "communicator was aborted";
    state_->break_down("the communicator was aborted after " + info_.label + " failed");
    throw PeerError(info_.label + ": " + why);
  }

  std::shared_ptr<State> state_;
  std::unique_ptr<StreamMark> mark_;
  RunInfo info_;
  std::vector<int> peers_;
  std::chrono::steady_clock::time_point start_;
  bool done_ = false;
};

/// A run that completed as it was queued (on the caller's stream).
struct Queued final : TransportRun {
  bool test() override { return true; }
  void wait() override {}
};

}  // namespace detail::wave_transport

/// A Transport that queues programs on a WaveDevice in waves.
class WaveTransport final : public Transport {
 public:
  explicit WaveTransport(std::unique_ptr<WaveDevice> device)
      : state_(std::make_shared<detail::wave_transport::State>()) {
    if (!device) throw LogicError("wave transport: no device");
    state_->device = std::move(device);
  }

  [[nodiscard]] int rank() const override { return state_->device->rank(); }
  [[nodiscard]] int size() const override { return state_->device->size(); }
  [[nodiscard]] std::string name() const override { return state_->device->name(); }
  Bootstrap& bootstrap() override { return state_->device->bootstrap(); }
  /// Runs on one stream complete in the order queued: any number may be in flight.
  [[nodiscard]] int max_in_flight() const override { return 1 << 30; }
  [[nodiscard]] bool needs_levels() const override { return true; }
  [[nodiscard]] bool provides_scratch() const override { return true; }
  [[nodiscard]] int lanes() const override { return state_->device->lanes(); }
  [[nodiscard]] std::vector<Algorithm> native_algorithms(Collective c) const override {
    return state_->device->native_algorithms(c);
  }
  [[nodiscard]] std::string native_library() const override { return state_->device->library(); }
  void check_memory(const void* p, std::size_t bytes, const std::string& what,
                    const std::string& call) override {
    state_->device->check_memory(p, bytes, what, call);
  }
  /// The device, for what only it knows (its stream, its communicator).
  [[nodiscard]] WaveDevice& device() { return *state_->device; }

  std::unique_ptr<TransportRun> start(std::shared_ptr<const RankProgram> program,
                                      std::vector<std::byte*> buffers,
                                      const RunInfo& info) override {
    check_program_fits(*program, rank(), size());
    const std::lock_guard lock(state_->mutex);
    check_usable(info);
    WaveDevice& dev = *state_->device;
    if (buffers.size() != program->buffers().size())
      throw LogicError("wave transport: " + std::to_string(buffers.size()) + " pointers for " +
                       std::to_string(program->buffers().size()) + " buffers");
    std::unique_ptr<detail::wave_transport::Prepared> once;
    detail::wave_transport::Prepared& prep = prepared(program, buffers, once);
    for (std::size_t b = 0; b < buffers.size(); ++b) {
      if (buffers[b] != nullptr || program->buffers()[b] == 0) continue;
      if (!prep.buffers[b]) prep.buffers[b] = dev.allocate(program->buffers()[b]);
      buffers[b] = prep.buffers[b]->data();
    }
    const RankBuffers mem(*program, std::move(buffers));
    std::byte* scratch = prep.scratch ? prep.scratch->data() : nullptr;
    try {
      dev.use_stream(info.stream);
      DeviceOps ops{dev};
      run_rank_waves(*program, prep.schedule, mem, scratch, ops, ops, ops);
    } catch (const PeerError& e) {
      fail_queuing(info, e.what());
    }
    return finish_start(info, prep.peers);
  }

  std::unique_ptr<TransportRun> start_native(const NativeCall& call, const RunInfo& info) override {
    const std::lock_guard lock(state_->mutex);
    check_usable(info);
    WaveDevice& dev = *state_->device;
    try {
      dev.use_stream(info.stream);
      dev.native(call);
    } catch (const PeerError& e) {
      fail_queuing(info, e.what());
    }
    std::vector<int> everyone;
    for (int r = 0; r < size(); ++r) {
      if (r != rank()) everyone.push_back(r);
    }
    return finish_start(info, std::move(everyone));
  }

  std::unique_ptr<Transport> split(int color, int key) override {
    std::unique_ptr<WaveDevice> part;
    {
      const std::lock_guard lock(state_->mutex);
      if (state_->broken) throw PeerError("split: " + state_->why_broken);
      part = state_->device->split(color, key);
    }
    if (!part) return nullptr;
    return std::make_unique<WaveTransport>(std::move(part));
  }

  /// Programs whose memory the transport keeps (one per call shape the communicator ran).
  [[nodiscard]] std::size_t prepared_programs() const { return prepared_.size(); }

 private:
  /// The device as comm/waves.hpp's Memory, Messages and Lanes.
  struct DeviceOps {
    WaveDevice& dev;
    void copy(std::byte* d, const std::byte* s, std::size_t n) { dev.copy(d, s, n); }
    void reduce(ReductionSpec r, std::byte* d, const std::byte* s, std::size_t n) {
      dev.reduce(r, d, s, n);
    }
    void finish(ReductionSpec r, std::byte* b, std::size_t n, int ranks) {
      dev.finish(r, b, n, ranks);
    }
    void group_start() { dev.group_start(); }
    void send(const std::byte* s, std::size_t n, int peer, OpId op) { dev.send(s, n, peer, op); }
    void recv(std::byte* d, std::size_t n, int peer, OpId op) { dev.recv(d, n, peer, op); }
    void group_end() { dev.group_end(); }
    void lane(int l) { dev.use_lane(l); }
    void signal(int /*rank*/, std::size_t mark) { dev.signal(mark); }
    void wait(int /*rank*/, std::size_t mark) { dev.wait_for(mark); }
  };

  void check_usable(const RunInfo& info) {
    if (state_->broken) throw PeerError(info.label + ": " + state_->why_broken);
    const std::string error = state_->device->async_error();
    if (!error.empty()) {
      state_->break_down("the communicator was aborted after an asynchronous error (" + error +
                         ")");
      throw PeerError(info.label + ": " + state_->why_broken);
    }
  }

  /// A device call that waited in vain while queuing (a group a dead peer never joined):
  /// the device is aborted and the transport broken, as when a run times out.
  [[noreturn]] void fail_queuing(const RunInfo& info, const std::string& what) {
    state_->break_down("the communicator was aborted after " + info.label + " failed");
    throw PeerError(info.label + ": " + what + " on rank " + std::to_string(rank()) +
                    "; the communicator was aborted");
  }

  std::unique_ptr<TransportRun> finish_start(const RunInfo& info, std::vector<int> peers) {
    if (info.stream != nullptr) return std::make_unique<detail::wave_transport::Queued>();
    return std::make_unique<detail::wave_transport::Run>(state_, state_->device->mark(), info,
                                                         std::move(peers));
  }

  /// The program's waves and memory: kept when it needs device memory (a collective's
  /// program, which the communicator keeps per call shape); otherwise made for this run
  /// alone, in `once` (a point-to-point call's program, new at every call).
  detail::wave_transport::Prepared& prepared(
      const std::shared_ptr<const RankProgram>& program, const std::vector<std::byte*>& buffers,
      std::unique_ptr<detail::wave_transport::Prepared>& once) {
    auto it = prepared_.find(program.get());
    if (it != prepared_.end()) return *it->second.second;
    auto prep = std::make_unique<detail::wave_transport::Prepared>(*program, lanes());
    bool needs_memory = prep->schedule.scratch_bytes() != 0;
    for (std::size_t b = 0; b < buffers.size(); ++b)
      needs_memory = needs_memory || (buffers[b] == nullptr && program->buffers()[b] != 0);
    prep->buffers.resize(program->buffers().size());
    if (prep->schedule.scratch_bytes() != 0)
      prep->scratch = state_->device->allocate(prep->schedule.scratch_bytes());
    for (const RankStep& s : program->steps()) {
      if (s.kind == StepKind::send || s.kind == StepKind::recv) prep->peers.push_back(s.peer);
    }
    std::sort(prep->peers.begin(), prep->peers.end());
    prep->peers.erase(std::unique(prep->peers.begin(), prep->peers.end()), prep->peers.end());
    if (!needs_memory) {
      once = std::move(prep);
      return *once;
    }
    // The program is held with its memory, so its address names it for as long as the
    // entry lives.
    auto& entry = prepared_[program.get()];
    entry = {program, std::move(prep)};
    return *entry.second;
  }

  std::shared_ptr<detail::wave_transport::State> state_;
  std::map<const RankProgram*, std::pair<std::shared_ptr<const RankProgram>,
                                         std::unique_ptr<detail::wave_transport::Prepared>>>
      prepared_;
};

RAILCC_NAMESPACE_END
