// The communicator tests' cases: one collective call, laid out as NCCL lays out in-place
// and out-of-place calls, and random exchanges of sends and receives, alone and in
// batches; shared by the host backend's tests over MPI and over TCP and the wave
// transport's.
#pragma once

#include <cstddef>
#include <cstring>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "railcc/coll/reference.hpp"
#include "railcc/comm/communicator.hpp"

namespace railcc_test {

using Bytes = std::vector<std::byte>;

struct Case {
  railcc::Collective c;
  railcc::Algorithm algo;
  railcc::DataType type;
  railcc::ReduceOp op;
  std::size_t count;
  bool in_place;
  int root;
};

inline std::string describe(const Case& k) {
  std::ostringstream s;
  s << to_string(k.c) << " " << to_string(k.algo) << " " << to_string(k.type) << " "
    << to_string(k.op) << " count " << k.count << (k.in_place ? " in place" : "") << " root "
    << k.root;
  return s.str();
}

/// Runs `k` on `comm` with this rank's input `mine`; returns this rank's output
/// (`out_bytes`; 0x5a where the call writes nothing). `input_kept`: false if an
/// out-of-place call wrote its input.
inline Bytes call_case(railcc::Communicator& comm, const Case& k, const Bytes& mine,
                       std::size_t out_bytes, bool& input_kept) {
  using namespace railcc;
  const int me = comm.rank();
  const std::size_t e = size_of(k.type);
  const std::size_t in_bytes = mine.size();
  Bytes out(out_bytes, std::byte{0x5a});
  Bytes in_copy = mine;
  Bytes big;
  CallOptions o;
  o.algorithm = k.algo;
  const std::size_t at = static_cast<std::size_t>(me) * k.count * e;
  switch (k.c) {
    case Collective::all_reduce:
      if (k.in_place) {
        out = mine;
        comm.all_reduce(out.data(), out.data(), k.count, k.type, k.op, o);
      } else {
        comm.all_reduce(in_copy.data(), out.data(), k.count, k.type, k.op, o);
      }
      break;
    case Collective::reduce_scatter:
      if (k.in_place) {
        big = mine;
        comm.reduce_scatter(big.data(), big.data() + at, k.count, k.type, k.op, o);
        if (out_bytes > 0) std::memcpy(out.data(), big.data() + at, out_bytes);
      } else {
        comm.reduce_scatter(in_copy.data(), out.data(), k.count, k.type, k.op, o);
      }
      break;
    case Collective::all_gather:
      if (k.in_place) {
        // (memcpy of nothing still needs valid pointers: a zero count has none.)
        if (in_bytes > 0) std::memcpy(out.data() + at, mine.data(), in_bytes);
        comm.all_gather(out.data() + at, out.data(), k.count, k.type, o);
      } else {
        comm.all_gather(in_copy.data(), out.data(), k.count, k.type, o);
      }
      break;
    case Collective::broadcast:
      if (k.in_place) {
        if (me == k.root) out = mine;
        comm.broadcast(out.data(), out.data(), k.count, k.type, k.root, o);
      } else {
        comm.broadcast(me == k.root ? in_copy.data() : nullptr, out.data(), k.count, k.type, k.root,
                       o);
      }
      break;
    case Collective::reduce:
      if (k.in_place) {
        out = mine;
        comm.reduce(out.data(), out.data(), k.count, k.type, k.op, k.root, o);
      } else {
        comm.reduce(in_copy.data(), me == k.root ? out.data() : nullptr, k.count, k.type, k.op,
                    k.root, o);
      }
      break;
    case Collective::all_to_all:
      comm.all_to_all(in_copy.data(), out.data(), k.count, k.type, o);
      break;
    case Collective::send_recv: break;
  }
  input_kept = k.in_place || in_copy == mine;
  return out;
}

/// Runs `k` on `comm` with every rank's input drawn from `seed` (each rank draws them
/// all); returns the elements of this rank's output that differ from the exact result
/// (moved data bit for bit, reductions within coll/reference.hpp's tolerance), plus one
/// if an out-of-place call wrote its input (0: pass).
inline std::size_t exact_result_errors(railcc::Communicator& comm, const Case& k,
                                       std::uint64_t seed) {
  using namespace railcc;
  const int me = comm.rank();
  const auto P = static_cast<std::size_t>(comm.size());
  const std::size_t e = size_of(k.type);
  const auto [in_elems, out_elems] = buffer_elements(k.c, k.count, P);
  std::vector<Bytes> inputs(P, Bytes(in_elems * e));
  for (std::size_t r = 0; r < P; ++r) {
    std::mt19937_64 rng(seed * 1000 + r);
    for (std::size_t i = 0; i < in_elems; ++i)
      random_element(k.type, k.op, inputs[r].data() + i * e, rng, P);
  }
  const auto self = static_cast<std::size_t>(me);
  bool input_kept = true;
  const Bytes out = call_case(comm, k, inputs[self], out_elems * e, input_kept);
  std::size_t bad = input_kept ? 0 : 1;  // the input is read, never written
  const std::size_t block = k.count * e;
  if (k.c == Collective::all_gather || k.c == Collective::all_to_all ||
      k.c == Collective::broadcast) {
    Bytes want(out_elems * e);
    // (A zero count has no buffers to copy between: memcpy needs valid pointers.)
    for (std::size_t r = 0; r < P && block != 0; ++r) {
      if (k.c == Collective::all_gather)
        std::memcpy(want.data() + r * block, inputs[r].data(), block);
      if (k.c == Collective::all_to_all)
        std::memcpy(want.data() + r * block, inputs[r].data() + self * block, block);
    }
    if (k.c == Collective::broadcast) want = inputs[static_cast<std::size_t>(k.root)];
    return bad + (out == want ? 0 : 1);
  }
  if (k.c == Collective::reduce && me != k.root) return bad;  // nothing to check
  std::vector<const std::byte*> each(P);
  for (std::size_t i = 0; i < out_elems; ++i) {
    const std::size_t src = k.c == Collective::reduce_scatter ? self * k.count + i : i;
    for (std::size_t r = 0; r < P; ++r) each[r] = inputs[r].data() + src * e;
    if (!reduced_matches(k.type, k.op, each, out.data() + i * e)) ++bad;
  }
  return bad;
}

/// A random exchange of `messages` point-to-point messages between the communicator's
/// ranks, every rank drawing the same list from `seed`: each message's sender, receiver,
/// count and type. The list is cut into stretches at the same places on every rank; in
/// each stretch a rank makes its sends and receives either all in one batch
/// (batch_isend_irecv, in an order of its own that keeps each pair's messages in order)
/// or one call at a time in the list's order (isend, irecv), then waits for all of them.
/// So a message may be sent in a batch and received alone, or the reverse, and match
/// only by its number between the pair. Every call order here completes on NCCL too (a
/// rank alone follows the list; a batch is posted whole). Returns the elements this rank
/// received wrong.
inline std::size_t batch_exchange_errors(railcc::Communicator& comm, std::uint64_t seed,
                                         int messages) {
  using namespace railcc;
  const int p = comm.size();
  const int me = comm.rank();
  if (p < 2) return 0;
  struct Message {
    int from, to;
    std::size_t count;
    DataType type;
  };
  std::mt19937_64 common(seed);  // the same draws on every rank
  std::vector<Message> list;
  const DataType types[] = {DataType::int32, DataType::float64, DataType::bfloat16,
                            DataType::uint8};
  for (int i = 0; i < messages; ++i) {
    const int from = static_cast<int>(common() % static_cast<unsigned>(p));
    int to = static_cast<int>(common() % static_cast<unsigned>(p - 1));
    if (to >= from) ++to;
    const std::size_t count = common() % 5 == 0 ? 0 : common() % 3000;
    list.push_back({from, to, count, types[common() % 4]});
  }
  std::vector<std::size_t> cuts{0};
  while (cuts.back() < list.size())
    cuts.push_back(std::min(list.size(), cuts.back() + 1 + common() % 8));
  // Message i's bytes: byte j is (i * 131 + j) mod 251, whatever its type.
  auto byte_of = [](std::size_t i, std::size_t j) {
    return static_cast<std::byte>((i * 131 + j) % 251);
  };
  std::mt19937_64 own(seed * 7919 + static_cast<std::uint64_t>(me));  // this rank's choices
  std::vector<Bytes> data(list.size());
  std::size_t wrong = 0;
  for (std::size_t c = 0; c + 1 < cuts.size(); ++c) {
    std::vector<std::size_t> mine;  // this rank's messages of the stretch, in list order
    for (std::size_t i = cuts[c]; i < cuts[c + 1]; ++i) {
      const Message& m = list[i];
      if (m.from != me && m.to != me) continue;
      data[i].resize(m.count * size_of(m.type));
      for (std::size_t j = 0; j < data[i].size(); ++j)
        data[i][j] = m.from == me ? byte_of(i, j) : std::byte{0x5a};
      mine.push_back(i);
    }
    std::vector<Request> requests;
    if (own() % 2 == 0) {
      // One batch, in an order of this rank's: a random order of its peers' streams of
      // messages, each stream's in list order.
      std::vector<std::uint64_t> key(static_cast<std::size_t>(2 * p));
      for (auto& k : key) k = own();
      auto stream_of = [&](std::size_t i) {
        const Message& m = list[i];
        return static_cast<std::size_t>(m.from == me ? m.to : p + m.from);
      };
      std::stable_sort(mine.begin(), mine.end(), [&](std::size_t a, std::size_t b) {
        return key[stream_of(a)] < key[stream_of(b)];
      });
      std::vector<PeerTransfer> batch;
      for (std::size_t i : mine) {
        const Message& m = list[i];
        batch.push_back(m.from == me ? PeerTransfer::send(data[i].data(), m.count, m.type, m.to)
                                     : PeerTransfer::recv(data[i].data(), m.count, m.type, m.from));
      }
      requests.push_back(comm.batch_isend_irecv(batch));
    } else {
      for (std::size_t i : mine) {
        const Message& m = list[i];
        requests.push_back(m.from == me ? comm.isend(data[i].data(), m.count, m.type, m.to)
                                        : comm.irecv(data[i].data(), m.count, m.type, m.from));
      }
    }
    for (Request& r : requests) r.wait();
    for (std::size_t i : mine) {
      if (list[i].to != me) continue;
      for (std::size_t j = 0; j < data[i].size(); ++j) wrong += data[i][j] == byte_of(i, j) ? 0 : 1;
    }
  }
  return wrong;
}

}  // namespace railcc_test
