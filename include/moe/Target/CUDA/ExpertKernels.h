//===- ExpertKernels.h - GPU kernels of the expert FFN -----------*- C++ -*-===//
//
// Part of moe-compiler. Builders for the gpu.func kernels of the expert
// fusion group. The memory-bound path (few rows per expert) is measured in
// test/bench/NOTES-gpu.md: 80-91% of the copy floor where experts have 1 to
// 4 rows each.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TARGET_CUDA_EXPERTKERNELS_H
#define MOE_TARGET_CUDA_EXPERTKERNELS_H

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Builders.h"

namespace mlir::moe {

/// Columns each thread of the grouped GEMV owns (one 16-byte bf16 vector).
constexpr int64_t kGemvColumnsPerThread = 8;
/// Rows that share each weight load, and weight rows loaded ahead of use.
constexpr int64_t kGemvRowsPerPass = 4;
constexpr int64_t kGemvUnroll = 4;

/// Adds to `module` the grouped memory-bound GEMV kernel `name`:
///   out[r, :] += x[r, :] * w[e]  for the rows r of every expert e,
/// with arguments (x: memref<?x?xT> rows in expert-major order [N, K],
/// offsets: memref<?xi32> [E+1], w: memref<?x?x?xT> [E, K, M],
/// out: memref<?x?xf32> [N, M] (accumulated with atomics; zero it first),
/// kchunk: index, a multiple of kGemvUnroll). Launch with grid
/// (ceil(M / 8 / threads), ceil(K / kchunk), E). M must be a multiple of 8
/// and w 16-byte aligned.
gpu::GPUFuncOp buildGroupedGemvKernel(OpBuilder &builder, Location loc,
                                      gpu::GPUModuleOp module, StringRef name,
                                      Type elementType);

/// Adds the kernel `name` that applies the expert activation to the f32
/// up-projection `h` [N, F] (gated: `act(g) * h` with the f32 gate projection
/// `g`) and rounds to `a` [N, F] of `elementType`, as moe.experts does.
/// Arguments: (h, [g,] a). One thread per element; launch with enough blocks
/// to cover N * F.
gpu::GPUFuncOp buildExpertActivationKernel(OpBuilder &builder, Location loc,
                                           gpu::GPUModuleOp module,
                                           StringRef name, Activation act,
                                           bool gated, Type elementType);

/// Adds the kernel `name` rounding f32 `y` [N, D] to `out` of `elementType`.
gpu::GPUFuncOp buildRoundKernel(OpBuilder &builder, Location loc,
                                gpu::GPUModuleOp module, StringRef name,
                                Type elementType);

/// The kernel names -moe-gpu-add-expert-kernels uses.
std::string expertActivationKernelName(Activation act, bool gated);

} // namespace mlir::moe

#endif // MOE_TARGET_CUDA_EXPERTKERNELS_H
