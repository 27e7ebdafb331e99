//===- GpuCheckConvergence.cpp - Collectives under uniform control --------===//
//
// Part of moe-compiler.
//
// A conservative divergence analysis of the kernels the compiler builds:
// every warp- or block-collective operation must sit under control flow
// that is uniform over the warp (shuffles, ldmatrix, mma.sync) or over the
// block (barriers). See Passes.td.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Matchers.h"

namespace mlir::moe {
#define GEN_PASS_DEF_GPUCHECKCONVERGENCE
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
/// How far a value is from being the same in every thread.
enum Divergence { Uniform = 0, WarpUniform = 1, Divergent = 2 };

class DivergenceAnalysis {
public:
  Divergence of(Value v) const {
    auto it = level.find(v);
    return it == level.end() ? Uniform : it->second;
  }

  void analyze(Region &region) {
    for (Block &block : region)
      for (Operation &op : block)
        visit(&op);
  }

private:
  /// Raises v to at least d; whether it changed.
  bool raise(Value v, Divergence d) {
    Divergence &l = level[v];
    if (d <= l)
      return false;
    l = d;
    return true;
  }

  Divergence maxOf(ValueRange values) const {
    Divergence d = Uniform;
    for (Value v : values)
      d = std::max(d, of(v));
    return d;
  }

  /// Whether `lhs` is the thread id in x and `rhs` a constant non-zero
  /// multiple of 32.
  static bool isThreadIdOverWarps(Value lhs, Value rhs) {
    auto tid = lhs.getDefiningOp<gpu::ThreadIdOp>();
    APInt c;
    return tid && tid.getDimension() == gpu::Dimension::x &&
           matchPattern(rhs, m_ConstantInt(&c)) && c.getZExtValue() &&
           c.getZExtValue() % 32 == 0;
  }

  void visit(Operation *op) {
    if (auto tid = dyn_cast<gpu::ThreadIdOp>(op)) {
      raise(tid.getResult(), Divergent);
      return;
    }
    // The thread id (x) over a multiple of the warp size is the warp's
    // index; compared with one (tid >= 256: the MMA warpgroups against the
    // producer), the same in every lane.
    using P = arith::CmpIPredicate;
    auto cmp = dyn_cast<arith::CmpIOp>(op);
    bool splitsAtWarps =
        cmp && llvm::is_contained({P::ult, P::uge, P::slt, P::sge},
                                  cmp.getPredicate());
    if ((isa<arith::DivUIOp>(op) || splitsAtWarps) &&
        isThreadIdOverWarps(op->getOperand(0), op->getOperand(1))) {
      raise(op->getResult(0), WarpUniform);
      return;
    }
    // Each thread gets its own old value.
    if (isa<memref::AtomicRMWOp, memref::GenericAtomicRMWOp>(op)) {
      for (Value r : op->getResults())
        raise(r, Divergent);
      return;
    }
    if (auto loop = dyn_cast<scf::ForOp>(op)) {
      visitFor(loop);
      return;
    }
    if (auto branch = dyn_cast<scf::IfOp>(op)) {
      analyze(branch.getThenRegion());
      analyze(branch.getElseRegion());
      Divergence d = of(branch.getCondition());
      for (Region *r : {&branch.getThenRegion(), &branch.getElseRegion()})
        if (!r->empty())
          d = std::max(d, maxOf(r->front().getTerminator()->getOperands()));
      for (Value v : branch.getResults())
        raise(v, d);
      return;
    }
    // Anything else: its results are as divergent as its operands (and as
    // whatever its regions compute, taken as a whole).
    Divergence d = maxOf(op->getOperands());
    for (Region &r : op->getRegions()) {
      for (Block &b : r)
        for (BlockArgument a : b.getArguments())
          raise(a, d);
      analyze(r);
      r.walk([&](Operation *inner) {
        if (inner->hasTrait<OpTrait::IsTerminator>())
          d = std::max(d, maxOf(inner->getOperands()));
      });
    }
    for (Value r : op->getResults())
      raise(r, d);
  }

  void visitFor(scf::ForOp loop) {
    Divergence control = maxOf({loop.getLowerBound(), loop.getUpperBound(),
                                loop.getStep()});
    raise(loop.getInductionVar(),
          std::max(of(loop.getLowerBound()), of(loop.getStep())));
    for (auto [arg, init] :
         llvm::zip(loop.getRegionIterArgs(), loop.getInitArgs()))
      raise(arg, of(init));
    // Until the iteration arguments stop rising (at most two steps each).
    for (int round = 0; round < 8; ++round) {
      analyze(loop.getRegion());
      bool changed = false;
      for (auto [arg, yielded] :
           llvm::zip(loop.getRegionIterArgs(),
                     loop.getBody()->getTerminator()->getOperands()))
        changed |= raise(arg, of(yielded));
      if (!changed)
        break;
    }
    for (auto [result, arg] :
         llvm::zip(loop.getResults(), loop.getRegionIterArgs()))
      raise(result, std::max(of(arg), control));
  }

  DenseMap<Value, Divergence> level;
};

/// The first enclosing condition or loop bound of `op` (inside `fn`) that is
/// more divergent than `allowed`, or null.
Operation *divergentControl(Operation *op, gpu::GPUFuncOp fn,
                            const DivergenceAnalysis &a, Divergence allowed,
                            Value &culprit) {
  for (Operation *p = op->getParentOp(); p && p != fn.getOperation();
       p = p->getParentOp()) {
    SmallVector<Value> controls;
    if (auto branch = dyn_cast<scf::IfOp>(p))
      controls.push_back(branch.getCondition());
    else if (auto loop = dyn_cast<scf::ForOp>(p))
      controls.append({loop.getLowerBound(), loop.getUpperBound(),
                       loop.getStep()});
    else if (isa<scf::WhileOp>(p))
      controls.append(p->getOperands().begin(), p->getOperands().end());
    for (Value c : controls)
      if (a.of(c) > allowed) {
        culprit = c;
        return p;
      }
  }
  return nullptr;
}

struct GpuCheckConvergencePass
    : mlir::moe::impl::GpuCheckConvergenceBase<GpuCheckConvergencePass> {
  void runOnOperation() override {
    bool failed = false;
    getOperation().walk([&](gpu::GPUFuncOp fn) {
      if (!fn.isKernel() || fn.getBody().empty())
        return;
      DivergenceAnalysis a;
      a.analyze(fn.getBody());
      fn.walk([&](Operation *op) {
        Divergence allowed;
        if (isa<gpu::BarrierOp>(op))
          allowed = Uniform;
        else if (isa<gpu::ShuffleOp, NVVM::ReduxOp, nvgpu::LdMatrixOp,
                     nvgpu::MmaSyncOp>(op))
          allowed = WarpUniform;
        else
          return;
        Value culprit;
        if (Operation *at = divergentControl(op, fn, a, allowed, culprit)) {
          InFlightDiagnostic diag =
              op->emitError()
              << "'" << op->getName() << "' in kernel '" << fn.getName()
              << "' runs under control flow that differs between the threads "
              << (allowed == Uniform ? "of a block" : "of a warp")
              << " (it can hang or read undefined values)";
          diag.attachNote(at->getLoc())
              << "the '" << at->getName() << "' whose condition or bound "
              << "depends on the thread id";
          if (Operation *def = culprit.getDefiningOp())
            diag.attachNote(def->getLoc()) << "the value: " << *def;
          failed = true;
        }
      });
    });
    if (failed)
      signalPassFailure();
  }
};
} // namespace
