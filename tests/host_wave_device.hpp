// A WaveDevice on host memory for ranks that are threads of one process, with NCCL's
// rules for groups: a rank's group completes only when every send and receive in it has
// met its match on the peer (the k-th send from a to b with the k-th receive on b from
// a), so programs queued in an order NCCL would hang on hang here too; after a timeout
// the group fails with a PeerError naming the ranks it waited for, as the NCCL device's
// wait for a group does. Work runs as it is queued (the "stream" is the
// calling thread), so marks are reached at once. With lanes, each lane's groups match on
// a group of threads of its own, as each lane of the NCCL device has a communicator of
// its own: ranks that queued lanes in different orders would hang here as there; a wait
// for a mark never made is a LogicError. (Whether the marks order the lanes' memory
// accesses enough is tested in test_waves.cpp, where the lanes' clocks are kept.) The
// library's own collectives are a plain reduction in rank order, standing in for NCCL's.
// A rank can be told to stop answering (stall()), to see what its peers do about a dead
// peer.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "railcc/bootstrap/bootstrap.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/comm/wave_transport.hpp"
#include "railcc/error.hpp"

namespace railcc_test {

using namespace std::chrono_literals;

/// What the ranks of one group of threads share: the rendezvous of bootstrap calls and
/// of message groups.
class ThreadGroup {
 public:
  explicit ThreadGroup(int size, std::chrono::milliseconds timeout = 20s)
      : size_(size),
        timeout_(timeout),
        sends_(static_cast<std::size_t>(size * size)),
        recvs_(static_cast<std::size_t>(size * size)) {}
  [[nodiscard]] int size() const { return size_; }

  /// Every rank's blob for this rank's next exchange (all ranks call in the same order).
  std::vector<std::string> exchange(int rank, std::string blob) {
    std::unique_lock lock(mutex_);
    const std::uint64_t round = next_round_[rank]++;
    Round& r = rounds_[round];
    if (r.blobs.empty()) r.blobs.resize(static_cast<std::size_t>(size_));
    r.blobs[static_cast<std::size_t>(rank)] = std::move(blob);
    ++r.arrived;
    cv_.notify_all();
    if (!cv_.wait_for(lock, timeout_, [&] { return rounds_[round].arrived == size_; }))
      throw railcc::PeerError("thread bootstrap: rank " + std::to_string(rank) +
                              " waited in vain for the others");
    Round& done = rounds_[round];
    std::vector<std::string> out;
    for (const auto& b : done.blobs) out.push_back(*b);
    if (++done.left == size_) rounds_.erase(round);
    return out;
  }

  struct Half {
    bool send = false;
    const std::byte* src = nullptr;
    std::byte* dst = nullptr;
    std::size_t bytes = 0;
    railcc::OpId op = 0;
    int from = 0;
    int to = 0;
    bool done = false;
    std::string error;
  };

  /// Rank `rank`'s group: returns once every half has met its match and been copied.
  void run_group(int rank, std::vector<Half>& halves) {
    std::unique_lock lock(mutex_);
    for (Half& h : halves) {
      auto& queue = h.send ? sends_ : recvs_;
      queue[pair(h.from, h.to)].push_back(&h);
      match(h.from, h.to);
    }
    cv_.notify_all();
    auto all_done = [&] {
      return std::all_of(halves.begin(), halves.end(), [](const Half& h) { return h.done; });
    };
    if (!cv_.wait_for(lock, timeout_, all_done)) {
      // Take back what is still queued, then say what it waited for.
      std::vector<int> waiting;
      for (Half& h : halves) {
        if (h.done) continue;
        for (auto* q : {&sends_, &recvs_}) {
          auto& d = (*q)[pair(h.from, h.to)];
          d.erase(std::remove(d.begin(), d.end(), &h), d.end());
        }
        waiting.push_back(h.from == rank ? h.to : h.from);
      }
      std::sort(waiting.begin(), waiting.end());
      waiting.erase(std::unique(waiting.begin(), waiting.end()), waiting.end());
      std::string who;
      for (int w : waiting) who += " " + std::to_string(w);
      throw railcc::PeerError("rank " + std::to_string(rank) + "'s group waited " +
                              std::to_string(timeout_.count()) + " ms for ranks" + who);
    }
    for (const Half& h : halves) {
      if (!h.error.empty()) throw railcc::LogicError(h.error);
    }
  }

 private:
  struct Round {
    std::vector<std::optional<std::string>> blobs;
    int arrived = 0;
    int left = 0;
  };
  std::size_t pair(int from, int to) const { return static_cast<std::size_t>(from * size_ + to); }
  void match(int from, int to) {
    auto& s = sends_[pair(from, to)];
    auto& r = recvs_[pair(from, to)];
    while (!s.empty() && !r.empty()) {
      Half* a = s.front();
      Half* b = r.front();
      s.pop_front();
      r.pop_front();
      if (a->op != b->op || a->bytes != b->bytes) {
        a->error = b->error = "mismatch: rank " + std::to_string(from) + " sends operation " +
                              std::to_string(a->op) + " of " + std::to_string(a->bytes) +
                              " bytes, rank " + std::to_string(to) + " receives operation " +
                              std::to_string(b->op) + " of " + std::to_string(b->bytes);
      } else if (a->bytes != 0) {
        std::memcpy(b->dst, a->src, a->bytes);
      }
      a->done = b->done = true;
    }
  }

  int size_;
  std::chrono::milliseconds timeout_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<int, std::uint64_t> next_round_;
  std::map<std::uint64_t, Round> rounds_;
  std::vector<std::deque<Half*>> sends_;
  std::vector<std::deque<Half*>> recvs_;
};

/// The registry of groups made by splits, shared by every rank of the original group.
struct ThreadGroups {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<ThreadGroup>> made;
  std::chrono::milliseconds timeout = 20s;  ///< how long a group waits for its matches
  std::shared_ptr<ThreadGroup> get(const std::string& name, int size) {
    const std::lock_guard lock(mutex);
    auto& g = made[name];
    if (!g) g = std::make_shared<ThreadGroup>(size, timeout);
    return g;
  }
};

class ThreadBootstrap final : public railcc::Bootstrap {
 public:
  ThreadBootstrap(std::shared_ptr<ThreadGroup> group, int rank)
      : group_(std::move(group)), rank_(rank) {}
  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return group_->size(); }
  std::vector<std::string> all_gather(std::string_view mine) override {
    return group_->exchange(rank_, std::string(mine));
  }
  std::string broadcast(std::string_view blob, int root) override {
    return group_->exchange(rank_, std::string(blob))[static_cast<std::size_t>(root)];
  }
  void barrier() override { (void)group_->exchange(rank_, ""); }

 private:
  std::shared_ptr<ThreadGroup> group_;
  int rank_;
};

/// What the test can see of a device from outside.
struct DeviceLog {
  std::mutex mutex;
  int natives = 0;
  int aborts = 0;
  std::size_t lane_waits = 0;   ///< waits of one lane for another's mark
  std::size_t lane_groups = 0;  ///< groups queued on lanes other than 0
  std::size_t allocated = 0;
  /// Where set, the "device memory": check_memory takes a buffer only inside one of
  /// these (start, bytes) and as large as the call needs, as the driver's answer would.
  std::vector<std::pair<const std::byte*, std::size_t>> device_memory;
};

class HostWaveDevice final : public railcc::WaveDevice {
 public:
  HostWaveDevice(std::shared_ptr<ThreadGroups> registry, std::shared_ptr<ThreadGroup> group,
                 int rank, std::shared_ptr<DeviceLog> log, std::string prefix = "world",
                 int lanes = 1)
      : registry_(std::move(registry)),
        group_(std::move(group)),
        rank_(rank),
        bootstrap_(group_, rank),
        log_(std::move(log)),
        prefix_(std::move(prefix)) {
    lane_groups_.push_back(group_);
    for (int l = 1; l < lanes; ++l)
      lane_groups_.push_back(registry_->get(prefix_ + "/lane" + std::to_string(l), size()));
  }

  /// From now on this rank answers nothing: its marks are never reached.
  void stall() { stalled_ = true; }

  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return group_->size(); }
  [[nodiscard]] std::string name() const override { return "host waves (test)"; }
  railcc::Bootstrap& bootstrap() override { return bootstrap_; }
  void use_stream(void* stream) override {
    stream_ = stream;
    lane_ = 0;
  }
  [[nodiscard]] int lanes() const override { return static_cast<int>(lane_groups_.size()); }
  void use_lane(int lane) override {
    if (lane < 0 || lane >= lanes())
      throw railcc::LogicError("host device: lane " + std::to_string(lane) + " of " +
                               std::to_string(lanes()));
    lane_ = static_cast<std::size_t>(lane);
  }
  void signal(std::size_t mark) override { marks_.insert(mark); }
  void wait_for(std::size_t mark) override {
    if (marks_.count(mark) == 0)
      throw railcc::LogicError("host device: a wait for mark " + std::to_string(mark) +
                               ", which no lane made");
    const std::lock_guard lock(log_->mutex);
    ++log_->lane_waits;
  }

  void copy(std::byte* dst, const std::byte* src, std::size_t bytes) override {
    check_apart(dst, src, bytes);
    std::memcpy(dst, src, bytes);
  }
  void reduce(railcc::ReductionSpec red, std::byte* dst, const std::byte* src,
              std::size_t count) override {
    if (dst != src) check_apart(dst, src, count * railcc::size_of(red.type));
    railcc::reduce_into(red.type, red.op, dst, src, count);
  }
  void finish(railcc::ReductionSpec red, std::byte* buf, std::size_t count, int ranks) override {
    railcc::finish_reduction(red.type, red.op, buf, count, ranks);
  }
  void group_start() override {
    if (in_group_) throw railcc::LogicError("host device: a group inside a group");
    in_group_ = true;
    halves_.clear();
  }
  void send(const std::byte* src, std::size_t bytes, int peer, railcc::OpId op) override {
    require_group();
    halves_.push_back({true, src, nullptr, bytes, op, rank_, peer, false, ""});
  }
  void recv(std::byte* dst, std::size_t bytes, int peer, railcc::OpId op) override {
    require_group();
    halves_.push_back({false, nullptr, dst, bytes, op, peer, rank_, false, ""});
  }
  void group_end() override {
    require_group();
    in_group_ = false;
    if (stalled_) return;
    if (lane_ != 0) {
      const std::lock_guard lock(log_->mutex);
      ++log_->lane_groups;
    }
    lane_groups_[lane_]->run_group(rank_, halves_);
  }

  void check_memory(const void* p, std::size_t bytes, const std::string& what,
                    const std::string& call) override {
    const std::lock_guard lock(log_->mutex);
    if (log_->device_memory.empty() || bytes == 0) return;
    const auto* b = static_cast<const std::byte*>(p);
    for (const auto& [start, size] : log_->device_memory) {
      if (b < start || b >= start + size) continue;
      const auto room = static_cast<std::size_t>(start + size - b);
      if (bytes > room)
        throw railcc::InputError(call + ": " + what + " has " + std::to_string(room) +
                                 " bytes from its address to the end of its allocation, and "
                                 "the call needs " +
                                 std::to_string(bytes));
      return;
    }
    throw railcc::InputError(call + ": " + what +
                             " is host memory; this transport takes device "
                             "memory (cudaMalloc, or managed memory)");
  }
  [[nodiscard]] std::string library() const override { return "HOSTLIB"; }
  [[nodiscard]] std::vector<railcc::Algorithm> native_algorithms(
      railcc::Collective c) const override {
    if (c == railcc::Collective::all_reduce) return {railcc::Algorithm::ring};
    return {};
  }
  /// An all-reduce as a library would give it: every rank's input reduced in rank order.
  void native(const railcc::NativeCall& call) override {
    if (call.collective != railcc::Collective::all_reduce)
      throw railcc::LogicError("host device: no native " +
                               std::string(railcc::to_string(call.collective)));
    const std::size_t bytes = call.count * railcc::size_of(call.type);
    const std::string mine(static_cast<const char*>(call.send), bytes);
    const auto all = group_->exchange(rank_, mine);
    std::string acc = all[0];
    for (std::size_t r = 1; r < all.size(); ++r)
      railcc::reduce_into(call.type, call.op, reinterpret_cast<std::byte*>(acc.data()),
                          reinterpret_cast<const std::byte*>(all[r].data()), call.count);
    railcc::finish_reduction(call.type, call.op, reinterpret_cast<std::byte*>(acc.data()),
                             call.count, size());
    std::memcpy(call.recv, acc.data(), bytes);
    const std::lock_guard lock(log_->mutex);
    ++log_->natives;
  }

  std::unique_ptr<railcc::DeviceBlock> allocate(std::size_t bytes) override {
    {
      const std::lock_guard lock(log_->mutex);
      log_->allocated += bytes;
    }
    return std::make_unique<Block>(bytes);
  }
  std::unique_ptr<railcc::StreamMark> mark() override { return std::make_unique<Mark>(!stalled_); }
  std::string async_error() override { return ""; }
  void abort() override {
    const std::lock_guard lock(log_->mutex);
    ++log_->aborts;
  }
  std::unique_ptr<railcc::WaveDevice> split(int color, int key) override {
    const auto all = bootstrap_.all_gather(std::to_string(color) + " " + std::to_string(key));
    const std::uint64_t number = splits_++;
    if (color < 0) return nullptr;
    std::vector<std::pair<int, int>> members;  // (key, rank)
    for (std::size_t r = 0; r < all.size(); ++r) {
      const auto space = all[r].find(' ');
      if (std::stoi(all[r].substr(0, space)) == color)
        members.emplace_back(std::stoi(all[r].substr(space + 1)), static_cast<int>(r));
    }
    std::sort(members.begin(), members.end());
    int me = 0;
    for (std::size_t i = 0; i < members.size(); ++i) {
      if (members[i].second == rank_) me = static_cast<int>(i);
    }
    const std::string name = prefix_ + "/" + std::to_string(number) + "/" + std::to_string(color);
    return std::make_unique<HostWaveDevice>(
        registry_, registry_->get(name, static_cast<int>(members.size())), me, log_, name, lanes());
  }

  /// The stream the last call was queued on.
  [[nodiscard]] void* stream() const { return stream_; }

 private:
  struct Block final : railcc::DeviceBlock {
    explicit Block(std::size_t n) : bytes(n) {}
    std::byte* data() const override { return const_cast<std::byte*>(bytes.data()); }
    std::vector<std::byte> bytes;
  };
  struct Mark final : railcc::StreamMark {
    explicit Mark(bool r) : at(r) {}
    bool reached() override { return at; }
    bool at;
  };
  void require_group() const {
    if (!in_group_) throw railcc::LogicError("host device: a send or receive outside a group");
  }
  /// A device copy or kernel may not read what it writes.
  static void check_apart(const std::byte* a, const std::byte* b, std::size_t bytes) {
    if (a < b + bytes && b < a + bytes)
      throw railcc::LogicError("host device: a copy or reduction over overlapping memory");
  }

  std::shared_ptr<ThreadGroups> registry_;
  std::shared_ptr<ThreadGroup> group_;
  int rank_;
  ThreadBootstrap bootstrap_;
  std::shared_ptr<DeviceLog> log_;
  std::string prefix_;
  bool in_group_ = false;
  bool stalled_ = false;
  void* stream_ = nullptr;
  std::uint64_t splits_ = 0;
  std::vector<std::shared_ptr<ThreadGroup>> lane_groups_;  // lane 0's is group_
  std::size_t lane_ = 0;
  std::set<std::size_t> marks_;
  std::vector<ThreadGroup::Half> halves_;
};

}  // namespace railcc_test
