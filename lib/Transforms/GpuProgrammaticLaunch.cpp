//===- GpuProgrammaticLaunch.cpp - Grid dependency control in kernels -----===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

namespace mlir::moe {
#define GEN_PASS_DEF_GPUPROGRAMMATICLAUNCH
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
struct GpuProgrammaticLaunchPass
    : mlir::moe::impl::GpuProgrammaticLaunchBase<GpuProgrammaticLaunchPass> {
  using Base::Base;
  void runOnOperation() override {
    OpBuilder b(&getContext());
    getOperation().walk([&](gpu::GPUFuncOp fn) {
      if (!fn.isKernel() || fn.getBody().empty())
        return;
      Block &entry = fn.getBody().front();
      // (Idempotent: a kernel that already opens with the wait is left.)
      if (auto first = dyn_cast<NVVM::GriddepcontrolOp>(entry.front());
          first && first.getKind() == NVVM::GridDepActionKind::wait)
        return;
      b.setInsertionPointToStart(&entry);
      Location loc = fn.getLoc();
      NVVM::GriddepcontrolOp::create(b, loc, NVVM::GridDepActionKind::wait);
      NVVM::GriddepcontrolOp::create(b, loc,
                                     NVVM::GridDepActionKind::launch_dependents);
    });
  }
};
} // namespace
