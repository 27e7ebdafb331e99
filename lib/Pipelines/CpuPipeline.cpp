//===- CpuPipeline.cpp - moe to the LLVM dialect for CPUs ------------------===//
//
// Part of moe-compiler.
//
// Upstream passes only, in the order that keeps bufferization in place:
// no CSE before one-shot-bufferize (it merges equal init tensors, which then
// need copies), and a CSE + canonicalize after it to fold the self-copies of
// in-place slices.
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/Pipelines.h"

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void mlir::moe::buildMoEToLinalgPipeline(OpPassManager &pm) {
  pm.addPass(moe::createMoEDecomposeLayer());
  pm.addPass(moe::createConvertMoEToLinalg());
  pm.addPass(createCanonicalizerPass());
}

void mlir::moe::buildCpuPipeline(OpPassManager &pm) {
  buildMoEToLinalgPipeline(pm);

  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  bufferization::BufferResultsToOutParamsPassOptions outParams;
  outParams.modifyPublicFunctions = true;
  outParams.hoistStaticAllocs = true;
  pm.addPass(bufferization::createBufferResultsToOutParamsPass(outParams));
  pm.addPass(createCSEPass());
  pm.addPass(createCanonicalizerPass());
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);

  pm.addPass(moe::createCpuMatmulLoopOrder());
  pm.addPass(createConvertLinalgToLoopsPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addPass(arith::createArithExpandOpsPass(expand));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  ConvertFuncToLLVMPassOptions funcOptions;
  funcOptions.useBarePtrCallConv = true;
  pm.addPass(createConvertFuncToLLVMPass(funcOptions));
  pm.addPass(createConvertToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

void mlir::moe::registerPipelines() {
  PassPipelineRegistration<>(
      "moe-to-linalg-pipeline",
      "Decompose moe.layer and lower the moe primitives to linalg on tensors",
      buildMoEToLinalgPipeline);
  PassPipelineRegistration<>(
      "moe-cpu-pipeline",
      "Lower a moe program to the LLVM dialect for the CPU (bare-pointer "
      "calling convention, results as out-parameters)",
      buildCpuPipeline);
}
