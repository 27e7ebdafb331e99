//===- MemrefCopyTest.cpp - moert's memrefCopy ------------------------------===//
//
// Part of moe-compiler. Compiled code calls memrefCopy (the C runner
// utilities' ABI) for copies between memrefs of different layouts; the
// runtime provides it so that models need no MLIR library. Checked element
// by element against the strided definition: a contiguous source into a
// strided window, a transposed view, rank 0 and an empty copy.
//
//===----------------------------------------------------------------------===//

#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

namespace {
/// The lowering's descriptors: {allocated, aligned, offset, sizes[R],
/// strides[R]}, passed as {rank, descriptor*}.
template <int R> struct Descriptor {
  float *allocated, *aligned;
  int64_t offset, sizes[R > 0 ? R : 1], strides[R > 0 ? R : 1];
};
struct Unranked {
  int64_t rank;
  void *descriptor;
};
} // namespace

extern "C" void memrefCopy(int64_t elemSize, Unranked *src, Unranked *dst);

namespace {
template <int R>
Descriptor<R> view(std::vector<float> &data, int64_t offset,
                   std::vector<int64_t> sizes, std::vector<int64_t> strides) {
  Descriptor<R> d{data.data(), data.data(), offset, {}, {}};
  for (int i = 0; i < R; ++i) {
    d.sizes[i] = sizes[size_t(i)];
    d.strides[i] = strides[size_t(i)];
  }
  return d;
}

TEST(MemrefCopy, ContiguousIntoStridedWindow) {
  // src [3, 4, 5] contiguous; dst: rows 2.. of a [6, 4, 5] buffer, its last
  // dimension contiguous.
  std::vector<float> src(60), dst(120, -1.0f);
  std::iota(src.begin(), src.end(), 0.0f);
  auto s = view<3>(src, 0, {3, 4, 5}, {20, 5, 1});
  auto d = view<3>(dst, 40, {3, 4, 5}, {20, 5, 1});
  Unranked us{3, &s}, ud{3, &d};
  memrefCopy(sizeof(float), &us, &ud);
  // Rows 2-4 of the destination, nothing before or after them.
  for (int64_t i = 0; i < 120; ++i)
    EXPECT_EQ(dst[size_t(i)], i < 40 || i >= 100 ? -1.0f : float(i - 40)) << i;
}

TEST(MemrefCopy, TransposedSource) {
  // src: a [3, 4] row-major buffer viewed as its [4, 3] transpose
  // (element (i, j) at j * 4 + i); dst contiguous.
  std::vector<float> src(12), dst(12, -1.0f);
  std::iota(src.begin(), src.end(), 0.0f);
  auto s = view<2>(src, 0, {4, 3}, {1, 4});
  auto d = view<2>(dst, 0, {4, 3}, {3, 1});
  Unranked us{2, &s}, ud{2, &d};
  memrefCopy(sizeof(float), &us, &ud);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j)
      EXPECT_EQ(dst[size_t(i * 3 + j)], src[size_t(j * 4 + i)]) << i << "," << j;
}

TEST(MemrefCopy, RankZeroAndEmpty) {
  std::vector<float> src{7.0f, 8.0f}, dst{-1.0f, -1.0f};
  auto s = view<0>(src, 1, {}, {});
  auto d = view<0>(dst, 0, {}, {});
  Unranked us{0, &s}, ud{0, &d};
  memrefCopy(sizeof(float), &us, &ud);
  EXPECT_EQ(dst[0], 8.0f);
  EXPECT_EQ(dst[1], -1.0f);
  // No rows: nothing is read or written.
  auto e = view<2>(src, 0, {0, 2}, {2, 1});
  auto f = view<2>(dst, 0, {0, 2}, {2, 1});
  Unranked ue{2, &e}, uf{2, &f};
  memrefCopy(sizeof(float), &ue, &uf);
  EXPECT_EQ(dst[0], 8.0f);
  EXPECT_EQ(dst[1], -1.0f);
}
} // namespace
