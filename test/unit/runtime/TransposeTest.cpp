//===- TransposeTest.cpp - moert's weight transpose ------------------------===//
//
// Part of moe-compiler. The loader turns Hugging Face's [out, in] Linear
// weights into the [in, out] the compiled model reads: in 64 x 64 blocks,
// over several threads for large matrices. Checked element by element
// against the definition, for sizes that are not multiples of the block and
// for every element size it specializes.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace {

template <typename T>
void checkTranspose(int64_t rows, int64_t cols) {
  std::mt19937_64 rng(rows * 131 + cols);
  std::vector<T> src(size_t(rows * cols)), dst(src.size());
  for (T &v : src)
    v = T(rng());
  moert::transpose(reinterpret_cast<const char *>(src.data()),
                   reinterpret_cast<char *>(dst.data()), rows, cols,
                   sizeof(T));
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      bad += std::memcmp(&dst[size_t(c * rows + r)], &src[size_t(r * cols + c)],
                         sizeof(T)) != 0;
  EXPECT_EQ(bad, 0) << rows << " x " << cols << " of " << sizeof(T)
                    << "-byte elements";
}

struct Bytes3 {
  uint8_t b[3];
  Bytes3() = default;
  explicit Bytes3(uint64_t v) : b{uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16)} {}
};

TEST(TransposeTest, SmallOddSizes) {
  checkTranspose<uint16_t>(1, 1);
  checkTranspose<uint16_t>(3, 200);
  checkTranspose<uint32_t>(130, 67);
  checkTranspose<uint8_t>(65, 129);
  checkTranspose<uint64_t>(33, 71);
  checkTranspose<Bytes3>(70, 5);
}

// Past 4M elements the rows are split over threads (in whole 64-row blocks,
// the last range short).
TEST(TransposeTest, LargeThreaded) {
  checkTranspose<uint16_t>(2000, 2500);
  checkTranspose<uint32_t>(4100, 1031);
}

} // namespace
