// railcc/comm/communicator.hpp: the communicator users hold: NCCL-shaped calls on their
// own buffers, each run as this rank's projection of a plan the tuner chose.
//
// A Communicator is built over a Transport (comm/transport.hpp: the host backend over MPI
// or TCP, a job of one rank, or a device transport, comm/wave_transport.hpp: NCCL) and,
// at construction, learns where every rank sits: each rank
// gives its host and its rail through the transport's bootstrap (comm/placement.hpp). The
// fabric the tuner assumes is RAILCC_FABRIC's, or by default a rail-optimised fabric of
// the hosts found. A call:
//  1. checks its arguments (and, under RAILCC_CHECK_CALLS=1, that every rank made the
//     same call, naming the ranks that did not);
//  2. takes the plan for its shape (collective, count, type, op, root, in place, options)
//     from the cache, or makes it: the tuner's algorithm (CostModel::choose, or
//     RAILCC_ALGO, or the call's options), posted and projected for this rank alone
//     (project_posted), so a training loop pays for planning once per shape;
//     Where the transport has a library with collectives of its own (NCCL) and the tuner
//     predicts one of them no slower than that plan, the call is delegated to it instead
//     (unless the call or RAILCC_ALGO names an algorithm);
//  3. runs the program on the caller's buffers and scratch memory the communicator keeps
//     (a device transport's own, in device memory), blocking, or returning a Request to
//     test or wait on; on a device transport, with CallOptions::stream, queued on the
//     caller's stream and complete once queued.
// Semantics are NCCL's: counts per rank (reduce_scatter's recvcount, all_gather's
// sendcount, all_to_all's count per peer); in place when the pointers say so as NCCL's do
// (all_reduce, broadcast, reduce: sendbuff == recvbuff; reduce_scatter: recvbuff ==
// sendbuff + rank * recvcount; all_gather: sendbuff == recvbuff + rank * sendcount); the
// root's buffers only where NCCL reads them (broadcast's sendbuff and reduce's recvbuff
// at the root alone). Every rank must make the same collective calls in the same order.
// Thread safety: a Communicator and its Requests are used by one thread at a time.
// Different communicators may be used by different threads at once where the transport
// allows (the host backend: when MPI was initialised with MPI_THREAD_MULTIPLE).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "railcc/backend/call_time.hpp"
#include "railcc/backend/sim_backend.hpp"
#include "railcc/bootstrap/env.hpp"
#include "railcc/coll/call.hpp"
#include "railcc/coll/collective.hpp"
#include "railcc/coll/data_type.hpp"
#include "railcc/coll/post.hpp"
#include "railcc/coll/projection.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/comm/host_steps.hpp"
#include "railcc/comm/placement.hpp"
#include "railcc/comm/transport.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/fabric/presets.hpp"
#include "railcc/log.hpp"
#include "railcc/topology/node_topology.hpp"
#include "railcc/tune/cost_model.hpp"

RAILCC_NAMESPACE_BEGIN

/// What a communicator is built with besides its transport.
struct CommunicatorOptions {
  RailccSettings settings;
  Logger log;
  /// The fabric the tuner assumes (RAILCC_FABRIC, read by read_job_inputs); nothing: a
  /// rail-optimised fabric of the hosts found.
  std::optional<Fabric> fabric;
  std::string fabric_name;
  /// This node's topology (RAILCC_TOPO_FILE): each rank's rail is its GPU's NIC's.
  std::optional<NodeTopology> topology;
  /// This rank's host; empty: the machine's host name.
  std::string host_name;
};

/// One send or receive of a batch (Communicator::batch_isend_irecv).
struct PeerTransfer {
  bool sending = true;
  void* buffer = nullptr;  ///< what is sent, or where it is received
  std::size_t count = 0;
  DataType type = DataType::float32;
  int peer = 0;
  static PeerTransfer send(const void* buf, std::size_t count, DataType type, int peer) {
    return {true, const_cast<void*>(buf), count, type, peer};
  }
  static PeerTransfer recv(void* buf, std::size_t count, DataType type, int peer) {
    return {false, buf, count, type, peer};
  }
};

/// Per-call choices that override the tuner's.
struct CallOptions {
  std::optional<Algorithm> algorithm;
  std::optional<Algorithm> inter_host;  ///< hierarchical's algorithm across hosts
  int channels = 0;                     ///< 0: the transport's lanes (1 but on a GPU's)
  /// A device transport's stream (a cudaStream_t) to queue the call on, as NCCL's calls
  /// take one; the call then returns once queued. Null: the transport's own stream, and
  /// the call returns (or its Request completes) when it has completed.
  void* stream = nullptr;
};

/// What a call will run (the plan's parameters), and why.
struct PlanChoice : PlannedCall {
  Picoseconds predicted;
  /// "tuner: ring 61.2 us, rabenseifner 70.1 us, tree 80.0 us" or "RAILCC_ALGO".
  std::string why;
  /// The call runs as the transport's own library's collective (NCCL's), `algorithm`
  /// being the one the tuner priced for it; empty: railcc's plan.
  std::string native_library;
  [[nodiscard]] bool native() const { return !native_library.empty(); }
  [[nodiscard]] const PlannedCall& plan() const { return *this; }
  [[nodiscard]] std::string name() const {
    std::string s(to_string(algorithm));
    if (algorithm == Algorithm::hierarchical) s += "+" + std::string(to_string(inter_host));
    return native() ? native_library + ":" + s : s;
  }
};

/// A call in flight: test() advances it, wait() finishes it. A Request dropped before it
/// completed waits for it first (the buffers stay in use until then).
class Request {
 public:
  Request() = default;
  Request(Request&&) noexcept = default;
  Request& operator=(Request&& other) noexcept {
    if (this != &other) {
      run_.reset();  // waits for a call still in flight before taking another
      resources_ = std::move(other.resources_);
      run_ = std::move(other.run_);
    }
    return *this;
  }
  ~Request() { run_.reset(); }
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

  /// Advances the call; true once it has completed. Throws PeerError when it failed.
  bool test() {
    if (!run_) return true;
    if (!run_->test()) return false;
    finish();
    return true;
  }
  /// Returns once the call has completed; throws PeerError when it failed.
  void wait() {
    if (!run_) return;
    run_->wait();
    finish();
  }
  [[nodiscard]] bool done() const { return !run_; }

 private:
  friend class Communicator;
  /// What the call holds until it completes: its scratch memory, and its place among
  /// the collectives in flight.
  struct Resources {
    std::shared_ptr<ScratchPool> pool;
    std::vector<std::vector<std::byte>> scratch;
    std::shared_ptr<std::atomic<int>> in_flight;
    Resources() = default;
    Resources(const Resources&) = delete;
    Resources& operator=(const Resources&) = delete;
    ~Resources() {
      for (auto& s : scratch) pool->give_back(std::move(s));
      if (in_flight) --*in_flight;
    }
  };
  void finish() {
    run_.reset();
    resources_.reset();
  }
  std::unique_ptr<Resources> resources_;  // released after run_ (declared before it)
  std::unique_ptr<TransportRun> run_;
};

class Communicator {
 public:
  /// Collective over the transport's ranks: every rank says where it sits.
  Communicator(std::unique_ptr<Transport> transport, CommunicatorOptions options)
      : Communicator(std::move(transport), std::move(options), std::nullopt) {}

  [[nodiscard]] int rank() const { return transport_->rank(); }
  [[nodiscard]] int size() const { return transport_->size(); }
  [[nodiscard]] const JobPlacement& placement() const { return placement_; }
  [[nodiscard]] const CostModel& model() const { return model_; }
  [[nodiscard]] const Fabric& fabric() const { return *fabric_; }
  [[nodiscard]] const std::string& fabric_name() const { return fabric_name_; }
  [[nodiscard]] std::string transport_name() const { return transport_->name(); }
  [[nodiscard]] const RailccSettings& settings() const { return options_.settings; }
  /// Plans made so far (one per call shape).
  [[nodiscard]] std::size_t cached_plans() const { return cache_.size(); }
  /// The transport, for what only it knows (a device transport's stream and device).
  [[nodiscard]] Transport& transport() { return *transport_; }

  // ---- collectives, as NCCL's ------------------------------------------------------------
  void all_reduce(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                  const CallOptions& o = {}) {
    iall_reduce(send, recv, count, type, op, o).wait();
  }
  Request iall_reduce(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                      const CallOptions& o = {}) {
    return start({Collective::all_reduce, count, type, op, 0}, send, recv, o);
  }
  void reduce_scatter(const void* send, void* recv, std::size_t recv_count, DataType type,
                      ReduceOp op, const CallOptions& o = {}) {
    ireduce_scatter(send, recv, recv_count, type, op, o).wait();
  }
  Request ireduce_scatter(const void* send, void* recv, std::size_t recv_count, DataType type,
                          ReduceOp op, const CallOptions& o = {}) {
    return start({Collective::reduce_scatter, recv_count, type, op, 0}, send, recv, o);
  }
  void all_gather(const void* send, void* recv, std::size_t send_count, DataType type,
                  const CallOptions& o = {}) {
    iall_gather(send, recv, send_count, type, o).wait();
  }
  Request iall_gather(const void* send, void* recv, std::size_t send_count, DataType type,
                      const CallOptions& o = {}) {
    return start({Collective::all_gather, send_count, type, ReduceOp::sum, 0}, send, recv, o);
  }
  void broadcast(const void* send, void* recv, std::size_t count, DataType type, int root,
                 const CallOptions& o = {}) {
    ibroadcast(send, recv, count, type, root, o).wait();
  }
  Request ibroadcast(const void* send, void* recv, std::size_t count, DataType type, int root,
                     const CallOptions& o = {}) {
    return start({Collective::broadcast, count, type, ReduceOp::sum, root}, send, recv, o);
  }
  void reduce(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op, int root,
              const CallOptions& o = {}) {
    ireduce(send, recv, count, type, op, root, o).wait();
  }
  Request ireduce(const void* send, void* recv, std::size_t count, DataType type, ReduceOp op,
                  int root, const CallOptions& o = {}) {
    return start({Collective::reduce, count, type, op, root}, send, recv, o);
  }
  /// `count` elements to and from each peer (send and recv hold size() * count).
  void all_to_all(const void* send, void* recv, std::size_t count, DataType type,
                  const CallOptions& o = {}) {
    iall_to_all(send, recv, count, type, o).wait();
  }
  Request iall_to_all(const void* send, void* recv, std::size_t count, DataType type,
                      const CallOptions& o = {}) {
    return start({Collective::all_to_all, count, type, ReduceOp::sum, 0}, send, recv, o);
  }

  // ---- point to point --------------------------------------------------------------------
  /// Sends `count` elements to `peer`, matched with peer's recv from this rank in order.
  void send(const void* buf, std::size_t count, DataType type, int peer) {
    isend(buf, count, type, peer).wait();
  }
  Request isend(const void* buf, std::size_t count, DataType type, int peer) {
    return point_to_point(true, const_cast<void*>(buf), count, type, peer);
  }
  void recv(void* buf, std::size_t count, DataType type, int peer) {
    irecv(buf, count, type, peer).wait();
  }
  Request irecv(void* buf, std::size_t count, DataType type, int peer) {
    return point_to_point(false, buf, count, type, peer);
  }
  /// Sends and receives started together, as NCCL's ncclSend and ncclRecv between
  /// ncclGroupStart and ncclGroupEnd (PyTorch's batch_isend_irecv): none waits for
  /// another, so each rank of a ring may send to the next and receive from the previous
  /// in one batch. Each matches the peer's sends or receives with this rank in order,
  /// whether the peer made them alone or in a batch. One NCCL group on the NCCL transport.
  Request batch_isend_irecv(std::span<const PeerTransfer> transfers) {
    return start_transfers(transfers, "batch_isend_irecv");
  }
  void batch_send_recv(std::span<const PeerTransfer> transfers) {
    batch_isend_irecv(transfers).wait();
  }

  /// A communicator over the ranks that give the same `color` (>= 0), ordered by `key`
  /// then rank, as ncclCommSplit; nothing for a rank that gives a negative color. Every
  /// rank must call it. The new communicator keeps each rank's host and rail.
  std::optional<Communicator> split(int color, int key) {
    const RankPlacement me = placement_.ranks[static_cast<std::size_t>(rank())];
    const std::string my_host = placement_.host_names[me.host];
    auto part = transport_->split(color, key);
    if (!part) return std::nullopt;
    CommunicatorOptions o = options_;
    o.host_name = my_host;
    o.topology.reset();
    o.settings.ranks_per_host.reset();
    return Communicator(std::move(part), std::move(o), me.rail);
  }

  /// The ranks on this rank's host, in rank order: a node communicator (every rank must
  /// call it; on NCCL, an ncclCommSplit by host).
  Communicator split_by_host() {
    const RankPlacement me = placement_.ranks[static_cast<std::size_t>(rank())];
    return *split(static_cast<int>(me.host), rank());
  }
  /// The ranks on this rank's rail (its NIC's index on every host), in rank order: a
  /// rail communicator, whose traffic between hosts stays on one rail of a
  /// rail-optimised fabric (every rank must call it; on NCCL, an ncclCommSplit by rail).
  Communicator split_by_rail() {
    const RankPlacement me = placement_.ranks[static_cast<std::size_t>(rank())];
    return *split(static_cast<int>(me.rail), rank());
  }

  /// The time the simulator predicts for a call of this shape on the tuner's fabric,
  /// with this job's placement and the plan the call runs (timing mode, collective base
  /// included): railcc-perf's model column. A measured time far above it is a slow node
  /// or link, or a transport slower than the fabric modelled (host memory is).
  [[nodiscard]] Picoseconds model_time(Collective c, std::size_t count, DataType type, ReduceOp op,
                                       int root, bool in_place, const CallOptions& o = {}) const {
    const PlanChoice choice = choose(c, model_bytes(c, count, type), o);
    return simulated_call_time(*fabric_, size(), model_endpoints(), c, count, type, op, root,
                               in_place, choice.plan());
  }

  /// The plan a call of this shape runs, and why (the tuner's candidates), without
  /// running it.
  [[nodiscard]] PlanChoice explain(Collective c, std::size_t count, DataType type,
                                   const CallOptions& o = {}) const {
    return choose(c, model_bytes(c, count, type), o);
  }

 private:
  struct Shape {
    Collective collective = Collective::all_reduce;
    std::size_t count = 0;
    DataType type = DataType::float32;
    ReduceOp op = ReduceOp::sum;
    int root = 0;
  };
  struct Cached {
    std::shared_ptr<const RankProgram> program;
    PlanChoice choice;
    std::size_t user_buffers = 2;  // buffers the caller's pointers fill (1 in place)
  };
  using Key = std::tuple<int, std::size_t, int, int, int, bool, int, int, int>;

  Communicator(std::unique_ptr<Transport> transport, CommunicatorOptions options,
               std::optional<std::uint32_t> rail)
      : transport_(std::move(transport)),
        options_(std::move(options)),
        pool_(std::make_shared<ScratchPool>()),
        in_flight_(std::make_shared<std::atomic<int>>(0)),
        sends_(static_cast<std::size_t>(transport_->size()), 0),
        recvs_(static_cast<std::size_t>(transport_->size()), 0) {
    options_.log.set_rank(rank());
    if (options_.settings.algorithm) {
      forced_ = parse_algorithm(*options_.settings.algorithm);
      if (!forced_)
        throw InputError("environment: RAILCC_ALGO=\"" + *options_.settings.algorithm +
                         "\" is not an algorithm (ring, rabenseifner, tree, hierarchical, "
                         "mixed_radix, chain, pairwise, bruck)");
    }
    meet(rail);
    set_up_fabric();
    options_.log.info("communicator: " + placement_.describe() + " over " + transport_->name() +
                      "; the tuner assumes " + fabric_name_);
  }

  /// Every rank's host, then its rail: the placement.
  void meet(std::optional<std::uint32_t> rail) {
    Bootstrap& boot = transport_->bootstrap();
    std::string host = options_.host_name;
    if (options_.settings.ranks_per_host) {
      host = grouped_host(rank(), *options_.settings.ranks_per_host);
    } else if (host.empty()) {
      std::array<char, 256> name{};
      if (gethostname(name.data(), name.size() - 1) != 0)
        throw InputError("communicator: this machine's host name cannot be read");
      host = name.data();
    }
    placement_ = place_ranks(boot.all_gather(host));
    RankPlacement& me = placement_.ranks[static_cast<std::size_t>(rank())];
    std::uint32_t my_rail = me.local;
    if (rail) {
      my_rail = *rail;
    } else if (options_.topology) {
      std::size_t here = 0;
      for (const auto& p : placement_.ranks) here += p.host == me.host ? 1 : 0;
      my_rail = rail_from_topology(*options_.topology, me.local, here);
      options_.log.info("node topology " + options_.topology->source() + ": " +
                        std::to_string(options_.topology->gpus().size()) + " GPUs, " +
                        std::to_string(options_.topology->nics().size()) + " NICs; local rank " +
                        std::to_string(me.local) + " is on rail " + std::to_string(my_rail));
    }
    const auto rails = boot.all_gather(std::to_string(my_rail));
    for (std::size_t r = 0; r < rails.size(); ++r)
      placement_.ranks[r].rail = static_cast<std::uint32_t>(std::stoul(rails[r]));
  }

  /// The fabric the tuner assumes, and its cost model for this placement.
  void set_up_fabric() {
    const std::size_t per_host = std::max<std::size_t>(placement_.max_per_host, 1);
    if (options_.fabric) {
      fabric_ = std::make_shared<const Fabric>(std::move(*options_.fabric));
      options_.fabric.reset();
      fabric_name_ = options_.fabric_name.empty() ? "the fabric given" : options_.fabric_name;
    } else {
      fabric_ = std::make_shared<const Fabric>(rail_optimised_fabric(
          placement_.hosts, static_cast<std::uint32_t>(per_host), /*nvswitch_reduction=*/false));
      fabric_name_ = "a rail-optimised fabric of " + std::to_string(placement_.hosts) + " host" +
                     (placement_.hosts == 1 ? "" : "s") + " of " + std::to_string(per_host) +
                     " GPUs";
    }
    const Fabric& f = *fabric_;
    const HostLayout layout = host_layout(f);
    if (per_host > layout.per_host || placement_.hosts > layout.hosts)
      throw InputError("RAILCC_FABRIC: " + fabric_name_ + " has " + std::to_string(layout.hosts) +
                       " hosts of " + std::to_string(layout.per_host) +
                       " GPUs, but this job places " + placement_.describe());
    model_ = CostModel::of(
        f, std::min<std::size_t>(static_cast<std::size_t>(size()), f.endpoint_count()));
    // The model's shape is the job's, not the fabric's first endpoints'.
    model_.ranks = static_cast<std::size_t>(size());
    model_.hosts = placement_.hosts;
    model_.per_host = per_host;
    model_.switch_reduction = false;  // host memory has no NVSwitch to reduce in
  }

  /// The fabric's endpoint of each rank: local index `l` of host `h` is the fabric's
  /// host h's l-th GPU.
  std::vector<NodeIndex> model_endpoints() const {
    const Fabric& f = *fabric_;
    std::vector<NodeIndex> first_of_host;
    for (NodeIndex e = 0; e < f.endpoint_count(); ++e) {
      if (e == 0 || f.host(e) != f.host(e - 1)) first_of_host.push_back(e);
    }
    std::vector<NodeIndex> out;
    for (const RankPlacement& r : placement_.ranks) {
      const NodeIndex e = first_of_host.at(r.host) + r.local;
      if (e >= f.endpoint_count() || f.host(e) != f.host(first_of_host[r.host]))
        throw InputError("RAILCC_FABRIC: " + fabric_name_ + " has no GPU " +
                         std::to_string(r.local) + " on host " + std::to_string(r.host));
      out.push_back(e);
    }
    return out;
  }

  /// nccl-tests' size of a call (what the cost model takes).
  std::size_t model_bytes(Collective c, std::size_t count, DataType type) const {
    return size_for_count(c, count, size_of(type), static_cast<std::size_t>(size()));
  }

  /// "1048576 x int32 sum": a call's elements and, where it reduces, its op (in errors).
  static std::string elements_text(const Shape& s) {
    std::string t = std::to_string(s.count) + " x " + std::string(to_string(s.type));
    if (reduces(s.collective)) t += " " + std::string(to_string(s.op));
    return t;
  }

  PlanChoice choose(Collective c, std::size_t bytes, const CallOptions& o) const {
    PlanChoice choice;
    const bool hierarchical_fits =
        placement_.uniform && placement_.hosts > 1 && placement_.max_per_host > 1;
    auto usable = [&](Algorithm a) {
      return applies(c, a) && a != Algorithm::nvls &&
             (a != Algorithm::hierarchical || hierarchical_fits);
    };
    if (o.algorithm) {
      check_applies(c, *o.algorithm);
      if (!usable(*o.algorithm))
        throw InputError(
            std::string(to_string(c)) + ": algorithm " + std::string(to_string(*o.algorithm)) +
            " does not run on " + placement_.describe() +
            (*o.algorithm == Algorithm::nvls ? " without NVSwitch reduction"
                                             : " (it needs equal hosts, two or more)"));
      choice.algorithm = *o.algorithm;
      choice.why = "the call's option";
    } else if (forced_ && usable(*forced_)) {
      choice.algorithm = *forced_;
      choice.why = "RAILCC_ALGO";
    } else {
      // The least predicted time among the algorithms that run here (the first on a tie:
      // one rank, where nothing moves, takes the collective's default).
      choice.why = "tuner:";
      Picoseconds best;
      bool chosen = false;
      for (Algorithm a : algorithms_for(c)) {
        if (!usable(a)) continue;
        for (Algorithm inter : inter_host_algorithms()) {
          // Only hierarchical runs another algorithm across hosts: the others once.
          if (a != Algorithm::hierarchical && inter != inter_host_algorithms().front()) continue;
          PlanChoice candidate;
          candidate.algorithm = a;
          candidate.inter_host = inter;
          const Picoseconds t = model_.predict(c, a, inter, bytes);
          choice.why += " " + candidate.name() + " " + format_us(t);
          if (!chosen || t < best) {
            chosen = true;
            best = t;
            choice.algorithm = a;
            choice.inter_host = inter;
          }
        }
      }
      if (forced_)
        choice.why += " (RAILCC_ALGO=" + std::string(to_string(*forced_)) + " does not apply)";
    }
    if (o.inter_host) choice.inter_host = *o.inter_host;
    // A channel per lane, so that a device transport's streams all have work.
    choice.channels = o.channels > 0 ? o.channels : transport_->lanes();
    choice.phase_chunks = model_.phase_chunks_for(choice.algorithm, choice.inter_host, bytes);
    choice.chunks_in_flight =
        model_.chunks_in_flight_for(choice.algorithm, choice.inter_host, bytes);
    choice.predicted = model_.predict(c, choice.algorithm, choice.inter_host, bytes);
    // Delegation: where the transport's library runs an algorithm the tuner predicts at
    // least as fast as railcc's plan, the call is the library's own (its kernels move
    // the bytes of a ring or a tree as well as railcc's steps would, with one launch).
    // A call that names its algorithm, or RAILCC_ALGO, keeps railcc's plan.
    const bool chosen_by_tuner = !o.algorithm && !(forced_ && usable(*forced_));
    if (chosen_by_tuner && !o.inter_host && o.channels == 0) {
      std::optional<Algorithm> best;
      Picoseconds best_time;
      for (Algorithm a : transport_->native_algorithms(c)) {
        if (!applies(c, a)) continue;
        const Picoseconds t = model_.predict(c, a, choice.inter_host, bytes);
        if (!best || t < best_time) {
          best = a;
          best_time = t;
        }
      }
      if (best && best_time <= choice.predicted) {
        const std::string library = transport_->native_library();
        choice.why += "; " + library + "'s own " + std::string(to_string(*best)) + " predicted " +
                      format_us(best_time) + ", no slower than railcc's " + choice.name() +
                      ": delegated to " + library;
        choice.native_library = library;
        choice.algorithm = *best;
        choice.predicted = best_time;
      }
    }
    return choice;
  }

  static std::string format_us(Picoseconds t) {
    const double us = t.in_seconds() * 1e6;
    char text[32];
    std::snprintf(text, sizeof text, "%.1f us", us);
    return text;
  }

  /// A null pointer where the call needs bytes.
  static bool missing(const void* p, std::size_t bytes) { return p == nullptr && bytes != 0; }

  /// Starts a collective on the caller's buffers.
  Request start(Shape s, const void* send, void* recv, const CallOptions& o) {
    const auto p = static_cast<std::size_t>(size());
    const std::size_t e = size_of(s.type);
    const std::string name(to_string(s.collective));
    if (s.root < 0 || s.root >= size())
      throw InputError(name + ": root " + std::to_string(s.root) + " is not a rank of " +
                       std::to_string(size()));
    if (o.channels < 0 || o.channels > 64)
      throw InputError(name + ": channels must be 0 (one per lane of the transport) to 64");
    if (s.count > (std::size_t{1} << 50) / e / p)
      throw InputError(name + ": a count of " + std::to_string(s.count) + " is too large");
    const auto [in_elems, out_elems] = buffer_elements(s.collective, s.count, p);
    const std::size_t in_bytes = in_elems * e;
    const std::size_t out_bytes = out_elems * e;
    const auto* send_b = static_cast<const std::byte*>(send);
    auto* recv_b = static_cast<std::byte*>(recv);
    const std::size_t me = static_cast<std::size_t>(rank());
    bool in_place = false;
    switch (s.collective) {
      case Collective::reduce_scatter:
        in_place = recv_b != nullptr && send_b != nullptr && recv_b == send_b + me * out_bytes;
        break;
      case Collective::all_gather:
        in_place = recv_b != nullptr && send_b != nullptr && send_b == recv_b + me * in_bytes;
        break;
      case Collective::all_to_all:
        if (send_b == recv_b && send_b != nullptr)
          throw InputError("all_to_all: in place is not supported; give separate buffers");
        break;
      default: in_place = send_b == recv_b && send_b != nullptr; break;
    }
    const bool root = rank() == s.root;
    // Buffers NCCL does not read on this rank: the communicator's scratch stands in.
    const bool own_input = s.collective == Collective::broadcast && !root && !in_place;
    const bool own_output = s.collective == Collective::reduce && !root && !in_place;
    if (!own_input && missing(send, in_bytes))
      throw InputError(name + ": sendbuff is null on rank " + std::to_string(rank()));
    if (!own_output && missing(recv, out_bytes))
      throw InputError(name + ": recvbuff is null on rank " + std::to_string(rank()));
    if (!in_place && !own_input && !own_output && send_b != nullptr && recv_b != nullptr &&
        send_b < recv_b + out_bytes && recv_b < send_b + in_bytes)
      throw InputError(name + ": sendbuff and recvbuff overlap, but not as NCCL's in place does");
    // Memory the transport can use, as large as the call needs (a device transport asks
    // the driver).
    if (!own_input && send_b != nullptr)
      transport_->check_memory(send_b, in_bytes, "sendbuff",
                               name + " on rank " + std::to_string(rank()));
    if (!own_output && recv_b != nullptr)
      transport_->check_memory(recv_b, out_bytes, "recvbuff",
                               name + " on rank " + std::to_string(rank()));
    if (options_.settings.check_calls) check_same_call(s, in_place);

    const Cached& plan = plan_for(s, in_place, o);
    // Collectives in flight at once (non-blocking calls not yet completed): as many as
    // the transport's tags tell apart; one more is an InputError.
    const int most = transport_->max_in_flight();
    if (*in_flight_ >= most)
      throw InputError(name + ": " + std::to_string(most) +
                       " collectives are in flight on this communicator; wait for some first");
    auto res = std::make_unique<Request::Resources>();
    res->pool = pool_;
    RunInfo info;
    info.sequence = sequence_++;
    info.label = name + " #" + std::to_string(info.sequence) + " (" + plan.choice.name() + ", " +
                 elements_text(s) + ")";
    info.timeout = options_.settings.timeout;
    info.stream = o.stream;
    if (plan.choice.native()) {
      NativeCall call;
      call.collective = s.collective;
      call.send = send;
      call.recv = recv;
      call.count = s.count;
      call.type = s.type;
      call.op = s.op;
      call.root = s.root;
      ++*in_flight_;
      res->in_flight = in_flight_;
      Request request;
      request.resources_ = std::move(res);
      request.run_ = transport_->start_native(call, info);
      return request;
    }
    std::vector<std::byte*> ptrs(plan.program->buffers().size(), nullptr);
    // The plan's scratch: host memory from the pool, or the transport's own (null here).
    const bool transport_scratch = transport_->provides_scratch();
    auto scratch = [&](std::size_t b) -> std::byte* {
      if (transport_scratch) return nullptr;
      res->scratch.push_back(pool_->take(plan.program->buffers()[b]));
      return res->scratch.back().data();
    };
    if (in_place) {
      // The one buffer is the larger of the two: all_gather's output, the others' input.
      ptrs[0] = s.collective == Collective::all_gather ? recv_b : const_cast<std::byte*>(send_b);
    } else {
      ptrs[0] = own_input ? scratch(0) : const_cast<std::byte*>(send_b);
      ptrs[1] = own_output ? scratch(1) : recv_b;
    }
    for (std::size_t b = plan.user_buffers; b < ptrs.size(); ++b) ptrs[b] = scratch(b);
    ++*in_flight_;
    res->in_flight = in_flight_;
    Request request;
    request.resources_ = std::move(res);
    request.run_ = transport_->start(plan.program, std::move(ptrs), info);
    return request;
  }

  const Cached& plan_for(const Shape& s, bool in_place, const CallOptions& o) {
    // The stream is not part of the shape: the same plan runs on any stream.
    const Key key{static_cast<int>(s.collective),
                  s.count,
                  static_cast<int>(s.type),
                  static_cast<int>(s.op),
                  s.root,
                  in_place,
                  o.algorithm ? static_cast<int>(*o.algorithm) : -1,
                  o.inter_host ? static_cast<int>(*o.inter_host) : -1,
                  o.channels};
    const auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    Cached c;
    c.choice = choose(s.collective, model_bytes(s.collective, s.count, s.type), o);
    c.user_buffers = in_place ? 1 : 2;
    PlanTarget target;
    target.placement = placement_.ranks;
    const std::size_t e = size_of(s.type);
    auto post = [&](PlanBuilder& b) {
      const CollectiveBuffers buf = allocate_buffers(b, s.collective, s.count, e, in_place);
      return post_collective(b, s.collective, planned_call(c.choice.plan(), s.count, buf, s.root),
                             c.choice.algorithm, c.choice.inter_host);
    };
    const std::string what = std::string(to_string(s.collective)) + " of " +
                             std::to_string(s.count) + " x " + std::string(to_string(s.type)) +
                             (in_place ? " in place" : "") + ": " + c.choice.name() +
                             ", predicted " + format_us(c.choice.predicted) + " on " +
                             fabric_name_ + " (" + c.choice.why + ")";
    if (c.choice.native()) {
      options_.log.info(what);
      return cache_.emplace(key, std::move(c)).first->second;
    }
    c.program = std::make_shared<const RankProgram>(project_posted(
        target, ReductionSpec{s.type, s.op}, rank(), post, transport_->needs_levels()));
    options_.log.info(what + "; this rank's program has " +
                      std::to_string(c.program->steps().size()) + " steps");
    return cache_.emplace(key, std::move(c)).first->second;
  }

  /// RAILCC_CHECK_CALLS: every rank says what it was asked; any difference fails on
  /// every rank, naming the ranks and their calls.
  void check_same_call(const Shape& s, bool in_place) {
    std::string mine = std::string(to_string(s.collective)) + " of " + elements_text(s);
    if (s.collective == Collective::broadcast || s.collective == Collective::reduce)
      mine += " from root " + std::to_string(s.root);
    if (in_place) mine += " in place";
    const auto all = transport_->bootstrap().all_gather(mine);
    if (std::all_of(all.begin(), all.end(), [&](const std::string& x) { return x == all[0]; }))
      return;
    std::map<std::string, std::vector<int>> by_call;
    for (std::size_t r = 0; r < all.size(); ++r) by_call[all[r]].push_back(static_cast<int>(r));
    std::string what;
    for (const auto& [call, ranks] : by_call) {
      what += what.empty() ? "" : "; ";
      what += "rank" + std::string(ranks.size() == 1 ? " " : "s ");
      for (std::size_t i = 0; i < ranks.size() && i < 16; ++i)
        what += (i ? ", " : "") + std::to_string(ranks[i]);
      if (ranks.size() > 16) what += " and " + std::to_string(ranks.size() - 16) + " more";
      what += ": " + call;
    }
    throw InputError("call #" + std::to_string(sequence_) + ": the ranks made different calls (" +
                     what + ")");
  }

  Request point_to_point(bool sending, void* buf, std::size_t count, DataType type, int peer) {
    const PeerTransfer t = sending ? PeerTransfer::send(buf, count, type, peer)
                                   : PeerTransfer::recv(buf, count, type, peer);
    return start_transfers({&t, 1}, sending ? "send" : "recv");
  }

  /// Starts `transfers` as one program of independent steps (one NCCL group on a device
  /// transport). Each is numbered among the messages between its pair in its direction,
  /// which is what its message matches on.
  Request start_transfers(std::span<const PeerTransfer> transfers, const std::string& call) {
    if (transfers.empty()) return Request();
    const std::string where = " on rank " + std::to_string(rank());
    std::vector<std::size_t> sizes;
    for (std::size_t i = 0; i < transfers.size(); ++i) {
      const PeerTransfer& t = transfers[i];
      const std::string name =
          transfers.size() == 1 ? call : call + " (transfer " + std::to_string(i) + ")";
      if (t.peer < 0 || t.peer >= size())
        throw InputError(name + ": peer " + std::to_string(t.peer) + " is not a rank of " +
                         std::to_string(size()));
      if (t.peer == rank())
        throw InputError(name + ": rank " + std::to_string(t.peer) +
                         " is this rank itself; copy the buffer instead");
      const std::size_t bytes = t.count * size_of(t.type);
      if (missing(t.buffer, bytes)) throw InputError(name + ": the buffer is null" + where);
      if (t.buffer != nullptr)
        transport_->check_memory(t.buffer, bytes, "the buffer", name + where);
      sizes.push_back(bytes);
    }
    auto program = std::make_shared<RankProgram>(rank(), size(), ReductionSpec{});
    program->set_buffers(sizes);
    std::vector<std::byte*> buffers;
    std::string what;
    // How many of this batch's messages came before, per (direction, peer): a message's
    // number is its pair's count so far plus those (the counts change once it started).
    std::map<std::pair<bool, int>, std::uint64_t> earlier;
    for (std::size_t i = 0; i < transfers.size(); ++i) {
      const PeerTransfer& t = transfers[i];
      const auto peer = static_cast<std::size_t>(t.peer);
      const std::uint64_t number =
          (t.sending ? sends_[peer] : recvs_[peer]) + earlier[{t.sending, t.peer}]++;
      RankStep step;
      // The message's number between the pair: what both sides match it on. It wraps
      // after 2^32 messages, as tags need not be unique for ever, only among those in flight.
      step.op = static_cast<OpId>(number);
      step.op_kind = OpKind::transfer;
      step.peer = t.peer;
      step.from = step.to = Region{static_cast<BufferId>(i), 0, sizes[i]};
      step.kind = t.sending ? StepKind::send : StepKind::recv;
      program->add(step, {}, {});
      program->add_completion(static_cast<std::uint32_t>(i));
      buffers.push_back(static_cast<std::byte*>(t.buffer));
      if (i < 4)
        what += std::string(i == 0 ? "" : ", ") + (t.sending ? "send #" : "recv #") +
                std::to_string(number) + (t.sending ? " to" : " from") + " rank " +
                std::to_string(t.peer) + " (" + std::to_string(t.count) + " x " +
                std::string(to_string(t.type)) + ")";
    }
    if (transfers.size() > 4) what += ", and " + std::to_string(transfers.size() - 4) + " more";
    program->set_levelled();  // independent steps, all at level 0
    RunInfo info;
    info.point_to_point = true;
    info.label = transfers.size() == 1
                     ? what
                     : call + " of " + std::to_string(transfers.size()) + " [" + what + "]";
    info.timeout = options_.settings.timeout;
    Request request;
    request.resources_ = std::make_unique<Request::Resources>();
    request.resources_->pool = pool_;
    request.run_ = transport_->start(std::move(program), std::move(buffers), info);
    // Numbered only once started: a batch refused before it ran leaves no gap.
    for (const auto& [key, n] : earlier)
      (key.first ? sends_ : recvs_)[static_cast<std::size_t>(key.second)] += n;
    return request;
  }

  std::unique_ptr<Transport> transport_;
  CommunicatorOptions options_;
  std::optional<Algorithm> forced_;
  JobPlacement placement_;
  std::shared_ptr<const Fabric> fabric_;
  std::string fabric_name_;
  CostModel model_;
  std::map<Key, Cached> cache_;
  std::shared_ptr<ScratchPool> pool_;
  std::shared_ptr<std::atomic<int>> in_flight_;
  std::uint64_t sequence_ = 0;
  std::vector<std::uint64_t> sends_;
  std::vector<std::uint64_t> recvs_;
};

RAILCC_NAMESPACE_END
