// nccl/device.cuh and nccl/communicator.cuh on a GPU, with one rank (one GPU cannot hold
// two ranks of one NCCL communicator): every collective as railcc's plan (explicit
// algorithms) and as NCCL's own where the tuner delegates, on device buffers, on the
// transport's stream and on the caller's; split; bad input (a null buffer, one too small
// for its call, host memory, a GPU the process does not see) refused before anything runs.
// Needs a GPU and NCCL: scripts/gpu-check runs it (also with railcc's tuner plugin loaded
// into NCCL).
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../nan_aware.hpp"
#include "railcc/coll/collective.hpp"
#include "railcc/coll/reference.hpp"
#include "railcc/cuda/check.hpp"
#include "railcc/cuda/device_memory.cuh"
#include "railcc/nccl/communicator.cuh"

using namespace railcc;

namespace {

/// A job of one rank, logging nothing: no launcher variables. RAILCC_LANES is the
/// process's (scripts/gpu-check runs the test on one lane and on three).
Communicator one_rank() {
  const char* lanes = std::getenv("RAILCC_LANES");
  return nccl::nccl_communicator(
      Environment::of({{"RAILCC_DEBUG", "WARN"}, {"RAILCC_LANES", lanes != nullptr ? lanes : "1"}}),
      0);
}

std::vector<std::byte> random_input(DataType t, ReduceOp op, std::size_t count,
                                    std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::size_t e = size_of(t);
  std::vector<std::byte> v(count * e);
  for (std::size_t i = 0; i < count; ++i) random_element(t, op, v.data() + i * e, rng, 1);
  return v;
}

}  // namespace

TEST_CASE("NCCL transport, one rank: every collective, as railcc's plan and as NCCL's own") {
  REQUIRE_MESSAGE(cuda::device_count() > 0, "no GPU: this test needs one (scripts/gpu-check)");
  Communicator comm = one_rank();
  CHECK(comm.size() == 1);
  CHECK(comm.transport_name().find("NCCL ") == 0);
  cudaStream_t caller;
  RAILCC_CUDA_CHECK(cudaStreamCreate(&caller));
  std::size_t calls = 0;
  std::size_t delegated = 0;
  std::uint64_t seed = 1;
  for (Collective c : {Collective::all_reduce, Collective::reduce_scatter, Collective::all_gather,
                       Collective::broadcast, Collective::reduce, Collective::all_to_all}) {
    std::vector<std::optional<Algorithm>> plans{std::nullopt};  // the tuner's (maybe NCCL's)
    for (Algorithm a : algorithms_for(c)) {
      if (a != Algorithm::nvls && a != Algorithm::hierarchical) plans.push_back(a);
    }
    for (const auto& plan : plans) {
      for (DataType t : all_data_types) {
        for (ReduceOp op : all_reduce_ops) {
          if (!reduces(c) && op != ReduceOp::sum) continue;
          for (std::size_t count : {std::size_t{0}, std::size_t{7}, std::size_t{100'003}}) {
            for (bool on_callers_stream : {false, true}) {
              CAPTURE(to_string(c));
              CAPTURE(plan ? std::string(to_string(*plan)) : std::string("tuner"));
              CAPTURE(to_string(t));
              CAPTURE(to_string(op));
              CAPTURE(count);
              CAPTURE(on_callers_stream);
              const std::size_t bytes = count * size_of(t);
              const auto in = random_input(t, op, count, seed++);
              cuda::DeviceBuffer d_in(bytes + 16), d_out(bytes + 16);
              RAILCC_CUDA_CHECK(cudaMemcpy(d_in.get(), in.data(), bytes, cudaMemcpyHostToDevice));
              CallOptions o;
              o.algorithm = plan;
              if (on_callers_stream) o.stream = caller;
              const PlanChoice choice = comm.explain(c, count, t, o);
              delegated += choice.native() ? 1 : 0;
              switch (c) {
                case Collective::all_reduce:
                  comm.all_reduce(d_in.get(), d_out.get(), count, t, op, o);
                  break;
                case Collective::reduce_scatter:
                  comm.reduce_scatter(d_in.get(), d_out.get(), count, t, op, o);
                  break;
                case Collective::all_gather:
                  comm.all_gather(d_in.get(), d_out.get(), count, t, o);
                  break;
                case Collective::broadcast:
                  comm.broadcast(d_in.get(), d_out.get(), count, t, 0, o);
                  break;
                case Collective::reduce:
                  comm.reduce(d_in.get(), d_out.get(), count, t, op, 0, o);
                  break;
                case Collective::all_to_all:
                  comm.all_to_all(d_in.get(), d_out.get(), count, t, o);
                  break;
                case Collective::send_recv: break;
              }
              if (on_callers_stream) RAILCC_CUDA_CHECK(cudaStreamSynchronize(caller));
              std::vector<std::byte> got(bytes);
              RAILCC_CUDA_CHECK(cudaMemcpy(got.data(), d_out.get(), bytes, cudaMemcpyDeviceToHost));
              // One rank: every collective gives its input back (avg divides by 1).
              CHECK(test::first_difference(t, got.data(), in.data(), count) == -1);
              ++calls;
            }
          }
        }
      }
    }
  }
  RAILCC_CUDA_CHECK(cudaStreamDestroy(caller));
  MESSAGE(calls << " calls, " << delegated << " delegated to NCCL");
  CHECK(delegated > 0);
  CHECK(delegated < calls);
}

TEST_CASE("NCCL transport, one rank: split, and bad input refused before anything runs") {
  REQUIRE_MESSAGE(cuda::device_count() > 0, "no GPU: this test needs one (scripts/gpu-check)");
  Communicator comm = one_rank();
  auto part = comm.split(0, 0);
  REQUIRE(part.has_value());
  CHECK(part->size() == 1);
  CHECK_FALSE(comm.split(-1, 0).has_value());
  cuda::DeviceBuffer d(64);
  RAILCC_CUDA_CHECK(cudaMemset(d.get(), 0, 64));
  part->all_reduce(d.get(), d.get(), 16, DataType::float32, ReduceOp::sum);
  bool refused = false;
  try {
    comm.all_reduce(nullptr, d.get(), 16, DataType::float32, ReduceOp::sum);
  } catch (const InputError& e) {
    refused = std::string(e.what()).find("sendbuff is null") != std::string::npos;
  }
  CHECK(refused);
  // Buffers too small for the call, or host memory: refused, the sizes named.
  cuda::DeviceBuffer small(4096);
  std::string too_small;
  try {
    comm.all_reduce(small.get(), small.get(), 2048, DataType::float32, ReduceOp::sum);
  } catch (const InputError& e) {
    too_small = e.what();
  }
  CHECK(too_small.find("all_reduce on rank 0: sendbuff has ") == 0);
  CHECK(too_small.find("and the call needs 8192") != std::string::npos);
  std::vector<float> host(16);
  std::string on_host;
  try {
    comm.all_reduce(host.data(), d.get(), 16, DataType::float32, ReduceOp::sum);
  } catch (const InputError& e) {
    on_host = e.what();
  }
  CHECK(on_host.find("sendbuff is host memory") != std::string::npos);
  bool no_gpu = false;
  try {
    (void)nccl::nccl_communicator(Environment::of({{"RAILCC_DEBUG", "WARN"}}), 4096);
  } catch (const InputError& e) {
    no_gpu = std::string(e.what()).find("GPU 4096 is not one of the") != std::string::npos;
  }
  CHECK(no_gpu);
}
