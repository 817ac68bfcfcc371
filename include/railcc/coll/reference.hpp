// railcc/coll/reference.hpp: a straightforward reference for what a collective's outputs
// must hold, to check an algorithm's data on any backend with data (the simulated
// backend's data mode, the in-process backend; tests, railcc-sim --data). Integers must match bit
// for bit (wrapping arithmetic is associative and commutative); floats must be within (p + 1) unit
// roundoffs of the sum of magnitudes of a float64 reference, the rounding a reduction over p ranks
// in any order can add; min and max exactly.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <vector>

#include "railcc/coll/collective.hpp"
#include "railcc/coll/data_type.hpp"
#include "railcc/coll/order.hpp"
#include "railcc/coll/post.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

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

/// Smallest normal and largest finite magnitude of a floating type.
inline double min_normal_of(DataType t) {
  switch (t) {
    case DataType::float16: return 0x1p-14;
    case DataType::bfloat16:
    case DataType::float32: return 0x1p-126;
    default: return 0x1p-1022;
  }
}
inline double max_finite_of(DataType t) {
  switch (t) {
    case DataType::float16: return 65504.0;
    case DataType::bfloat16: return 0x1.fep127;
    case DataType::float32: return 0x1.fffffep127;
    default: return 0x1.fffffffffffffp1023;
  }
}

/// The range product inputs are drawn from for `ranks` ranks: within [0.5, 1.5), and
/// narrow enough that a product of any subset, in any order, stays between twice the
/// smallest normal and half the largest finite value. Then no partial product of any
/// algorithm underflows or overflows, and the relative error bound of reduced_matches
/// holds for every order.
inline std::pair<double, double> product_input_range(DataType t, std::size_t ranks) {
  if (!is_floating(t)) return {0.5, 1.5};
  const double p = static_cast<double>(std::max<std::size_t>(ranks, 1));
  const double lo = std::max(0.5, std::exp2(std::log2(2 * min_normal_of(t)) / p));
  const double hi = std::min(1.5, std::exp2(std::log2(max_finite_of(t) / 2) / p));
  return {lo, hi};
}

/// Writes one element of type `t`: `x` rounded to the type for floats, the low bits of
/// `bits` for integers.
inline void store_element(DataType t, std::byte* p, double x, std::uint64_t bits) {
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

/// A random element: uniform in [-1, 1) for floats (in product_input_range for prod),
/// any bit pattern for integers.
inline void random_element(DataType t, ReduceOp op, std::byte* p, std::mt19937_64& rng,
                           std::size_t ranks = 2) {
  double x = 0;
  if (op == ReduceOp::prod) {
    const auto [lo, hi] = product_input_range(t, ranks);
    x = std::uniform_real_distribution<double>(lo, hi)(rng);
  } else {
    x = std::uniform_real_distribution<double>(-1.0, 1.0)(rng);
  }
  store_element(t, p, x, rng());
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

/// The largest absolute error one rounding to a subnormal result can add: half the
/// smallest subnormal (IEEE 754's gradual underflow). 0 for integers.
inline double underflow_error_of(DataType t) {
  switch (t) {
    case DataType::float16: return 0x1p-25;
    case DataType::bfloat16: return 0x1p-134;
    case DataType::float32: return 0x1p-150;
    case DataType::float64: return 0x1p-1074;  // half of it is below what a double holds
    default: return 0;
  }
}

/// What one output element of a reduction must hold: bit for bit for integers, within
/// `tolerance` of `value` for floats.
struct ExpectedElement {
  std::array<std::byte, 8> bits{};  ///< integers
  double value = 0;                 ///< floats
  double tolerance = 0;
};

/// The reduction over ranks of one element of each input. Float tolerance: (p + 1) unit
/// roundoffs of the sum of magnitudes (the rounding a reduction over p ranks in any order
/// can add), plus one subnormal rounding for the one operation that may end below the
/// normal range (avg's division; sums are exact there, and products get inputs that keep
/// every partial product normal: product_input_range).
inline ExpectedElement expected_reduction(DataType t, ReduceOp op,
                                          std::span<const std::byte* const> inputs) {
  const std::size_t e = size_of(t);
  const int p = static_cast<int>(inputs.size());
  ExpectedElement x;
  if (!is_floating(t)) {
    std::memcpy(x.bits.data(), inputs[0], e);
    for (int r = 1; r < p; ++r)
      reduce_into(t, op, x.bits.data(), inputs[static_cast<std::size_t>(r)], 1);
    finish_reduction(t, op, x.bits.data(), 1, p);
    return x;
  }
  double ref = element_as_double(t, inputs[0]);
  double mag = std::abs(ref);
  for (int r = 1; r < p; ++r) {
    const double v = element_as_double(t, inputs[static_cast<std::size_t>(r)]);
    mag = op == ReduceOp::prod ? mag * std::abs(v) : mag + std::abs(v);
    switch (op) {
      case ReduceOp::sum:
      case ReduceOp::avg: ref += v; break;
      case ReduceOp::prod: ref *= v; break;
      case ReduceOp::min: ref = std::min(ref, v); break;
      case ReduceOp::max: ref = std::max(ref, v); break;
    }
  }
  if (op == ReduceOp::avg) {
    ref /= p;
    mag /= p;
  }
  x.value = ref;
  x.tolerance = (op == ReduceOp::min || op == ReduceOp::max)
                    ? 0.0
                    : (p + 1) * epsilon_of(t) * mag + underflow_error_of(t);
  return x;
}

inline bool element_matches(DataType t, const ExpectedElement& x, const std::byte* got) {
  if (!is_floating(t)) return std::memcmp(x.bits.data(), got, size_of(t)) == 0;
  return std::abs(element_as_double(t, got) - x.value) <= x.tolerance;
}

/// The reduction over ranks of element `i` of each input, compared with `got`.
inline bool reduced_matches(DataType t, ReduceOp op, const std::vector<const std::byte*>& inputs,
                            const std::byte* got) {
  return element_matches(t, expected_reduction(t, op, inputs), got);
}

/// Bytes a data-mode run of one collective holds over all ranks: the buffers
/// allocate_buffers makes, and the copy of every rank's input run_verified keeps. Saturates
/// at SIZE_MAX (so "more than allowed") instead of wrapping.
inline std::size_t verified_call_bytes(Collective c, std::size_t count, std::size_t elem,
                                       std::size_t ranks, bool in_place) {
  constexpr std::size_t top = std::numeric_limits<std::size_t>::max();
  auto mul = [](std::size_t a, std::size_t b) { return b != 0 && a > top / b ? top : a * b; };
  auto add = [](std::size_t a, std::size_t b) { return a > top - b ? top : a + b; };
  std::size_t in = 0;
  std::size_t out = 0;
  switch (c) {
    case Collective::reduce_scatter: in = mul(count, ranks), out = count; break;
    case Collective::all_gather: in = count, out = mul(count, ranks); break;
    case Collective::all_to_all: in = out = mul(count, ranks); break;
    default: in = out = count;
  }
  const bool one_buffer = in_place && c != Collective::all_to_all && c != Collective::send_recv;
  const std::size_t per_rank =
      add(one_buffer ? std::max(in, out) : add(in, out), in);  // buffers, then the input copy
  return mul(mul(per_rank, elem), ranks);
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
  int chunks_in_flight = 0;
};

/// A verified call's buffers and every rank's input as it was written.
struct VerifiedInputs {
  CollectiveBuffers buffers;
  std::vector<std::vector<std::byte>> inputs;  ///< per rank
};

/// Allocates the call's buffers on a backend with data (the simulated backend's data mode,
/// the in-process backend), fills every rank's input with random elements from `seed` and
/// poisons the outputs, so an unwritten element fails. The same seed gives the same
/// inputs on any backend.
template <CollectiveBackend B>
VerifiedInputs fill_verified(B& b, const VerifiedCall& c, std::uint64_t seed) {
  const DataType type = b.reduction().type;
  const ReduceOp op = b.reduction().op;
  const std::size_t e = size_of(type);
  const auto P = static_cast<std::size_t>(b.ranks());
  const std::size_t need = verified_call_bytes(c.collective, c.count, e, P, c.in_place);
  if (need > b.max_data_bytes()) {
    // Checked before anything is allocated.
    throw InputError("data mode would need " + std::to_string(need) +
                     " bytes of buffers, over the " + std::to_string(b.max_data_bytes()) +
                     " allowed; use timing mode for this size");
  }
  const std::size_t in_elems = buffer_elements(c.collective, c.count, P).first;
  VerifiedInputs v;
  v.buffers = allocate_buffers(b, c.collective, c.count, e, c.in_place);
  std::mt19937_64 rng(seed);
  v.inputs.resize(P);
  for (std::size_t r = 0; r < P; ++r) {
    auto buf = b.buffer(static_cast<int>(r), v.buffers.input);
    std::fill(buf.begin(), buf.end(), std::byte{0xa5});  // poison
    // In-place all-gather: the rank's input sits at its chunk of the output.
    const std::size_t at =
        (v.buffers.in_place && c.collective == Collective::all_gather) ? r * c.count * e : 0;
    for (std::size_t i = 0; i < in_elems; ++i)
      random_element(type, op, buf.data() + at + i * e, rng, P);
    v.inputs[r].assign(buf.begin() + static_cast<std::ptrdiff_t>(at),
                       buf.begin() + static_cast<std::ptrdiff_t>(at + in_elems * e));
    if (!v.buffers.in_place) {
      auto o = b.buffer(static_cast<int>(r), v.buffers.output);
      std::fill(o.begin(), o.end(), std::byte{0x5a});
    }
  }
  return v;
}

/// The arguments a verified call posts with.
inline CollectiveCall verified_collective_call(const VerifiedCall& c, const CollectiveBuffers& b) {
  return CollectiveCall{c.count, b.input,           b.output,       c.channels,
                        c.root,  c.pipeline_chunks, c.phase_chunks, c.chunks_in_flight};
}

/// Output elements (blocks, for copies) that differ from the reference, after the call
/// ran on `b` with the inputs `v`.
template <CollectiveBackend B>
std::size_t count_wrong(B& b, const VerifiedCall& c, const VerifiedInputs& v) {
  const DataType type = b.reduction().type;
  const ReduceOp op = b.reduction().op;
  const std::size_t e = size_of(type);
  const auto P = static_cast<std::size_t>(b.ranks());
  const bool in_place = v.buffers.in_place;
  const auto& inputs = v.inputs;
  // The reduced value of every element is computed once, not once per rank that holds
  // it: checking costs ranks x elements, never ranks^2.
  std::vector<ExpectedElement> expected;
  const bool reduces = c.collective == Collective::all_reduce ||
                       c.collective == Collective::reduce_scatter ||
                       c.collective == Collective::reduce;
  if (reduces) {
    const std::size_t n = c.collective == Collective::reduce_scatter ? c.count * P : c.count;
    expected.reserve(n);
    std::vector<const std::byte*> column(P);
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t r = 0; r < P; ++r) column[r] = inputs[r].data() + i * e;
      expected.push_back(expected_reduction(type, op, column));
    }
  }
  std::size_t wrong = 0;
  const auto ring = placement_ring(b);
  std::vector<std::size_t> ring_position(P);
  for (std::size_t j = 0; j < P; ++j) ring_position[static_cast<std::size_t>(ring[j])] = j;
  for (std::size_t r = 0; r < P; ++r) {
    const auto got = b.buffer(static_cast<int>(r), v.buffers.output);
    switch (c.collective) {
      case Collective::all_reduce:
        for (std::size_t i = 0; i < c.count; ++i)
          wrong += element_matches(type, expected[i], got.data() + i * e) ? 0 : 1;
        break;
      case Collective::reduce_scatter: {
        const std::size_t at = in_place ? r * c.count : 0;
        for (std::size_t i = 0; i < c.count; ++i) {
          wrong +=
              element_matches(type, expected[r * c.count + i], got.data() + (at + i) * e) ? 0 : 1;
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
        if (c.count == 0) break;
        wrong += std::memcmp(got.data(), inputs[static_cast<std::size_t>(c.root)].data(),
                             c.count * e) == 0
                     ? 0
                     : 1;
        break;
      case Collective::reduce:
        if (r != static_cast<std::size_t>(c.root)) break;
        for (std::size_t i = 0; i < c.count; ++i)
          wrong += element_matches(type, expected[i], got.data() + i * e) ? 0 : 1;
        break;
      case Collective::all_to_all:
        if (c.count == 0) break;  // nothing to compare (and memcmp takes no null buffer)
        for (std::size_t k = 0; k < P; ++k) {
          wrong += std::memcmp(got.data() + k * c.count * e, inputs[k].data() + r * c.count * e,
                               c.count * e) == 0
                       ? 0
                       : 1;
        }
        break;
      case Collective::send_recv: {
        const std::size_t j = ring_position[r];
        const auto from = static_cast<std::size_t>(ring[(j + P - 1) % P]);
        if (c.count > 0)
          wrong += std::memcmp(got.data(), inputs[from].data(), c.count * e) == 0 ? 0 : 1;
        break;
      }
    }
  }
  return wrong;
}

RAILCC_NAMESPACE_END
