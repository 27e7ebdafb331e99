//===- GpuHelpers.h - Host code of the GPU fusion groups ----------*- C++ -*-===//
//
// Part of moe-compiler. Shared by the moe.experts and moe.layer GPU paths:
// a moe op becomes a call to a private helper before bufferization, and the
// helper gets its host body (device buffers, copies, launches) after the
// deallocation pipeline, which does not accept GPU launches.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_MOETOGPU_GPUHELPERS_H
#define MOE_CONVERSION_MOETOGPU_GPUHELPERS_H

#include "moe/Target/CUDA/ExpertKernels.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::moe {

/// Marks a helper of -convert-moe-experts-to-gpu-call (the activation).
constexpr StringLiteral kGpuExpertsAttr = "moe.gpu_experts";
/// Marks a helper of -convert-moe-layer-to-gpu-call (its routing options).
constexpr StringLiteral kGpuLayerAttr = "moe.gpu_layer";
/// Marks a helper of -convert-moe-dense-to-gpu-call (its kind: embedding,
/// rms_norm, attention, add, matmul).
constexpr StringLiteral kGpuDenseAttr = "moe.gpu_dense";
/// The gpu.module that holds the generated kernels.
constexpr StringLiteral kKernelModuleName = "moe_kernels";
/// On a model entry: the positions of its bare-pointer arguments (inputs,
/// then outputs) that hold device pointers (set by moe-compile for CUDA).
constexpr StringLiteral kDeviceBuffersAttr = "moe.device_buffers";

/// Declares a private helper `<prefix><n>` (first free n, counting from
/// `counter`) taking `inputs` read-only for bufferization and returning
/// `result`, at the start of `module`.
func::FuncOp declareGpuHelper(ModuleOp module, StringRef prefix,
                              unsigned &counter, TypeRange inputs,
                              TypeRange results, Location loc);

/// Drops the bufferization markers of a helper declaration, makes it private
/// and gives it an entry block.
Block *prepareHelperEntry(func::FuncOp fn);

/// Builds the host side of a helper: device buffers (freed by freeAll),
/// copies and launches on the stream that gpu-async-region assigns.
class HostBuilder {
public:
  HostBuilder(OpBuilder &b, Location loc) : b(b), loc(loc) {}
  Value index(int64_t v);
  Value alloc(ArrayRef<int64_t> shape, Type elementType);
  /// An f32 device buffer set to zero.
  Value zeroed(ArrayRef<int64_t> shape);
  /// f32 device buffers of `shapes` (or of the 4-byte element types in
  /// `types`, where given), set to zero together: views of one allocation
  /// (each 256-byte aligned) cleared by one memset, so a step pays one
  /// memset node instead of one a buffer.
  /// With `clearedByKernel`, no memset: it gets the whole group as one
  /// memref<?xf32> (a multiple of 64 elements) that a kernel clears.
  SmallVector<Value> zeroedGroup(ArrayRef<SmallVector<int64_t, 2>> shapes,
                                 Value *clearedByKernel = nullptr,
                                 ArrayRef<Type> types = {});
  /// A device copy of the (host or device) buffer `v`.
  Value upload(Value v);
  void copy(Value dst, Value src);
  /// Launches `kernel` (with `sharedBytes` of dynamic shared memory; in
  /// thread block clusters of `cluster` blocks where given); memref
  /// arguments are cast to dynamic shapes.
  void launch(gpu::GPUFuncOp kernel, ArrayRef<int64_t> grid,
              ArrayRef<int64_t> block, ValueRange args,
              int64_t sharedBytes = 0, ArrayRef<int64_t> cluster = {});
  /// One thread per element, blocks of 256.
  /// The rounding kernel (buildRoundKernel) over `elements`.
  void launchRound(gpu::GPUFuncOp kernel, int64_t elements, ValueRange args);
  void launchElementwise(gpu::GPUFuncOp kernel, int64_t elements,
                         ValueRange args);
  void freeAll();
  /// A call of the runtime's C function `name` (declared private in the
  /// module on first use) on i64 `args`; its i64 result with `returnsI64`.
  Value callRuntime(StringRef name, ValueRange args, bool returnsI64);
  /// The device address (i64) of the runtime's TMA tensor map of the bf16
  /// [d2, d1, d0] memref `w` (identity layout, on the device) in boxes of
  /// [1, box1, box0] with the 128-byte swizzle (moert_cuda_tensor_map_bf16).
  Value tensorMapBf16(Value w, int64_t box0, int64_t box1);

private:
  OpBuilder &b;
  Location loc;
  SmallVector<Value> owned;
};

/// The kernel `name` of `kernels`, built by `build` on first use.
gpu::GPUFuncOp getOrBuildKernel(gpu::GPUModuleOp kernels, StringRef name,
                                function_ref<gpu::GPUFuncOp()> build);

/// Whether denseMatmulF32 multiplies T rows of K on tensor cores (from
/// `minRows`, 128 unless the caller measured otherwise: the GEMV re-reads
/// the weights for every 4 rows).
bool denseMatmulOnTensorCores(int64_t rows, int64_t k, int64_t minRows = 128);

/// How denseMatmulF32 multiplies T rows of K by [K, M] on tensor cores:
/// warpgroup MMAs or mma.sync, and the K splits of its grid (1: none):
/// `splits` where asked (runs of ceil(steps / splits) K steps, as many as
/// are not empty), else planSplitK's.
struct DenseMatmulPlan {
  bool wgmma = false;
  int64_t columns = 0, rowTiles = 0, splits = 1;
};
DenseMatmulPlan planDenseMatmul(int64_t rows, int64_t k, int64_t m,
                                int64_t splits = 0);

/// f32 [T, M] = x [T, K] w [K, M] (bf16) on the device, through `h`: the
/// dense tensor-core kernel (denseMatmulOnTensorCores; on warpgroup MMAs
/// where K is a multiple of 64 and M at least 128; split over K where its
/// tiles fill fewer than half the SMs, planDenseMatmul), else the dense
/// GEMV (split over K, grid planGemv(K, M, 1)); split kernels accumulate
/// with f32 atomics into a zeroed buffer. `anyI32` is any i32 device
/// buffer: the dense GEMV does not read its offsets argument.
/// `zeroedOut`, if given, is a zeroed f32 [T, M] buffer to use as the
/// output (else one is allocated, and zeroed where the kernel needs it).
Value denseMatmulF32(OpBuilder &b, HostBuilder &h, gpu::GPUModuleOp kernels,
                     Value x, Value w, Value anyI32,
                     Value zeroedOut = Value(), int64_t minTensorRows = 128,
                     int64_t splits = 0);

/// Grid of a grouped GEMV over K x M with `active` (weight matrix, expert)
/// pairs expected at once: 8 columns a thread; about kGemvThreadsPerSm
/// threads of each of the 132 SMs get loads in flight (each lane loading
/// `unroll` rows a step), by splitting K across blocks (`splits`, at least
/// 64 rows each, 16 for fewer than 256 column groups; partial sums meet by
/// atomics), then across `lanes` lanes of a warp (sums meet by shuffles;
/// also to fill warps where M has fewer than 256 columns); kchunk is a
/// multiple of unroll * lanes.
struct GemvGrid {
  int64_t blocksX, threads, splits, kchunk;
  int64_t lanes = 1, unroll = kGemvUnroll;
  /// The grid's (blocksX, splits, threads, kchunk, lanes, unroll), as the
  /// plans in the IR record it.
  SmallVector<int64_t> summary() const {
    return {blocksX, splits, threads, kchunk, lanes, unroll};
  }
  /// `o` with the kernel layout this grid launches (lanes, unroll).
  GemvOptions kernelOptions(GemvOptions o) const {
    o.lanes = lanes;
    o.unroll = unroll;
    return o;
  }
};
/// Threads an SM the GEMV plans keep busy (32 warps: 64 registers each).
constexpr int64_t kGemvThreadsPerSm = 1024;
/// Shared memory a down GEMV block may stage its activated input in.
constexpr int64_t kGemvStageBytes = 16 << 10;
GemvGrid planGemv(int64_t k, int64_t m, int64_t active,
                  GemvTuning tuning = {});
/// `g` (a grid of planGemv(k, m, ...)) as items of a block of `threads`
/// threads (the decode kernel's): where g's blocks have fewer threads, the
/// columns split over more blocks (blocksX) and more lanes (up to 8) so
/// that every thread of the block loads, with about the weight bytes of
/// one of g's blocks an item; `g` itself where no such split exists.
GemvGrid fillGemvBlock(const GemvGrid &g, int64_t k, int64_t m,
                       int64_t threads);

/// Choices of the dense kernels the planner otherwise makes (0: planned);
/// see -moe-materialize-gpu-experts' options.
struct DenseTuning {
  int64_t attentionHeads = 0, attentionUnroll = 0, attentionThreads = 0,
          attentionSplit = 0;
  std::string attentionKernel = "auto"; // auto, mma or cores
};

/// The body of a GPU dense-part helper (DenseToGPU.cpp); `deviceArgs` as
/// for buildGpuLayerBody, out-parameters included.
LogicalResult buildGpuDenseBody(OpBuilder &b, func::FuncOp fn,
                                gpu::GPUModuleOp kernels,
                                ArrayRef<bool> deviceArgs,
                                const DenseTuning &tuning = {});

/// The body of a GPU layer helper (LayerToGPU.cpp). `deviceArgs[i]` says
/// whether argument i is known to be a device pointer (weights always are);
/// other activations are copied. With `report`, a remark at the helper
/// (the layer's location) gives its stages' kernel plan.
LogicalResult buildGpuLayerBody(OpBuilder &b, func::FuncOp fn,
                                gpu::GPUModuleOp kernels,
                                ArrayRef<bool> deviceArgs, bool report);

} // namespace mlir::moe

#endif // MOE_CONVERSION_MOETOGPU_GPUHELPERS_H
