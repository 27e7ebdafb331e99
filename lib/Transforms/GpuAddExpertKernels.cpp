//===- GpuAddExpertKernels.cpp - Put the expert kernels in a gpu.module ----===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Target/CUDA/ExpertKernels.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::moe {
#define GEN_PASS_DEF_GPUADDEXPERTKERNELS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
struct GpuAddExpertKernelsPass
    : mlir::moe::impl::GpuAddExpertKernelsBase<GpuAddExpertKernelsPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    OpBuilder b(module.getContext());
    auto gpuModule = module.lookupSymbol<gpu::GPUModuleOp>(moduleName);
    if (!gpuModule) {
      b.setInsertionPointToEnd(module.getBody());
      gpuModule = gpu::GPUModuleOp::create(b, module.getLoc(), moduleName);
      module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                      b.getUnitAttr());
    }
    Type bf16 = b.getBF16Type();
    Location loc = gpuModule.getLoc();
    // Host code written before the kernels exist declares them with an empty
    // body marked `moe.generate`; the generated kernel takes its place.
    auto add = [&](StringRef name,
                   function_ref<gpu::GPUFuncOp()> build) -> LogicalResult {
      auto declared = gpuModule.lookupSymbol<gpu::GPUFuncOp>(name);
      if (declared && !declared->hasAttr("moe.generate"))
        return gpuModule.emitError()
               << "already holds a kernel '" << name
               << "' that is not marked moe.generate";
      FunctionType want = declared ? declared.getFunctionType() : nullptr;
      if (declared)
        declared.erase();
      gpu::GPUFuncOp fn = build();
      if (want && fn.getFunctionType() != want)
        return fn.emitError() << "the declared kernel type " << want
                              << " differs from the generated "
                              << fn.getFunctionType();
      return success();
    };
    if (failed(add("grouped_gemv_bf16", [&] {
          return moe::buildGroupedGemvKernel(b, loc, gpuModule,
                                             "grouped_gemv_bf16", bf16);
        })))
      return signalPassFailure();
    for (moe::Activation act :
         {moe::Activation::relu, moe::Activation::gelu,
          moe::Activation::gelu_tanh, moe::Activation::silu})
      for (bool gated : {false, true}) {
        std::string name = moe::expertActivationKernelName(act, gated);
        if (failed(add(name, [&] {
              return moe::buildExpertActivationKernel(b, loc, gpuModule, name,
                                                      act, gated, bf16);
            })))
          return signalPassFailure();
      }
    if (failed(add("round_bf16", [&] {
          return moe::buildRoundKernel(b, loc, gpuModule, "round_bf16", bf16);
        })))
      return signalPassFailure();
  }
};
} // namespace
