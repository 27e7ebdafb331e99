//===- ExpertsToGPU.cpp - moe.experts on the GPU ---------------------------===//
//
// Part of moe-compiler.
//
// Two steps around bufferization. First, each bf16 moe.experts becomes a call
// to a private helper whose arguments are read-only for bufferization, so
// that the CPU pipeline bufferizes and deallocates around it without copying
// the weights (the deallocation pipeline refuses GPU launches). After
// bufferization the helper gets its body: device buffers, the expert kernels
// and the copies. This is the path of layers the fused GPU layer
// (LayerToGPU.cpp) does not take: their routing, dispatch and combine stay on
// the CPU. The helper machinery shared by both paths (GpuHelpers.h) and the
// materialization pass, which builds both kinds of bodies, live here too.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToGPU/GpuHelpers.h"
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Target/CUDA/DenseKernels.h"
#include "moe/Target/CUDA/ExpertKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOEEXPERTSTOGPUCALL
#define GEN_PASS_DEF_MOEMATERIALIZEGPUEXPERTS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

//===----------------------------------------------------------------------===//
// Shared helper machinery (GpuHelpers.h)
//===----------------------------------------------------------------------===//

func::FuncOp mlir::moe::declareGpuHelper(ModuleOp module, StringRef prefix,
                                         unsigned &counter, TypeRange inputs,
                                         TypeRange results, Location loc) {
  OpBuilder b(module.getContext());
  b.setInsertionPointToStart(module.getBody());
  std::string name;
  do
    name = (prefix + Twine(counter++)).str();
  while (module.lookupSymbol(name));
  auto decl = func::FuncOp::create(b, loc, name,
                                   b.getFunctionType(inputs, results));
  decl.setPrivate();
  for (unsigned i = 0; i < inputs.size(); ++i)
    decl.setArgAttr(i, "bufferization.access", b.getStringAttr("read"));
  return decl;
}

Block *mlir::moe::prepareHelperEntry(func::FuncOp fn) {
  for (unsigned i = 0; i < fn.getNumArguments(); ++i)
    fn.removeArgAttr(i, "bufferization.access");
  fn.setPrivate();
  return fn.addEntryBlock();
}

Value HostBuilder::index(int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

Value HostBuilder::alloc(ArrayRef<int64_t> shape, Type elt) {
  Value v = gpu::AllocOp::create(b, loc, MemRefType::get(shape, elt), Type(),
                                 ValueRange{}, ValueRange{}, ValueRange{},
                                 /*hostShared=*/false)
                .getMemref();
  owned.push_back(v);
  return v;
}

Value HostBuilder::zeroed(ArrayRef<int64_t> shape) {
  Value v = alloc(shape, b.getF32Type());
  Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
  gpu::MemsetOp::create(b, loc, Type(), ValueRange{}, v, zero);
  return v;
}

SmallVector<Value>
HostBuilder::zeroedGroup(ArrayRef<SmallVector<int64_t, 2>> shapes,
                         Value *clearedByKernel, ArrayRef<Type> types) {
  Type f32 = b.getF32Type();
  SmallVector<int64_t> offsets;
  int64_t total = 0; // f32 elements
  for (ArrayRef<int64_t> shape : shapes) {
    offsets.push_back(total);
    int64_t n = 1;
    for (int64_t s : shape)
      n *= s;
    total += (n + 63) / 64 * 64;
  }
  Value bytes = alloc({total * 4}, b.getI8Type());
  Value all = memref::ViewOp::create(b, loc, MemRefType::get({total}, f32),
                                     bytes, index(0), ValueRange{});
  if (clearedByKernel) {
    *clearedByKernel = all;
  } else {
    Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
    gpu::MemsetOp::create(b, loc, Type(), ValueRange{}, all, zero);
  }
  SmallVector<Value> views;
  for (auto [i, shape] : llvm::enumerate(shapes)) {
    Type t = types.empty() ? f32 : types[i];
    assert(t.getIntOrFloatBitWidth() == 32 && "4-byte elements");
    views.push_back(memref::ViewOp::create(b, loc, MemRefType::get(shape, t),
                                           bytes, index(offsets[i] * 4),
                                           ValueRange{}));
  }
  return views;
}

Value HostBuilder::upload(Value v) {
  auto type = cast<MemRefType>(v.getType());
  Value d = alloc(type.getShape(), type.getElementType());
  copy(d, v);
  return d;
}

void HostBuilder::copy(Value dst, Value src) {
  gpu::MemcpyOp::create(b, loc, Type(), ValueRange{}, dst, src);
}

void HostBuilder::launch(gpu::GPUFuncOp kernel, ArrayRef<int64_t> grid,
                         ArrayRef<int64_t> block, ValueRange args,
                         int64_t sharedBytes, ArrayRef<int64_t> cluster) {
  assert(kernel && llvm::all_of(args, [](Value v) { return bool(v); }) &&
         "a launch of a kernel that was not built, or with an argument the "
         "plan did not make");
  SmallVector<Value> operands;
  for (Value v : args) {
    auto t = dyn_cast<MemRefType>(v.getType());
    if (!t) {
      operands.push_back(v);
      continue;
    }
    SmallVector<int64_t> shape(t.getRank(), ShapedType::kDynamic);
    operands.push_back(memref::CastOp::create(
        b, loc, MemRefType::get(shape, t.getElementType()), v));
  }
  gpu::LaunchFuncOp::create(
      b, loc, kernel,
      gpu::KernelDim3{index(grid[0]), index(grid[1]), index(grid[2])},
      gpu::KernelDim3{index(block[0]), index(block[1]), index(block[2])},
      sharedBytes ? arith::ConstantOp::create(
                        b, loc, b.getI32IntegerAttr(int32_t(sharedBytes)))
                        .getResult()
                  : Value(),
      operands, /*asyncTokenType=*/nullptr, /*asyncDependencies=*/{},
      cluster.empty()
          ? std::nullopt
          : std::optional<gpu::KernelDim3>(gpu::KernelDim3{
                index(cluster[0]), index(cluster[1]), index(cluster[2])}));
}

Value HostBuilder::callRuntime(StringRef name, ValueRange args,
                               bool returnsI64) {
  Type i64 = b.getI64Type();
  auto module = b.getInsertionBlock()->getParentOp()->getParentOfType<ModuleOp>();
  auto fn = module.lookupSymbol<func::FuncOp>(name);
  if (!fn) {
    OpBuilder mb(module.getBodyRegion());
    fn = func::FuncOp::create(
        mb, loc, name,
        mb.getFunctionType(SmallVector<Type>(args.size(), i64),
                           returnsI64 ? TypeRange{i64} : TypeRange{}));
    fn.setPrivate();
  }
  auto call = func::CallOp::create(b, loc, fn, args);
  return returnsI64 ? call.getResult(0) : Value();
}

Value HostBuilder::tensorMapBf16(Value w, int64_t box0, int64_t box1) {
  auto type = cast<MemRefType>(w.getType());
  assert(type.getRank() == 3 && type.hasStaticShape() &&
         type.getLayout().isIdentity() && type.getElementType().isBF16() &&
         "a static bf16 [d2, d1, d0] memref");
  auto c = [&](int64_t v) -> Value {
    return arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(v));
  };
  Value base = arith::IndexCastUIOp::create(
      b, loc, b.getI64Type(),
      memref::ExtractAlignedPointerAsIndexOp::create(b, loc, w));
  ArrayRef<int64_t> shape = type.getShape();
  return callRuntime("moert_cuda_tensor_map_bf16",
                     {base, c(shape[2]), c(shape[1]), c(shape[0]), c(box0),
                      c(box1)},
                     /*returnsI64=*/true);
}

void HostBuilder::launchRound(gpu::GPUFuncOp kernel, int64_t elements,
                              ValueRange args) {
  int64_t perBlock = 256 * kRoundElementsPerThread;
  launch(kernel, {(elements + perBlock - 1) / perBlock, 1, 1}, {256, 1, 1},
         args);
}

void HostBuilder::launchElementwise(gpu::GPUFuncOp kernel, int64_t elements,
                                    ValueRange args) {
  launch(kernel, {(elements + 255) / 256, 1, 1}, {256, 1, 1}, args);
}

GemvGrid mlir::moe::planGemv(int64_t k, int64_t m, int64_t active,
                             GemvTuning tuning) {
  GemvGrid g;
  int64_t cols = m / kGemvColumnsPerThread;
  active = std::max<int64_t>(1, active);
  auto ceilDiv = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  int64_t maxLanes = tuning.maxLanes ? tuning.maxLanes : 4;
  g.unroll = tuning.unroll ? tuning.unroll : 8;
  if (k % g.unroll)
    g.unroll = kGemvUnroll;
  auto lanesFit = [&](int64_t lanes) {
    return lanes <= maxLanes && k % (g.unroll * lanes) == 0;
  };
  // Threads along K for each column group.
  int64_t per = kPlanSms * kGemvThreadsPerSm / (active * cols);
  per = std::clamp<int64_t>(per, 1, std::max<int64_t>(1, k / g.unroll));
  // Lanes that fill a warp where there are fewer than 32 column groups.
  while (g.lanes * cols < 32 && lanesFit(g.lanes * 2))
    g.lanes *= 2;
  // At least 64 rows a block, or 16 for the few columns of a router (its
  // whole matrix then goes out in one round of loads).
  int64_t minRows = active * cols < 256 ? 16 : 64;
  int64_t splits = std::clamp<int64_t>(per / g.lanes, 1,
                                       std::max<int64_t>(1, k / minRows));
  while (g.lanes * splits * 2 <= per && lanesFit(g.lanes * 2))
    g.lanes *= 2;
  int64_t step = g.unroll * g.lanes;
  g.kchunk = ceilDiv(ceilDiv(k, splits), step) * step;
  g.splits = ceilDiv(k, g.kchunk);
  int64_t warps = ceilDiv(cols, 32 / g.lanes);
  g.threads = 32 * std::min<int64_t>(kGemvMaxThreads / 32, warps);
  g.blocksX = ceilDiv(warps, g.threads / 32);
  return g;
}

GemvGrid mlir::moe::fillGemvBlock(const GemvGrid &g, int64_t k, int64_t m,
                                  int64_t threads) {
  if (g.threads >= threads)
    return g;
  int64_t cols = m / kGemvColumnsPerThread;
  // The weight bytes of one of g's blocks.
  int64_t itemCols = std::min(cols, g.threads / g.lanes) * kGemvColumnsPerThread;
  int64_t itemBytes = g.kchunk * itemCols * 2;
  // A warp covers 32 / lanes column groups, a block threads / lanes: the
  // fewest lanes whose blocks split the columns evenly.
  for (int64_t lanes = 1; lanes <= 8; lanes *= 2) {
    int64_t groups = threads / lanes, step = g.unroll * lanes;
    if (groups > cols || cols % groups || k % step)
      continue;
    // Not coarser than g's items (fewer of them): rows / step does not
    // depend on the lanes, so no other split fits either.
    int64_t rows = itemBytes / (groups * kGemvColumnsPerThread * 2);
    if (rows < step)
      return g;
    GemvGrid f = g;
    f.lanes = lanes;
    f.threads = threads;
    f.blocksX = cols / groups;
    f.kchunk = std::min(rows / step * step, k / step * step);
    f.splits = (k + f.kchunk - 1) / f.kchunk;
    return f;
  }
  return g;
}

gpu::GPUFuncOp mlir::moe::getOrBuildKernel(
    gpu::GPUModuleOp kernels, StringRef name,
    function_ref<gpu::GPUFuncOp()> build) {
  if (auto existing = kernels.lookupSymbol<gpu::GPUFuncOp>(name))
    return existing;
  return build();
}

bool mlir::moe::denseMatmulOnTensorCores(int64_t rows, int64_t k,
                                         int64_t minRows) {
  return rows >= minRows && k % kMmaTileK == 0;
}

DenseMatmulPlan mlir::moe::planDenseMatmul(int64_t T, int64_t K, int64_t M,
                                           int64_t splits) {
  DenseMatmulPlan p;
  p.wgmma = K % kWgmmaTileK == 0 && M >= 128;
  if (p.wgmma) {
    p.rowTiles = (T + kWgmmaTileM - 1) / kWgmmaTileM;
    // 128-column blocks where 256 would leave SMs idle.
    p.columns = p.rowTiles * ((M + 255) / 256) < kPlanSms ? 128 : 256;
  } else {
    p.rowTiles = (T + 127) / 128;
    p.columns = kMmaTileN;
  }
  int64_t blocks = p.rowTiles * ((M + p.columns - 1) / p.columns);
  int64_t steps = K / (p.wgmma ? kWgmmaTileK : kMmaTileK);
  // (As asked: runs of ceil(steps / splits) steps, as many as are not
  // empty. Under one K step the tensor cores do not take it: 1.)
  if (splits <= 0)
    p.splits = planSplitK(blocks, steps);
  else if (steps == 0)
    p.splits = 1;
  else
    p.splits = llvm::divideCeil(
        steps, llvm::divideCeil(steps, std::min(splits, steps)));
  return p;
}

Value mlir::moe::denseMatmulF32(OpBuilder &b, HostBuilder &h,
                                gpu::GPUModuleOp kernels, Value x, Value w,
                                Value anyI32, Value zeroedOut,
                                int64_t minTensorRows, int64_t askedSplits) {
  auto xType = cast<MemRefType>(x.getType());
  auto wType = cast<MemRefType>(w.getType());
  int64_t T = xType.getDimSize(0), K = xType.getDimSize(1),
          M = wType.getDimSize(1);
  Type bf16 = b.getBF16Type(), f32 = b.getF32Type();
  Location kloc = kernels.getLoc();
  Value w3 = memref::ExpandShapeOp::create(
      b, w.getLoc(), MemRefType::get({1, K, M}, bf16), w,
      ArrayRef<ReassociationIndices>{{0, 1}, {2}});
  // The tensor-core paths split K over grid z where their tiles alone
  // would leave SMs idle (a router of 8 to 256 experts is one column
  // block: 1 to 8 blocks at 128 to 1024 tokens took 20-73 us), the
  // output then accumulated by atomics into zeros.
  auto output = [&](int64_t splits) {
    return zeroedOut ? zeroedOut
                     : splits > 1 ? h.zeroed({T, M}) : h.alloc({T, M}, f32);
  };
  DenseMatmulPlan plan = planDenseMatmul(T, K, M, askedSplits);
  int64_t rowTiles = plan.rowTiles, splits = plan.splits;
  int64_t colBlocks = (M + plan.columns - 1) / plan.columns;
  if (denseMatmulOnTensorCores(T, K, minTensorRows) && plan.wgmma) {
    MmaOptions o;
    o.dense = true;
    o.splitK = splits > 1;
    WgmmaTile t;
    if (plan.columns == 128)
      t = {128, 6};
    std::string name = wgmmaKernelName(o, t);
    gpu::GPUFuncOp k = getOrBuildKernel(kernels, name, [&] {
      return buildGroupedWgmmaKernel(b, kloc, kernels, name, o, t);
    });
    Value acc = output(splits);
    h.launch(k, {rowTiles, colBlocks, splits}, {kWgmmaThreads, 1, 1},
             {x, w3, acc}, wgmmaSharedBytes(t));
    return acc;
  }
  if (denseMatmulOnTensorCores(T, K, minTensorRows)) {
    MmaOptions o;
    o.dense = true;
    o.tileM = 128;
    o.splitK = splits > 1;
    std::string name = mmaKernelName(o);
    gpu::GPUFuncOp k = getOrBuildKernel(kernels, name, [&] {
      return buildGroupedMmaKernel(b, kloc, kernels, name, o);
    });
    Value acc = output(splits);
    h.launch(k, {colBlocks, rowTiles, splits}, {kMmaThreads, 1, 1},
             {x, w3, acc});
    return acc;
  }
  GemvGrid g = planGemv(K, M, 1);
  GemvOptions o;
  o.dense = true;
  o.rowsPerPass = std::min<int64_t>(T, kGemvRowsPerPass);
  o = g.kernelOptions(o);
  std::string name = gemvKernelName("moe_gemv_dense_bf16", o);
  gpu::GPUFuncOp k = getOrBuildKernel(kernels, name, [&] {
    return buildGroupedGemvKernel(b, kloc, kernels, name, bf16, o);
  });
  Value acc = zeroedOut ? zeroedOut : h.zeroed({T, M});
  h.launch(k, {g.blocksX, g.splits, 1}, {g.threads, 1, 1},
           {x, anyI32, w3, acc, h.index(g.kchunk)});
  return acc;
}

void HostBuilder::freeAll() {
  for (Value v : owned)
    gpu::DeallocOp::create(b, loc, Type(), ValueRange{}, v);
  owned.clear();
}

//===----------------------------------------------------------------------===//
// moe.experts
//===----------------------------------------------------------------------===//

namespace {
constexpr StringLiteral kGatedAttr = "moe.gpu_experts_gated";

struct ConvertMoEExpertsToGpuCallPass
    : mlir::moe::impl::ConvertMoEExpertsToGpuCallBase<
          ConvertMoEExpertsToGpuCallPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<ExpertsOp> ops;
    module.walk([&](ExpertsOp op) { ops.push_back(op); });
    unsigned counter = 0;
    for (ExpertsOp op : ops) {
      auto type = cast<RankedTensorType>(op.getType());
      if (!type.getElementType().isBF16() ||
          !llvm::all_of(op->getOperandTypes(), [](Type t) {
            return cast<RankedTensorType>(t).hasStaticShape();
          }))
        continue; // the CPU lowering handles it
      OpBuilder b(module.getContext());
      func::FuncOp decl =
          declareGpuHelper(module, "__moe_gpu_experts_", counter,
                           op->getOperandTypes(), type, op.getLoc());
      decl->setAttr(kGpuExpertsAttr, op.getActivationAttr());
      if (op.getWGate())
        decl->setAttr(kGatedAttr, b.getUnitAttr());
      b.setInsertionPoint(op);
      auto call = func::CallOp::create(b, op.getLoc(), decl, op->getOperands());
      op.replaceAllUsesWith(call.getResult(0));
      op.erase();
    }
  }
};

/// Whether `v` is an argument of the function around it that the model
/// entry marks as a device buffer.
bool isDeviceArgument(Value v) {
  auto arg = dyn_cast<BlockArgument>(v);
  if (!arg)
    return false;
  auto fn = dyn_cast<func::FuncOp>(arg.getOwner()->getParentOp());
  if (!fn || arg.getOwner() != &fn.getBody().front())
    return false;
  auto marked = fn->getAttrOfType<DenseI64ArrayAttr>(kDeviceBuffersAttr);
  return marked && llvm::is_contained(marked.asArrayRef(),
                                      int64_t(arg.getArgNumber()));
}

struct MoEMaterializeGpuExpertsPass
    : mlir::moe::impl::MoEMaterializeGpuExpertsBase<
          MoEMaterializeGpuExpertsPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // (Checked whether or not a decoding attention is compiled: a typo
    // must not pass silently.)
    if (!isAttentionKernelKind(attentionKernel)) {
      module.emitError() << "attention kernel must be auto, mma or cores, "
                            "got '"
                         << attentionKernel << "'";
      return signalPassFailure();
    }
    SmallVector<func::FuncOp> helpers;
    for (auto fn : module.getOps<func::FuncOp>())
      if ((fn->hasAttr(kGpuExpertsAttr) || fn->hasAttr(kGpuLayerAttr) ||
           fn->hasAttr(kGpuDenseAttr)) &&
          fn.isExternal())
        helpers.push_back(fn);
    if (helpers.empty())
      return;
    // Who uses each helper and which function a call names, found once (a
    // walk of the module a helper, or a linear symbol lookup a call, made
    // a whole model's compile time quadratic in its layers).
    SymbolUsers users = symbolUsers(module);
    SymbolTable symbols(module);
    if (outParamsOnly) {
      for (func::FuncOp fn : helpers)
        if (failed(toOutParam(fn, users[fn.getSymNameAttr()])))
          return signalPassFailure();
      return;
    }
    OpBuilder b(module.getContext());
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    b.getUnitAttr());
    auto kernels = module.lookupSymbol<gpu::GPUModuleOp>(kKernelModuleName);
    if (!kernels) {
      b.setInsertionPointToEnd(module.getBody());
      kernels = gpu::GPUModuleOp::create(b, module.getLoc(), kKernelModuleName);
    }
    auto kernel = [&](StringRef name, function_ref<gpu::GPUFuncOp()> build) {
      return getOrBuildKernel(kernels, name, build);
    };
    Type bf16 = b.getBF16Type();
    Location kloc = kernels.getLoc();
    keepOnDevice(module, helpers, symbols);
    for (func::FuncOp fn : helpers) {
      if (fn->hasAttr(kGpuDenseAttr)) {
        if (failed(buildGpuDenseBody(
                b, fn, kernels, deviceArguments(fn, users[fn.getSymNameAttr()]),
                DenseTuning{attentionHeads, attentionUnroll, attentionThreads,
                            attentionSplit, attentionKernel})))
          return signalPassFailure();
        continue;
      }
      if (fn->hasAttr(kGpuLayerAttr)) {
        if (failed(buildGpuLayerBody(
                b, fn, kernels, deviceArguments(fn, users[fn.getSymNameAttr()]),
                report)))
          return signalPassFailure();
        continue;
      }
      gpu::GPUFuncOp gemv = kernel("grouped_gemv_bf16", [&] {
        return buildGroupedGemvKernel(b, kloc, kernels, "grouped_gemv_bf16",
                                      bf16);
      });
      gpu::GPUFuncOp round = kernel("round_bf16", [&] {
        return buildRoundKernel(b, kloc, kernels, "round_bf16", bf16);
      });
      auto act = cast<ActivationAttr>(fn->getAttr(kGpuExpertsAttr)).getValue();
      bool gated = fn->hasAttr(kGatedAttr);
      std::string actName = expertActivationKernelName(act, gated);
      gpu::GPUFuncOp activation = kernel(actName, [&] {
        return buildExpertActivationKernel(b, kloc, kernels, actName, act,
                                           gated, bf16);
      });
      if (failed(buildBody(b, fn, gated, gemv, activation, round)))
        return signalPassFailure();
    }
    // Read above; the LLVM translation has no use for it.
    for (auto fn : module.getOps<func::FuncOp>())
      fn->removeAttr(kDeviceBuffersAttr);
  }

  /// The operations using each symbol of the module.
  using SymbolUsers = DenseMap<StringAttr, SmallVector<Operation *, 1>>;
  static SymbolUsers symbolUsers(ModuleOp module) {
    SymbolUsers users;
    if (std::optional<SymbolTable::UseRange> uses =
            SymbolTable::getSymbolUses(&module.getBodyRegion()))
      for (const SymbolTable::SymbolUse &use : *uses)
        users[use.getSymbolRef().getRootReference()].push_back(use.getUser());
    return users;
  }

  /// Which arguments of helper `fn` are device pointers at its one call site
  /// (`users`, the helper's users; arguments of the model entry marked as
  /// device buffers).
  static SmallVector<bool> deviceArguments(func::FuncOp fn,
                                           ArrayRef<Operation *> users) {
    SmallVector<bool> device(fn.getNumArguments(), false);
    auto call =
        users.size() == 1 ? dyn_cast<func::CallOp>(users.front()) : nullptr;
    if (!call)
      return device;
    for (auto [i, v] : llvm::enumerate(call.getOperands()))
      device[i] = isDeviceValue(v);
    return device;
  }

  /// Reshapes and casts: views of their operand's buffer.
  static bool isView(Operation *op) {
    return isa<memref::ExpandShapeOp, memref::CollapseShapeOp, memref::CastOp>(
        op);
  }

  /// The buffer `v` views.
  static Value viewedBuffer(Value v) {
    while (Operation *def = v.getDefiningOp()) {
      if (!isView(def))
        break;
      v = def->getOperand(0);
    }
    return v;
  }

  /// A device buffer: an entry argument the model marks so, or a buffer of
  /// the model's own that keepOnDevice placed there.
  static bool isDeviceValue(Value v) {
    v = viewedBuffer(v);
    return isDeviceArgument(v) || v.getDefiningOp<gpu::AllocOp>();
  }

  /// Whether every use of `v` (through views) is an operand of a call to a
  /// GPU layer or dense helper, or its deallocation. (The decomposed
  /// experts helper takes host activations: its operands stay on the host.)
  static bool onlyHelperUses(Value v, SymbolTable &symbols) {
    for (Operation *user : v.getUsers()) {
      if (isa<memref::DeallocOp>(user))
        continue;
      if (isView(user)) {
        if (!onlyHelperUses(user->getResult(0), symbols))
          return false;
        continue;
      }
      auto call = dyn_cast<func::CallOp>(user);
      auto callee = call ? symbols.lookup<func::FuncOp>(call.getCallee())
                         : func::FuncOp();
      if (!callee ||
          !(callee->hasAttr(kGpuLayerAttr) || callee->hasAttr(kGpuDenseAttr)))
        return false;
    }
    return true;
  }

  /// Buffers of the model that only GPU helpers read and write live on the
  /// device: their allocation becomes gpu.alloc (the runtime caches device
  /// scratch across steps), their deallocation gpu.dealloc, and the helpers
  /// then skip the copies.
  static void keepOnDevice(ModuleOp module, ArrayRef<func::FuncOp> helpers,
                           SymbolTable &symbols) {
    if (helpers.empty())
      return;
    DenseSet<Operation *> isHelper;
    for (func::FuncOp fn : helpers)
      isHelper.insert(fn);
    SmallVector<memref::AllocOp> allocs;
    module.walk([&](memref::AllocOp alloc) {
      auto fn = alloc->getParentOfType<func::FuncOp>();
      if (fn && !isHelper.contains(fn) && alloc.getType().hasStaticShape() &&
          alloc.getType().getLayout().isIdentity() &&
          !alloc.getType().getMemorySpace() && !alloc.use_empty() &&
          onlyHelperUses(alloc, symbols))
        allocs.push_back(alloc);
    });
    for (memref::AllocOp alloc : allocs) {
      OpBuilder b(alloc);
      Value device =
          gpu::AllocOp::create(b, alloc.getLoc(), alloc.getType(), Type(),
                               ValueRange{}, ValueRange{}, ValueRange{},
                               /*hostShared=*/false)
              .getMemref();
      for (Operation *user : llvm::make_early_inc_range(alloc->getUsers()))
        if (auto dealloc = dyn_cast<memref::DeallocOp>(user)) {
          OpBuilder db(dealloc);
          gpu::DeallocOp::create(db, dealloc.getLoc(), Type(), ValueRange{},
                                 device);
          dealloc.erase();
        }
      alloc.replaceAllUsesWith(device);
      alloc.erase();
    }
  }

  /// The helper's result becomes a caller-allocated out-parameter, so that
  /// the deallocation pipeline sees a plain allocation with static ownership
  /// (a returned buffer would need its run-time helper, which the bare-pointer
  /// calling convention cannot lower). Where the caller only copies the
  /// result into one of its own arguments (the model's output), the helper
  /// writes that argument directly.
  static LogicalResult toOutParam(func::FuncOp fn,
                                  ArrayRef<Operation *> users) {
    FunctionType type = fn.getFunctionType();
    if (type.getNumResults() == 0)
      return success();
    SmallVector<Type> inputs(type.getInputs());
    for (Type t : type.getResults()) {
      if (!isa<MemRefType>(t))
        return fn.emitError() << "expected a bufferized GPU helper";
      inputs.push_back(t);
    }
    fn.setType(FunctionType::get(fn.getContext(), inputs, {}));
    for (Operation *user : users) {
      auto call = dyn_cast<func::CallOp>(user);
      if (!call)
        return user->emitError() << "unexpected use of " << fn.getSymName();
      OpBuilder b(call);
      SmallVector<Value> args(call.getOperands());
      SmallVector<Value> outs;
      for (Value result : call.getResults()) {
        auto resultType = cast<MemRefType>(result.getType());
        Value out;
        if (result.hasOneUse())
          if (auto copy = dyn_cast<memref::CopyOp>(*result.getUsers().begin()))
            if (auto target = dyn_cast<BlockArgument>(copy.getTarget()))
              if (target.getType() == resultType && target.hasOneUse() &&
                  copy->getBlock() == call->getBlock() &&
                  target.getOwner() == call->getBlock()) {
                out = target;
                copy.erase();
              }
        if (!out)
          out = memref::AllocOp::create(b, call.getLoc(), resultType);
        args.push_back(out);
        outs.push_back(out);
      }
      func::CallOp::create(b, call.getLoc(), fn, args);
      for (auto [result, out] : llvm::zip(call.getResults(), outs))
        result.replaceAllUsesWith(out);
      call.erase();
    }
    return success();
  }

  static LogicalResult buildBody(OpBuilder &b, func::FuncOp fn, bool gated,
                                 gpu::GPUFuncOp gemv, gpu::GPUFuncOp activation,
                                 gpu::GPUFuncOp round) {
    FunctionType type = fn.getFunctionType();
    auto memrefArg = [&](unsigned i) {
      return dyn_cast<MemRefType>(type.getInput(i));
    };
    unsigned numArgs = gated ? 6 : 5; // inputs + the out-parameter
    if (type.getNumInputs() != numArgs || type.getNumResults() != 0 ||
        !llvm::all_of(type.getInputs(), [](Type t) {
          auto m = dyn_cast<MemRefType>(t);
          return m && m.hasStaticShape() && m.getLayout().isIdentity();
        }))
      return fn.emitError() << "expected the bufferized GPU experts helper to "
                               "take static identity-layout memrefs, got "
                            << type;
    Location loc = fn.getLoc();
    Block *entry = prepareHelperEntry(fn);
    b.setInsertionPointToStart(entry);
    MemRefType pType = memrefArg(0), wuType = memrefArg(2);
    int64_t n = pType.getDimSize(0), d = pType.getDimSize(1);
    int64_t experts = wuType.getDimSize(0), f = wuType.getDimSize(2);
    Type bf16 = b.getBF16Type();
    if (d % kGemvColumnsPerThread || f % kGemvColumnsPerThread ||
        d % kGemvUnroll || f % kGemvUnroll)
      return fn.emitError() << "the GPU expert path needs hidden and ffn "
                               "sizes divisible by 8, got "
                            << d << " and " << f;

    HostBuilder h(b, loc);
    Value x = h.upload(entry->getArgument(0));
    Value offsets = h.upload(entry->getArgument(1));
    Value wUp = entry->getArgument(2);
    Value wGate = gated ? entry->getArgument(3) : Value();
    Value wDown = entry->getArgument(gated ? 4 : 3);
    Value hUp = h.zeroed({n, f});
    Value g = gated ? h.zeroed({n, f}) : Value();
    Value a = h.alloc({n, f}, bf16);
    Value y = h.zeroed({n, d});
    Value out = h.alloc({n, d}, bf16);

    // Grid z runs over all experts (empty ones exit at once); at most
    // min(n, E) of them have rows.
    auto launchGemv = [&](Value in, Value w, Value acc, int64_t k, int64_t m) {
      GemvGrid g = planGemv(k, m, std::min(n, experts), kDefaultGemvKernel);
      h.launch(gemv, {g.blocksX, g.splits, experts}, {g.threads, 1, 1},
               {in, offsets, w, acc, h.index(g.kchunk)});
    };
    launchGemv(x, wUp, hUp, d, f);
    if (gated) {
      launchGemv(x, wGate, g, d, f);
      h.launchElementwise(activation, n * f, {hUp, g, a});
    } else {
      h.launchElementwise(activation, n * f, {hUp, a});
    }
    launchGemv(a, wDown, y, f, d);
    h.launchRound(round, n * d, {y, out});

    h.copy(entry->getArgument(numArgs - 1), out);
    h.freeAll();
    func::ReturnOp::create(b, loc);
    return success();
  }
};
} // namespace
