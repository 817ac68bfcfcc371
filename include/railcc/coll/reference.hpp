// railcc/coll/reference.hpp: a straightforward reference for what a collective's outputs
// must hold, to check an algorithm's data (the simulated backend's data mode, tests,
// railcc-sim --data). Integers must match bit for bit (wrapping arithmetic is associative
// and commutative); floats must be within (p + 1) unit roundoffs of the sum of magnitudes
// of a float64 reference, the rounding a reduction over p ranks in any order can add;
// min and max exactly.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <random>
#include <span>
#include <vector>

#include "railcc/coll/collective_kind.hpp"
#include "railcc/coll/data_type.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/coll/sim_backend.hpp"
#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

/// An element's value.
inline double element_as_double(DataType t, const std::byte* p) {
  switch (t) {
    case DataType::uint8: return static_cast<double>(std::to_integer<std::uint8_t>(*p));
    case DataType::int32: {
      std::int32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case DataType::int64: {
      std::int64_t v;
      std::memcpy(&v, p, 8);
      return static_cast<double>(v);
    }
    case DataType::float16: {
      std::uint16_t v;
      std::memcpy(&v, p, 2);
      return Half{v}.to_float();
    }
    case DataType::bfloat16: {
      std::uint16_t v;
      std::memcpy(&v, p, 2);
      return BFloat16{v}.to_float();
    }
    case DataType::float32: {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case DataType::float64: {
      double v;
      std::memcpy(&v, p, 8);
      return v;
    }
  }
  return 0;
}

/// A random element: uniform in [-1, 1) for floats ([0.5, 1.5) for prod, so products stay
/// finite), any bit pattern for integers.
inline void random_element(DataType t, ReduceOp op, std::byte* p, std::mt19937_64& rng) {
  const double x = op == ReduceOp::prod ? std::uniform_real_distribution<double>(0.5, 1.5)(rng)
                                        : std::uniform_real_distribution<double>(-1.0, 1.0)(rng);
  const std::uint64_t bits = rng();
  switch (t) {
    case DataType::uint8: *p = static_cast<std::byte>(bits); break;
    case DataType::int32: {
      const auto v = static_cast<std::int32_t>(bits);
      std::memcpy(p, &v, 4);
      break;
    }
    case DataType::int64: {
      const auto v = static_cast<std::int64_t>(bits);
      std::memcpy(p, &v, 8);
      break;
    }
    case DataType::float16: {
      const auto v = Half::from_float(static_cast<float>(x)).bits;
      std::memcpy(p, &v, 2);
      break;
    }
    case DataType::bfloat16: {
      const auto v = BFloat16::from_float(static_cast<float>(x)).bits;
      std::memcpy(p, &v, 2);
      break;
    }
    case DataType::float32: {
      const auto v = static_cast<float>(x);
      std::memcpy(p, &v, 4);
      break;
    }
    case DataType::float64: std::memcpy(p, &x, 8); break;
  }
}

/// Unit roundoff of a floating type (0 for integers).
inline double epsilon_of(DataType t) {
  switch (t) {
    case DataType::float16: return 9.77e-4;
    case DataType::bfloat16: return 7.82e-3;
    case DataType::float32: return 1.2e-7;
    case DataType::float64: return 2.3e-16;
    default: return 0;
  }
}

/// The reduction over ranks of element `i` of each input, compared with `got`.
inline bool reduced_matches(DataType t, ReduceOp op, const std::vector<const std::byte*>& inputs,
                            const std::byte* got) {
  const std::size_t e = size_of(t);
  const int p = static_cast<int>(inputs.size());
  if (!is_floating(t)) {
    std::vector<std::byte> acc(inputs[0], inputs[0] + e);
    for (int r = 1; r < p; ++r)
      reduce_into(t, op, acc.data(), inputs[static_cast<std::size_t>(r)], 1);
    finish_reduction(t, op, acc.data(), 1, p);
    return std::memcmp(acc.data(), got, e) == 0;
  }
  double ref = element_as_double(t, inputs[0]);
  double mag = std::abs(ref);
  for (int r = 1; r < p; ++r) {
    const double x = element_as_double(t, inputs[static_cast<std::size_t>(r)]);
    mag = op == ReduceOp::prod ? mag * std::abs(x) : mag + std::abs(x);
    switch (op) {
      case ReduceOp::sum:
      case ReduceOp::avg: ref += x; break;
      case ReduceOp::prod: ref *= x; break;
      case ReduceOp::min: ref = std::min(ref, x); break;
      case ReduceOp::max: ref = std::max(ref, x); break;
    }
  }
  if (op == ReduceOp::avg) {
    ref /= p;
    mag /= p;
  }
  const double tol =
      (op == ReduceOp::min || op == ReduceOp::max) ? 0.0 : (p + 1) * epsilon_of(t) * mag;
  return std::abs(element_as_double(t, got) - ref) <= tol;
}

/// One collective to run and check in data mode.
struct VerifiedCall {
  Collective collective = Collective::all_reduce;
  Algorithm algorithm = Algorithm::ring;
  Algorithm inter_host = Algorithm::rabenseifner;
  std::size_t count = 0;  ///< as collectives.hpp counts
  bool in_place = false;
  int channels = 1;
  int root = 0;
  int pipeline_chunks = 8;
  int phase_chunks = 0;
};

struct VerifiedResult {
  std::size_t wrong = 0;  ///< output elements (blocks, for copies) that differ from the reference
  SimResult sim;
};

/// Allocates the buffers on a data-mode backend, fills every rank's input with random
/// elements from `seed` and poisons the outputs (so an unwritten element fails), runs the
/// collective and counts what differs from the reference.
inline VerifiedResult run_verified(SimBackend& b, const VerifiedCall& c, std::uint64_t seed) {
  if (b.mode() != SimMode::data) throw InputError("run_verified: needs a data-mode backend");
  const DataType type = b.reduction().type;
  const ReduceOp op = b.reduction().op;
  const std::size_t e = size_of(type);
  const auto P = static_cast<std::size_t>(b.ranks());
  const auto [in_elems, out_elems] = buffer_elements(c.collective, c.count, P);
  const CollectiveBuffers buffers = allocate_buffers(b, c.collective, c.count, e, c.in_place);
  const bool in_place = buffers.in_place;
  const BufferId in = buffers.input;
  const BufferId out = buffers.output;
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::byte>> inputs(P);
  for (std::size_t r = 0; r < P; ++r) {
    auto buf = b.buffer(static_cast<int>(r), in);
    std::fill(buf.begin(), buf.end(), std::byte{0xa5});  // poison
    // In-place all-gather: the rank's input sits at its chunk of the output.
    const std::size_t at =
        (in_place && c.collective == Collective::all_gather) ? r * c.count * e : 0;
    for (std::size_t i = 0; i < in_elems; ++i)
      random_element(type, op, buf.data() + at + i * e, rng);
    inputs[r].assign(buf.begin() + static_cast<std::ptrdiff_t>(at),
                     buf.begin() + static_cast<std::ptrdiff_t>(at + in_elems * e));
    if (!in_place) {
      auto o = b.buffer(static_cast<int>(r), out);
      std::fill(o.begin(), o.end(), std::byte{0x5a});
    }
  }
  CollectiveCall call{c.count, in, out, c.channels, c.root, c.pipeline_chunks, c.phase_chunks};
  post_collective(b, c.collective, call, c.algorithm, c.inter_host);
  VerifiedResult result;
  result.sim = b.run();
  auto ptrs = [&](std::size_t offset_elems) {
    std::vector<const std::byte*> v;
    for (std::size_t r = 0; r < P; ++r) v.push_back(inputs[r].data() + offset_elems * e);
    return v;
  };
  std::size_t wrong = 0;
  const auto ring = placement_ring(b);
  for (std::size_t r = 0; r < P; ++r) {
    const auto got = b.buffer(static_cast<int>(r), out);
    switch (c.collective) {
      case Collective::all_reduce:
        for (std::size_t i = 0; i < c.count; ++i)
          wrong += reduced_matches(type, op, ptrs(i), got.data() + i * e) ? 0 : 1;
        break;
      case Collective::reduce_scatter: {
        const std::size_t at = in_place ? r * c.count : 0;
        for (std::size_t i = 0; i < c.count; ++i) {
          wrong +=
              reduced_matches(type, op, ptrs(r * c.count + i), got.data() + (at + i) * e) ? 0 : 1;
        }
        break;
      }
      case Collective::all_gather:
        for (std::size_t k = 0; k < P; ++k) {
          wrong +=
              std::memcmp(got.data() + k * c.count * e, inputs[k].data(), c.count * e) == 0 ? 0 : 1;
        }
        break;
      case Collective::broadcast:
        wrong += std::memcmp(got.data(), inputs[static_cast<std::size_t>(c.root)].data(),
                             c.count * e) == 0
                     ? 0
                     : 1;
        break;
      case Collective::reduce:
        if (r != static_cast<std::size_t>(c.root)) break;
        for (std::size_t i = 0; i < c.count; ++i)
          wrong += reduced_matches(type, op, ptrs(i), got.data() + i * e) ? 0 : 1;
        break;
      case Collective::all_to_all:
        for (std::size_t k = 0; k < P; ++k) {
          wrong += std::memcmp(got.data() + k * c.count * e, inputs[k].data() + r * c.count * e,
                               c.count * e) == 0
                       ? 0
                       : 1;
        }
        break;
      case Collective::send_recv: {
        const std::size_t j = static_cast<std::size_t>(
            std::find(ring.begin(), ring.end(), static_cast<int>(r)) - ring.begin());
        const auto from = static_cast<std::size_t>(ring[(j + P - 1) % P]);
        wrong += std::memcmp(got.data(), inputs[from].data(), c.count * e) == 0 ? 0 : 1;
        break;
      }
    }
  }
  result.wrong = wrong;
  return result;
}

RAILCC_NAMESPACE_END
