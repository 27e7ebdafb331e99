//===- saxpy-main.cpp - Run the MLIR-compiled saxpy on the GPU -------------===//
//
// Part of moe-compiler's GPU tests. Fresh random inputs, a poisoned output,
// and a CPU reference; exits 77 (skipped) where there is no GPU.
//
//   gpu-saxpy-test [n] [threads-per-block]
//
//===----------------------------------------------------------------------===//

#include "moert/moert.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

// The lowered @saxpy_host: memref<?xf32> arguments as (allocated, aligned,
// offset, size, stride).
extern "C" void saxpy_host(float a, float *xa, float *x, int64_t xo,
                           int64_t xn, int64_t xs, float *ya, float *y,
                           int64_t yo, int64_t yn, int64_t ys,
                           int64_t threads);

int main(int argc, char **argv) {
  int64_t n = argc > 1 ? std::atoll(argv[1]) : (1 << 22) + 3;
  int64_t threads = argc > 2 ? std::atoll(argv[2]) : 256;
  if (moert_cuda_init() != MOERT_OK) {
    std::printf("SKIPPED: %s\n", moert_last_error());
    return 77;
  }
  char name[256] = "";
  moert_cuda_device_name(name, sizeof(name));
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-4.0f, 4.0f);
  std::vector<float> x(n), y(n), expected(n);
  float a = dist(rng);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = dist(rng);
    y[i] = dist(rng);
    expected[i] = a * x[i] + y[i];
  }
  saxpy_host(a, x.data(), x.data(), 0, n, 1, y.data(), y.data(), 0, n, 1,
             threads);
  int64_t bad = 0;
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double err = std::fabs(double(y[i]) - double(expected[i]));
    worst = std::max(worst, err);
    // Same f32 operations in the same order (no contraction on either side).
    if (!(err <= 1e-6 * std::fabs(expected[i]) + 1e-6))
      ++bad;
  }
  std::printf("gpu-saxpy: %s, n=%lld, threads=%lld, max |error| %.3g, %lld "
              "bad\n",
              name, (long long)n, (long long)threads, worst, (long long)bad);
  return bad ? 1 : 0;
}
