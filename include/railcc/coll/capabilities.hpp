// railcc/coll/capabilities.hpp: what only some backends can do, each its own concept.
//
// Algorithms ask with `if constexpr`, so a backend that cannot do a thing does not
// declare it at all, instead of declaring it and throwing (the way CuTe detects a copy
// atom's optional traits):
//  - SwitchReduceBackend: the NVSwitch reduces and multicasts (NVLS). switch_reduce(group,
//    from, dst, to, deps) reduces `from` over the group, in group order, into dst's `to`;
//    multicast(src, from, group, to, deps) copies src's `from` into `to` on the whole
//    group. Only between ranks for which switch_reduces(rank) holds, on one switch.
//  - StepRepeatingBackend: the backend times steps by their shape (the simulator's steps
//    mode, for 100k+ ranks). An algorithm may post the first of a run of identical steps
//    and call repeat_step(first op, how many more) instead of posting the rest, and post
//    one unit of a pipeline (one chunk through every phase) and call
//    repeat_pipeline_unit(first op, how many more, units in flight between hosts), where
//    repeats_steps() says so at run time. posted() is the next operation's id.
//  - InputCopyBackend: copy_input(rank, to, from, deps) copies the call's input into the
//    buffer an out-of-place algorithm works in, as an operation of its own kind
//    (OpKind::input_copy) that GPU collectives fold into their first step. Elsewhere it
//    is a local copy.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "railcc/coll/backend.hpp"
#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

template <class B>
concept SwitchReduceBackend = CollectiveBackend<B> &&
    requires(B& b, const B& cb, int rank, Region r, std::span<const OpId> deps) {
  { cb.switch_reduces(rank) } -> std::same_as<bool>;
  { b.switch_reduce(std::span<const int>{}, r, rank, r, deps) } -> std::same_as<OpId>;
  { b.multicast(rank, r, std::span<const int>{}, r, deps) } -> std::same_as<OpId>;
};

template <class B>
concept StepRepeatingBackend = CollectiveBackend<B> && requires(B& b, const B& cb) {
  { cb.repeats_steps() } -> std::same_as<bool>;
  { b.repeat_step(OpId{}, std::uint32_t{}) } -> std::same_as<void>;
  { b.repeat_pipeline_unit(OpId{}, std::uint32_t{}, std::uint32_t{}) } -> std::same_as<void>;
  { cb.posted() } -> std::convertible_to<std::size_t>;
};

template <class B>
concept InputCopyBackend = CollectiveBackend<B> &&
    requires(B& b, int rank, Region r, std::span<const OpId> deps) {
  { b.copy_input(rank, r, r, deps) } -> std::same_as<OpId>;
};

/// Copies the call's input region `from` into `to` on `rank`: an input copy where the
/// backend tells one apart, a local copy elsewhere.
template <CollectiveBackend B>
OpId copy_input(B& b, int rank, Region to, Region from, std::span<const OpId> deps) {
  if constexpr (InputCopyBackend<B>) {
    return b.copy_input(rank, to, from, deps);
  } else {
    return b.local(rank, to, from, RecvAction::copy, deps);
  }
}

/// Whether rank `rank` of `b` sits on an NVSwitch that reduces (false on a backend that
/// has no in-switch reduction at all).
template <CollectiveBackend B>
bool switch_reduces(const B& b, int rank) {
  if constexpr (SwitchReduceBackend<B>) {
    return b.switch_reduces(rank);
  } else {
    (void)b;
    (void)rank;
    return false;
  }
}

/// Whether `b` evaluates a run of identical steps once (repeat_step may be called).
template <CollectiveBackend B>
bool repeats_steps(const B& b) {
  if constexpr (StepRepeatingBackend<B>) {
    return b.repeats_steps();
  } else {
    (void)b;
    return false;
  }
}

/// Operations posted on `b` so far, where it repeats steps (the next operation's id);
/// 0 on a backend that does not.
template <CollectiveBackend B>
std::size_t posted_count(const B& b) {
  if constexpr (StepRepeatingBackend<B>) {
    return b.posted();
  } else {
    (void)b;
    return 0;
  }
}

RAILCC_NAMESPACE_END
