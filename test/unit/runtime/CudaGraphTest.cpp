//===- CudaGraphTest.cpp - moert's CUDA graph capture ----------------------===//
//
// Part of moe-compiler. The generator replays decode steps as one CUDA
// graph. A step is compiled code calling the mgpu* ABI on the model stream;
// here a stand-in step copies a pinned host input to the device, sets a
// second buffer and copies the input on device to device. Captured once,
// the graph must read the host input as it is at each launch. A step that
// copies device data back to pageable host memory (as host-side code of a
// model would) cannot be captured: the capture fails with a message, the
// process goes on, and nothing of the step ran. Skipped without a GPU.
//
//===----------------------------------------------------------------------===//

#include "moert/moert.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

extern "C" {
void *mgpuStreamCreate();
void mgpuStreamSynchronize(void *stream);
void mgpuStreamDestroy(void *stream);
void *mgpuMemAlloc(uint64_t bytes, void *stream, bool isHostShared);
void mgpuMemFree(void *ptr, void *stream);
void mgpuMemcpy(void *dst, void *src, size_t bytes, void *stream);
void mgpuMemset32(void *dst, unsigned value, size_t count, void *stream);
}

namespace {

constexpr size_t kCount = 4096;

/// args: host input (i32 [kCount]), device out a, device out b.
void step(void **args) {
  void *s = mgpuStreamCreate();
  void *scratch = mgpuMemAlloc(kCount * 4, s, false);
  mgpuMemcpy(scratch, args[0], kCount * 4, s);
  mgpuMemcpy(args[1], scratch, kCount * 4, s);
  mgpuMemset32(args[2], 7, kCount, s);
  mgpuMemFree(scratch, s);
  mgpuStreamSynchronize(s);
  mgpuStreamDestroy(s);
}

/// Also copies device data back to pageable host memory (args[3]).
void stepReadingBack(void **args) {
  step(args);
  void *s = mgpuStreamCreate();
  mgpuMemcpy(args[3], args[1], kCount * 4, s);
  mgpuStreamSynchronize(s);
  mgpuStreamDestroy(s);
}

TEST(CudaGraphTest, ReplaysWithTheHostInputOfEachLaunch) {
  if (moert_cuda_init() != MOERT_OK)
    GTEST_SKIP() << moert_last_error();
  std::vector<int32_t> in(kCount), a(kCount), b(kCount);
  void *da = nullptr, *db = nullptr;
  ASSERT_EQ(moert_cuda_alloc(kCount * 4, &da), MOERT_OK);
  ASSERT_EQ(moert_cuda_alloc(kCount * 4, &db), MOERT_OK);
  void *args[] = {in.data(), da, db};
  for (size_t i = 0; i < kCount; ++i)
    in[i] = int32_t(i * 3 + 1);
  step(args); // once, uncaptured: the scratch is cached
  ASSERT_EQ(moert_cuda_host_register(in.data(), kCount * 4), MOERT_OK)
      << moert_last_error();
  void *graph = nullptr;
  ASSERT_EQ(moert_cuda_graph_capture(step, args, &graph), MOERT_OK)
      << moert_last_error();
  ASSERT_NE(graph, nullptr);
  for (int launch = 0; launch < 3; ++launch) {
    for (size_t i = 0; i < kCount; ++i)
      in[i] = int32_t(i * 7 + 1000 * launch);
    ASSERT_EQ(moert_cuda_copy(db, a.data(), kCount * 4), MOERT_OK); // clobber
    ASSERT_EQ(moert_cuda_graph_launch(graph), MOERT_OK) << moert_last_error();
    ASSERT_EQ(moert_cuda_synchronize(), MOERT_OK);
    ASSERT_EQ(moert_cuda_copy(a.data(), da, kCount * 4), MOERT_OK);
    ASSERT_EQ(moert_cuda_copy(b.data(), db, kCount * 4), MOERT_OK);
    EXPECT_EQ(a, in) << "launch " << launch;
    EXPECT_EQ(b, std::vector<int32_t>(kCount, 7)) << "launch " << launch;
  }
  moert_cuda_graph_destroy(graph);
  moert_cuda_host_unregister(in.data());
  EXPECT_EQ(moert_cuda_free(da), MOERT_OK);
  EXPECT_EQ(moert_cuda_free(db), MOERT_OK);
}

TEST(CudaGraphTest, AStepReadingDeviceDataOnTheHostIsRefused) {
  if (moert_cuda_init() != MOERT_OK)
    GTEST_SKIP() << moert_last_error();
  std::vector<int32_t> in(kCount, 5), back(kCount, -1);
  void *da = nullptr, *db = nullptr;
  ASSERT_EQ(moert_cuda_alloc(kCount * 4, &da), MOERT_OK);
  ASSERT_EQ(moert_cuda_alloc(kCount * 4, &db), MOERT_OK);
  void *args[] = {in.data(), da, db, back.data()};
  ASSERT_EQ(moert_cuda_host_register(in.data(), kCount * 4), MOERT_OK);
  void *graph = reinterpret_cast<void *>(1);
  EXPECT_EQ(moert_cuda_graph_capture(stepReadingBack, args, &graph),
            MOERT_ERR_UNSUPPORTED);
  EXPECT_EQ(graph, nullptr);
  std::string why = moert_last_error();
  EXPECT_NE(why.find("cannot be captured into a CUDA graph"), std::string::npos)
      << why;
  // Nothing ran, and the stream works on.
  EXPECT_EQ(back, std::vector<int32_t>(kCount, -1));
  stepReadingBack(args);
  EXPECT_EQ(back, in);
  moert_cuda_host_unregister(in.data());
  EXPECT_EQ(moert_cuda_free(da), MOERT_OK);
  EXPECT_EQ(moert_cuda_free(db), MOERT_OK);
}

} // namespace
