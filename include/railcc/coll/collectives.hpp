// railcc/coll/collectives.hpp: every collective and algorithm (one family a header in
// algorithms/), written once against the CollectiveBackend concept, and post_collective.
//
// Semantics follow NCCL's (buffer sizes per rank, for `count` elements of the backend's
// reduction type):
//   all_reduce      input n, output n: every rank gets the reduction of all inputs
//   reduce_scatter  input p n, output n: rank r gets the reduction of chunk r
//   all_gather      input n, output p n: rank r's input lands at output chunk r
//   broadcast       input n (root), output n: the root's input everywhere
//   reduce          input n, output n (root): the reduction at the root only
//   all_to_all      input p n, output p n: chunk j of rank r goes to chunk r of rank j
//   send_recv       one rank's region to another's
// In place: output == input (for all_gather, the rank's input is then expected at its
// chunk of the output, as NCCL's in-place all-gather expects). Algorithms:
//   ring (channels), rabenseifner (recursive halving-doubling, any rank count),
//   mixed_radix (a ring over each prime factor's groups: no fold for any rank count),
//   hierarchical (ring reduce-scatter inside each host over NVLink, all-reduce of each
//   GPU's share across hosts on its rail with ring, rabenseifner or mixed_radix, ring
//   all-gather inside the host), chain (pipelined broadcast / reduce along the ring), pairwise
//   (direct all-to-all), bruck (all-gather and reduce-scatter in ceil(log2 p) steps), nvls
//   (hierarchical with the host's phases in the NVSwitch), tree (double binary tree
//   all-reduce, pipelined). Each returns, per rank, the operations
//   after which its output is final.
#pragma once

#include "railcc/coll/algorithms/all_gather.hpp"
#include "railcc/coll/algorithms/all_reduce.hpp"
#include "railcc/coll/algorithms/all_to_all.hpp"
#include "railcc/coll/algorithms/reduce_scatter.hpp"
#include "railcc/coll/algorithms/rooted.hpp"
#include "railcc/coll/call.hpp"
#include "railcc/coll/collective.hpp"
#include "railcc/coll/order.hpp"
#include "railcc/coll/post.hpp"
