//===- GpuAddExpertKernels.cpp - Put the expert kernels in a gpu.module ----===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Target/CUDA/ExpertKernels.h"
#include "moe/Transforms/Passes.h"

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
    StringRef name = "grouped_gemv_bf16";
    // Host code written before the kernels exist declares them with an empty
    // body marked `moe.generate`; the generated kernel takes its place.
    if (auto declared = gpuModule.lookupSymbol<gpu::GPUFuncOp>(name)) {
      if (!declared->hasAttr("moe.generate")) {
        gpuModule.emitError() << "already holds a kernel '" << name
                              << "' that is not marked moe.generate";
        return signalPassFailure();
      }
      FunctionType want = declared.getFunctionType();
      declared.erase();
      gpu::GPUFuncOp fn = moe::buildGroupedGemvKernel(
          b, gpuModule.getLoc(), gpuModule, name, b.getBF16Type());
      if (fn.getFunctionType() != want) {
        fn.emitError() << "the declared kernel type " << want
                       << " differs from the generated "
                       << fn.getFunctionType();
        return signalPassFailure();
      }
      return;
    }
    moe::buildGroupedGemvKernel(b, gpuModule.getLoc(), gpuModule, name,
                                b.getBF16Type());
  }
};
} // namespace
