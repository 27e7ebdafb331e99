//===- ExpertsToGPU.cpp - moe.experts on the GPU ---------------------------===//
//
// Part of moe-compiler.
//
// Two steps around bufferization. First, each bf16 moe.experts becomes a call
// to a private helper whose arguments are read-only for bufferization, so
// that the CPU pipeline bufferizes and deallocates around it without copying
// the weights (the deallocation pipeline refuses GPU launches). After
// bufferization the helper gets its body: device buffers, the expert kernels
// and the copies. Routing, dispatch and combine stay on the CPU until their
// kernels exist.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Target/CUDA/ExpertKernels.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOEEXPERTSTOGPUCALL
#define GEN_PASS_DEF_MOEMATERIALIZEGPUEXPERTS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {
constexpr StringLiteral kHelperAttr = "moe.gpu_experts";
constexpr StringLiteral kGatedAttr = "moe.gpu_experts_gated";
constexpr StringLiteral kKernelModule = "moe_kernels";

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
      b.setInsertionPointToStart(module.getBody());
      std::string name;
      do
        name = "__moe_gpu_experts_" + std::to_string(counter++);
      while (module.lookupSymbol(name));
      auto fnType = b.getFunctionType(op->getOperandTypes(), {type});
      auto decl = func::FuncOp::create(b, op.getLoc(), name, fnType);
      decl.setPrivate();
      for (unsigned i = 0; i < op->getNumOperands(); ++i)
        decl.setArgAttr(i, "bufferization.access", b.getStringAttr("read"));
      decl->setAttr(kHelperAttr, op.getActivationAttr());
      if (op.getWGate())
        decl->setAttr(kGatedAttr, b.getUnitAttr());
      b.setInsertionPoint(op);
      auto call = func::CallOp::create(b, op.getLoc(), decl, op->getOperands());
      op.replaceAllUsesWith(call.getResult(0));
      op.erase();
    }
  }
};

struct MoEMaterializeGpuExpertsPass
    : mlir::moe::impl::MoEMaterializeGpuExpertsBase<
          MoEMaterializeGpuExpertsPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<func::FuncOp> helpers;
    for (auto fn : module.getOps<func::FuncOp>())
      if (fn->hasAttr(kHelperAttr) && fn.isExternal())
        helpers.push_back(fn);
    if (helpers.empty())
      return;
    if (outParamsOnly) {
      for (func::FuncOp fn : helpers)
        if (failed(toOutParam(fn, module)))
          return signalPassFailure();
      return;
    }
    OpBuilder b(module.getContext());
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    b.getUnitAttr());
    auto kernels = module.lookupSymbol<gpu::GPUModuleOp>(kKernelModule);
    if (!kernels) {
      b.setInsertionPointToEnd(module.getBody());
      kernels = gpu::GPUModuleOp::create(b, module.getLoc(), kKernelModule);
    }
    auto kernel = [&](StringRef name,
                      function_ref<gpu::GPUFuncOp()> build) -> gpu::GPUFuncOp {
      if (auto k = kernels.lookupSymbol<gpu::GPUFuncOp>(name))
        return k;
      return build();
    };
    Type bf16 = b.getBF16Type();
    Location kloc = kernels.getLoc();
    gpu::GPUFuncOp gemv = kernel("grouped_gemv_bf16", [&] {
      return buildGroupedGemvKernel(b, kloc, kernels, "grouped_gemv_bf16",
                                    bf16);
    });
    gpu::GPUFuncOp round = kernel("round_bf16", [&] {
      return buildRoundKernel(b, kloc, kernels, "round_bf16", bf16);
    });
    for (func::FuncOp fn : helpers) {
      auto act = cast<ActivationAttr>(fn->getAttr(kHelperAttr)).getValue();
      bool gated = fn->hasAttr(kGatedAttr);
      std::string actName = expertActivationKernelName(act, gated);
      gpu::GPUFuncOp activation = kernel(actName, [&] {
        return buildExpertActivationKernel(b, kloc, kernels, actName, act,
                                           gated, bf16);
      });
      if (failed(buildBody(b, fn, gated, gemv, activation, round)))
        return signalPassFailure();
    }
  }

  /// The helper's result becomes a caller-allocated out-parameter, so that
  /// the deallocation pipeline sees a plain allocation with static ownership
  /// (a returned buffer would need its run-time helper, which the bare-pointer
  /// calling convention cannot lower).
  static LogicalResult toOutParam(func::FuncOp fn, ModuleOp module) {
    FunctionType type = fn.getFunctionType();
    if (type.getNumResults() != 1)
      return success();
    auto resultType = dyn_cast<MemRefType>(type.getResult(0));
    if (!resultType)
      return fn.emitError() << "expected a bufferized GPU experts helper";
    SmallVector<Type> inputs(type.getInputs());
    inputs.push_back(resultType);
    std::optional<SymbolTable::UseRange> uses = fn.getSymbolUses(module);
    fn.setType(FunctionType::get(fn.getContext(), inputs, {}));
    if (!uses)
      return success();
    for (const SymbolTable::SymbolUse &use : *uses) {
      auto call = dyn_cast<func::CallOp>(use.getUser());
      if (!call)
        return use.getUser()->emitError() << "unexpected use of " << fn.getSymName();
      OpBuilder b(call);
      Value out = memref::AllocOp::create(b, call.getLoc(), resultType);
      SmallVector<Value> args(call.getOperands());
      args.push_back(out);
      func::CallOp::create(b, call.getLoc(), fn, args);
      call.getResult(0).replaceAllUsesWith(out);
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
    for (unsigned i = 0; i < type.getNumInputs(); ++i)
      fn.removeArgAttr(i, "bufferization.access");
    Block *entry = fn.addEntryBlock();
    b.setInsertionPointToStart(entry);
    fn.setPrivate();
    MemRefType pType = memrefArg(0), wuType = memrefArg(2);
    int64_t n = pType.getDimSize(0), d = pType.getDimSize(1);
    int64_t experts = wuType.getDimSize(0), f = wuType.getDimSize(2);
    Type f32 = b.getF32Type(), bf16 = b.getBF16Type();
    auto cst = [&](int64_t v) -> Value {
      return arith::ConstantIndexOp::create(b, loc, v);
    };
    auto dynamic = [&](Value v) -> Value {
      auto t = cast<MemRefType>(v.getType());
      SmallVector<int64_t> shape(t.getRank(), ShapedType::kDynamic);
      return memref::CastOp::create(
          b, loc, MemRefType::get(shape, t.getElementType()), v);
    };
    SmallVector<Value> device;
    auto alloc = [&](ArrayRef<int64_t> shape, Type elt) -> Value {
      Value v = gpu::AllocOp::create(b, loc, MemRefType::get(shape, elt),
                                     Type(), ValueRange{}, ValueRange{},
                                     ValueRange{}, /*hostShared=*/false)
                    .getMemref();
      device.push_back(v);
      return v;
    };
    auto copy = [&](Value dst, Value src) {
      gpu::MemcpyOp::create(b, loc, Type(), ValueRange{}, dst, src);
    };
    Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
    auto zeroed = [&](ArrayRef<int64_t> shape) {
      Value v = alloc(shape, f32);
      gpu::MemsetOp::create(b, loc, Type(), ValueRange{}, v, zero);
      return v;
    };

    Value x = alloc({n, d}, bf16);
    copy(x, entry->getArgument(0));
    Value offsets = alloc({experts + 1}, b.getI32Type());
    copy(offsets, entry->getArgument(1));
    Value wUp = entry->getArgument(2);
    Value wGate = gated ? entry->getArgument(3) : Value();
    Value wDown = entry->getArgument(gated ? 4 : 3);
    Value h = zeroed({n, f});
    Value g = gated ? zeroed({n, f}) : Value();
    Value a = alloc({n, f}, bf16);
    Value y = zeroed({n, d});
    Value out = alloc({n, d}, bf16);

    // Grid of the grouped GEMV: 8 columns a thread, threads sized to the
    // columns, the reduction split so that ~4 blocks per SM have work.
    auto launchGemv = [&](Value in, Value w, Value acc, int64_t k, int64_t m) {
      int64_t cols = m / kGemvColumnsPerThread;
      int64_t threads = std::min<int64_t>(256, (cols + 31) / 32 * 32);
      int64_t bx = (cols + threads - 1) / threads;
      int64_t splits = std::max<int64_t>(
          1, std::min<int64_t>(k / 64, 528 / std::max<int64_t>(
                                               1, bx * std::min(n, experts))));
      int64_t kchunk = (k + splits - 1) / splits;
      kchunk = (kchunk + kGemvUnroll - 1) / kGemvUnroll * kGemvUnroll;
      gpu::LaunchFuncOp::create(
          b, loc, gemv, gpu::KernelDim3{cst(bx), cst(splits), cst(experts)},
          gpu::KernelDim3{cst(threads), cst(1), cst(1)}, Value(),
          ValueRange{dynamic(in), dynamic(offsets), dynamic(w), dynamic(acc),
                     cst(kchunk)});
    };
    auto launchElementwise = [&](gpu::GPUFuncOp k, int64_t elements,
                                 ValueRange args) {
      SmallVector<Value> dyn;
      for (Value v : args)
        dyn.push_back(dynamic(v));
      gpu::LaunchFuncOp::create(
          b, loc, k, gpu::KernelDim3{cst((elements + 255) / 256), cst(1), cst(1)},
          gpu::KernelDim3{cst(256), cst(1), cst(1)}, Value(), dyn);
    };
    if (d % kGemvColumnsPerThread || f % kGemvColumnsPerThread ||
        d % kGemvUnroll || f % kGemvUnroll)
      return fn.emitError() << "the GPU expert path needs hidden and ffn "
                               "sizes divisible by 8, got "
                            << d << " and " << f;
    launchGemv(x, wUp, h, d, f);
    if (gated) {
      launchGemv(x, wGate, g, d, f);
      launchElementwise(activation, n * f, {h, g, a});
    } else {
      launchElementwise(activation, n * f, {h, a});
    }
    launchGemv(a, wDown, y, f, d);
    launchElementwise(round, n * d, {y, out});

    copy(entry->getArgument(numArgs - 1), out);
    for (Value v : device)
      gpu::DeallocOp::create(b, loc, Type(), ValueRange{}, v);
    func::ReturnOp::create(b, loc);
    return success();
  }
};
} // namespace
