//===- GpuExternDynamicShared.cpp - Dynamic shared memory after static ----===//
//
// Part of moe-compiler.
//
// Gives the globals that convert-gpu-to-nvvm makes for
// gpu.dynamic_shared_memory external linkage, so that NVPTX declares them
// `.extern .shared` (after the kernel's static shared memory) instead of
// as a static variable among the others. See Passes.td.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

namespace mlir::moe {
#define GEN_PASS_DEF_GPUEXTERNDYNAMICSHARED
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
struct GpuExternDynamicShared
    : moe::impl::GpuExternDynamicSharedBase<GpuExternDynamicShared> {
  void runOnOperation() override {
    for (auto global : getOperation().getOps<LLVM::GlobalOp>()) {
      auto array = dyn_cast<LLVM::LLVMArrayType>(global.getGlobalType());
      // upstream's: internal, shared (3), zero length, no initializer
      if (!global.getSymName().starts_with("__dynamic_shmem__") ||
          global.getAddrSpace() != 3 || !array || array.getNumElements() != 0 ||
          global.getValueOrNull() || !global.getInitializerRegion().empty())
        continue;
      global.setLinkage(LLVM::Linkage::External);
    }
  }
};
} // namespace
