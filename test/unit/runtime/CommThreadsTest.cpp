//===- CommThreadsTest.cpp - ranks as threads of one process ----------------===//
//
// Part of moe-compiler.
//
// One process driving all GPUs of a host runs each rank on its own thread
// (moert_comm_join_threads). Their collectives go over NCCL, which needs a
// GPU; what runs here is their start-up: joining, the agreement sums, the
// checks of the rank count, and the watchdog that ends a rank left waiting.
//
//===----------------------------------------------------------------------===//

#include "moert/moert.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

/// Runs `body(rank)` on `n` threads joined as the ranks of one process.
template <typename F> void onRanks(int n, F body) {
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([r, n, &body] {
      ASSERT_EQ(moert_comm_join_threads(r, n), MOERT_OK) << moert_last_error();
      body(r);
    });
  for (std::thread &t : threads)
    t.join();
}

TEST(CommThreads, AgreementSumsOverEveryRank) {
  const int64_t grid[] = {2};
  std::vector<int64_t> sums(2, -1), ranks(2, -1), sizes(2, -1);
  onRanks(2, [&](int r) {
    ASSERT_EQ(moert_comm_init(grid, 1), MOERT_OK) << moert_last_error();
    ranks[size_t(r)] = moert_comm_world_rank();
    sizes[size_t(r)] = moert_comm_world_size();
    // Two rounds: the meeting point is reused.
    int64_t first = moert_comm_sum_all(10 * (r + 1));
    sums[size_t(r)] = moert_comm_sum_all(first + r);
    EXPECT_EQ(moert_comm_group_rank(1), r);
    EXPECT_EQ(moert_comm_finalize(), MOERT_OK);
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(ranks[size_t(r)], r);
    EXPECT_EQ(sizes[size_t(r)], 2);
    EXPECT_EQ(sums[size_t(r)], 30 + 30 + 1); // 30 per rank, plus ranks 0 + 1
  }
}

TEST(CommThreads, RankCountMustMatchTheGrid) {
  const int64_t grid[] = {2, 2};
  onRanks(2, [&](int) {
    EXPECT_EQ(moert_comm_init(grid, 2), MOERT_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(moert_last_error())
                  .find("partitioned over 4 ranks (grid 2x2) but 2 threads"),
              std::string::npos)
        << moert_last_error();
  });
}

TEST(CommThreads, JoinChecksItsArguments) {
  EXPECT_EQ(moert_comm_join_threads(2, 2), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_last_error()).find("rank 2 of 2 threads"),
            std::string::npos);
  EXPECT_EQ(moert_comm_join_threads(0, 0), MOERT_ERR_INVALID_ARGUMENT);
}

/// In a death test's fresh process: ranks 0 and 1 of 2 threads join a
/// 2-rank grid, rank 1 then idles, and rank 0 (this thread) runs `step`.
template <typename F> void rankZeroAlone(F step) {
  static const int64_t grid[] = {2};
  std::thread idle([] {
    moert_comm_join_threads(1, 2);
    moert_comm_init(grid, 1);
    std::this_thread::sleep_for(std::chrono::seconds(30));
  });
  idle.detach();
  moert_comm_join_threads(0, 2);
  moert_comm_init(grid, 1);
  step();
}

TEST(CommThreads, HostCollectivesNeedNccl) {
  // In one process the ranks talk over NCCL only: a host all-reduce before
  // NCCL is started ends the job with a message saying so. (Death tests run
  // in a fresh process, not a fork of this one, whose watchdog thread would
  // not survive the fork.)
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(rankZeroAlone([] {
                float x = 1.0f;
                moert_comm_all_reduce(reinterpret_cast<int64_t>(&x),
                                      reinterpret_cast<int64_t>(&x), 1,
                                      MOERT_F32, 1);
              }),
              ::testing::ExitedWithCode(1), "talk over NCCL only");
}

TEST(CommThreads, WatchdogEndsARankLeftWaiting) {
  // Rank 1 never arrives: rank 0's agreement times out, names the step and
  // ends the process instead of hanging.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("MOERT_COMM_LOAD_TIMEOUT_S", "1", 1);
        rankZeroAlone([] { moert_comm_sum_all(1); });
      },
      ::testing::ExitedWithCode(1),
      "rank 0: the agreement after loading: timed out after 1 s");
}

TEST(Cuda, DeviceCountWithoutAGpuSaysWhy) {
  int32_t count = -1;
  if (moert_cuda_device_count(&count) == MOERT_OK) {
    EXPECT_GE(count, 1);
    GTEST_SKIP() << "this machine has a GPU";
  }
  EXPECT_EQ(count, 0);
  EXPECT_NE(std::string(moert_last_error()).find("CUDA"), std::string::npos)
      << moert_last_error();
}

} // namespace
