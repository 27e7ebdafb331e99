//===- GpuProgrammaticLaunch.cpp - Grid dependency control in kernels -----===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

namespace mlir::moe {
#define GEN_PASS_DEF_GPUPROGRAMMATICLAUNCH
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
/// Resident threads per SM on sm_90 (Hopper).
constexpr int64_t kMaxThreadsPerSm = 2048;

struct GpuProgrammaticLaunchPass
    : mlir::moe::impl::GpuProgrammaticLaunchBase<GpuProgrammaticLaunchPass> {
  using Base::Base;
  void runOnOperation() override {
    OpBuilder b(&getContext());
    getOperation().walk([&](gpu::GPUFuncOp fn) {
      if (!fn.isKernel() || fn.getBody().empty())
        return;
      Block &entry = fn.getBody().front();
      // A kernel that has a wait already places its own (idempotent; the
      // expert GEMVs load weights before theirs).
      bool placed = fn.walk([](NVVM::GriddepcontrolOp op) {
                        return op.getKind() == NVVM::GridDepActionKind::wait
                                   ? WalkResult::interrupt()
                                   : WalkResult::advance();
                      }).wasInterrupted();
      if (placed)
        return;
      b.setInsertionPointToStart(&entry);
      Location loc = fn.getLoc();
      NVVM::GriddepcontrolOp::create(b, loc, NVVM::GridDepActionKind::wait);
      if (!early)
        return;
      // Early only for grids of more than one wave (more blocks than the
      // SMs hold at kMaxThreadsPerSm threads each, the most any kernel
      // can): the next kernel's blocks then find room only as this grid's
      // last wave retires. A grid of one wave would leave them resident and
      // waiting beside it for its whole run (an early trigger in every
      // kernel made the 16-token Mixtral layer 16% slower on an H200).
      auto product = [&](auto makeDim) -> Value {
        Value v = makeDim(gpu::Dimension::x);
        for (gpu::Dimension d : {gpu::Dimension::y, gpu::Dimension::z})
          v = arith::MulIOp::create(b, loc, v, makeDim(d));
        return v;
      };
      Value blocks = product([&](gpu::Dimension d) -> Value {
        return gpu::GridDimOp::create(b, loc, d);
      });
      Value threads = product([&](gpu::Dimension d) -> Value {
        return gpu::BlockDimOp::create(b, loc, d);
      });
      Value sms = arith::IndexCastUIOp::create(
          b, loc, b.getIndexType(), NVVM::SmDimOp::create(b, loc, b.getI32Type()));
      Value perSm = arith::DivUIOp::create(
          b, loc, arith::ConstantIndexOp::create(b, loc, kMaxThreadsPerSm),
          threads);
      Value many = arith::CmpIOp::create(
          b, loc, arith::CmpIPredicate::ugt, blocks,
          arith::MulIOp::create(b, loc, sms, perSm));
      auto when = scf::IfOp::create(b, loc, many, /*withElseRegion=*/false);
      b.setInsertionPointToStart(&when.getThenRegion().front());
      NVVM::GriddepcontrolOp::create(b, loc,
                                     NVVM::GridDepActionKind::launch_dependents);
    });
  }
};
} // namespace
