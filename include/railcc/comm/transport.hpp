// railcc/comm/transport.hpp: what a communicator needs from a transport: run this rank's
// program of a plan on its memory, and split.
//
// A transport moves one rank's messages (coll/projection.hpp's sends, receives and their
// acknowledgements) and runs its local steps. A run starts at once and is progressed by
// test() or wait(), the way MPI progresses non-blocking calls, so a caller overlaps its
// own work with a collective by calling test() now and then, without a thread of
// railcc's. Several runs may be in flight on one transport; their messages never match
// each other's, because each run has its own sequence number (collectives are numbered
// in the order the ranks call them, which must be the same on every rank, as NCCL
// requires; point-to-point calls are numbered per peer and direction).
// A run that goes `timeout` without progress fails with a PeerError naming the ranks it
// waits for and the call: no hang on a rank that died or stopped. After a failure the
// transport is broken and every later run fails at once: messages of the failed run may
// still arrive, and nothing could tell them from a later run's.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "railcc/bootstrap/bootstrap.hpp"
#include "railcc/bootstrap/start.hpp"
#include "railcc/coll/call.hpp"
#include "railcc/coll/collective.hpp"
#include "railcc/coll/data_type.hpp"
#include "railcc/coll/projection.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/comm/host_steps.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

/// What a run is, for its messages' tags and for errors.
struct RunInfo {
  /// Collectives: the call's number on the communicator. Point-to-point: 0, and each
  /// step's operation is the number of its message between its pair in its direction
  /// (so a message matches whether either side sent it alone or in a batch).
  std::uint64_t sequence = 0;
  bool point_to_point = false;
  /// Names the call in errors: "all_reduce #12 (ring, 1048576 x float32 sum)".
  std::string label;
  /// How long the run may go without progress.
  std::chrono::milliseconds timeout{std::chrono::seconds(600)};
  /// A device transport's stream for this call (a cudaStream_t), or null for its own.
  /// On the caller's stream a run completes once queued, as NCCL's calls return: the
  /// caller orders its own work after it on that stream, or synchronises it.
  void* stream = nullptr;
};

/// A collective as the transport's own library runs it (NCCL's ncclAllReduce and the
/// rest), with NCCL's arguments.
struct NativeCall {
  Collective collective = Collective::all_reduce;
  const void* send = nullptr;
  void* recv = nullptr;
  std::size_t count = 0;  ///< as NCCL counts (per rank for reduce_scatter and all_gather)
  DataType type = DataType::float32;
  ReduceOp op = ReduceOp::sum;
  int root = 0;
};

/// One rank's run of a program, in flight.
class TransportRun {
 public:
  TransportRun() = default;
  TransportRun(const TransportRun&) = delete;
  TransportRun& operator=(const TransportRun&) = delete;
  virtual ~TransportRun() = default;
  /// Advances the run without blocking; true once every step has completed. Throws a
  /// PeerError when the run has gone its timeout without progress.
  virtual bool test() = 0;
  /// Returns once every step has completed; throws as test() does.
  virtual void wait() = 0;
};

class Transport {
 public:
  Transport() = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;
  virtual ~Transport() = default;

  [[nodiscard]] virtual int rank() const = 0;
  [[nodiscard]] virtual int size() const = 0;
  /// "host (MPI)", for logs and railcc-perf.
  [[nodiscard]] virtual std::string name() const = 0;
  /// The bootstrap over the same ranks (placement exchange, call checks).
  virtual Bootstrap& bootstrap() = 0;
  /// Collective runs that may be in flight at once: their numbers modulo this tell their
  /// messages apart.
  [[nodiscard]] virtual int max_in_flight() const = 0;
  /// Starts `program` (this rank's) on `buffers` (one pointer per program buffer). The
  /// program and the memory must outlive the run.
  virtual std::unique_ptr<TransportRun> start(std::shared_ptr<const RankProgram> program,
                                              std::vector<std::byte*> buffers,
                                              const RunInfo& info) = 0;
  /// A transport over the ranks that give the same `color` (>= 0), ordered by `key` then
  /// rank; nullptr for a rank that gives a negative color. Every rank must call it.
  virtual std::unique_ptr<Transport> split(int color, int key) = 0;

  // ---- what device transports add (comm/wave_transport.hpp) ---------------------------
  /// Checks, before a call is queued, that `p` is memory the transport can use with at
  /// least `bytes` bytes from it: an InputError saying "CALL: WHAT ..." if not (a device
  /// transport given host memory, or a buffer too small). Host transports take any.
  virtual void check_memory(const void* /*p*/, std::size_t /*bytes*/, const std::string& /*what*/,
                            const std::string& /*call*/) {}
  /// Programs must carry their levels (coll/projection.hpp, rule 6): the transport
  /// queues them in waves.
  [[nodiscard]] virtual bool needs_levels() const { return false; }
  /// The streams the transport runs a program's channels on at once (comm/waves.hpp's
  /// lanes): a call's channels default to this many.
  [[nodiscard]] virtual int lanes() const { return 1; }
  /// The transport provides the memory of a program's buffers the caller leaves null
  /// (the plan's scratch, in device memory); otherwise the communicator gives every one.
  [[nodiscard]] virtual bool provides_scratch() const { return false; }
  /// The algorithms of `c` the transport's own library runs (NCCL's ring and tree), which
  /// the communicator may delegate a call to; none by default.
  [[nodiscard]] virtual std::vector<Algorithm> native_algorithms(Collective /*c*/) const {
    return {};
  }
  /// The library those algorithms are in ("NCCL"), for logs and the plan's name.
  [[nodiscard]] virtual std::string native_library() const { return ""; }
  /// Starts `call` as the transport's own library runs it.
  virtual std::unique_ptr<TransportRun> start_native(const NativeCall& /*call*/,
                                                     const RunInfo& info) {
    throw LogicError(name() + " has no collectives of its own (" + info.label + ")");
  }
};

/// A job of one rank: every step is local, so runs complete as they start.
class LocalTransport final : public Transport {
 public:
  [[nodiscard]] int rank() const override { return 0; }
  [[nodiscard]] int size() const override { return 1; }
  [[nodiscard]] std::string name() const override { return "local (one rank)"; }
  Bootstrap& bootstrap() override { return bootstrap_; }
  /// Runs complete as they start: any number.
  [[nodiscard]] int max_in_flight() const override { return 1 << 30; }
  std::unique_ptr<TransportRun> start(std::shared_ptr<const RankProgram> program,
                                      std::vector<std::byte*> buffers,
                                      const RunInfo& info) override {
    if (program->ranks() != 1)
      throw LogicError("local transport: a program of " + std::to_string(program->ranks()) +
                       " ranks");
    const RankBuffers mem(*program, std::move(buffers));
    StepTracker tracker(*program);
    std::vector<std::byte> spare;
    std::uint32_t i = 0;
    while (tracker.pop_ready(i)) {
      const RankStep& s = program->step(i);
      if (s.kind != StepKind::local)
        throw LogicError("local transport: " + info.label + " has a " +
                         std::string(to_string(s.kind)) + " step in a job of one rank");
      run_local_step(*program, s, mem, spare);
      tracker.complete(i);
    }
    if (!tracker.done())
      throw LogicError("local transport: " + info.label + " has steps that wait forever");
    return std::make_unique<Done>();
  }
  std::unique_ptr<Transport> split(int color, int /*key*/) override {
    if (color < 0) return nullptr;
    return std::make_unique<LocalTransport>();
  }

 private:
  struct Done final : TransportRun {
    bool test() override { return true; }
    void wait() override {}
  };
  SoloBootstrap bootstrap_;
};

RAILCC_NAMESPACE_END
