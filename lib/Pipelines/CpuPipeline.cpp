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
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/FileSystem.h"

#include <cstdlib>
#include <string>

using namespace mlir;

void mlir::moe::buildMoEToLinalgPipeline(OpPassManager &pm) {
  pm.addPass(moe::createMoEDecomposeLayer());
  pm.addPass(moe::createConvertMoEToLinalg());
  pm.addPass(createCanonicalizerPass());
}

namespace {
/// Shared by both targets: moe on tensors to bufferized loops, deallocation
/// included; `gpu` also routes the bf16 experts to the GPU helpers.
void buildToLoops(OpPassManager &pm,
                  const moe::CudaPipelineOptions *gpu = nullptr) {
  if (gpu) {
    moe::ConvertMoELayerToGpuCallOptions layer;
    layer.path = gpu->path;
    layer.mmaTileM = gpu->mmaTileM;
    layer.mmaWarps = gpu->mmaWarps;
    layer.mmaStages = gpu->mmaStages;
    layer.wgmmaColumns = gpu->wgmmaColumns;
    layer.wgmmaStages = gpu->wgmmaStages;
    layer.wgmmaRows = gpu->wgmmaRows;
    layer.wgmmaTileStep = gpu->wgmmaTileStep;
    layer.gemvLanes = gpu->gemvLanes;
    layer.gemvUnroll = gpu->gemvUnroll;
    layer.fusedGate = gpu->fusedGate;
    layer.ffnColumns = gpu->ffnColumns;
    layer.stageDown = gpu->stageDown;
    layer.combine = gpu->combine;
    layer.wgmmaGroupTiles = gpu->wgmmaGroupTiles;
    layer.downKRuns = gpu->downKRuns;
    layer.wgmmaL2Prefetch = gpu->wgmmaL2Prefetch;
    layer.routerSplitK = gpu->routerSplitK;
    layer.fusedRoute = gpu->fusedRoute;
    layer.wgmmaPersistent = gpu->wgmmaPersistent;
    layer.wgmmaQueue = gpu->wgmmaQueue;
    layer.decodeKernel = gpu->decodeKernel;
    layer.decodeDense = gpu->decodeDense;
    layer.prefetchRouter = gpu->prefetchRouter;
    layer.denseSplitK = gpu->denseSplitK;
    layer.weightsEvictFirst = gpu->weightsEvictFirst;
    layer.wgmmaWideStores = gpu->wgmmaWideStores;
    layer.wgmmaKOrder = gpu->wgmmaKOrder;
    layer.wgmmaBand = gpu->wgmmaBand;
    layer.decodeStages = gpu->decodeStages;
    layer.decodeGridShare = gpu->decodeGridShare;
    layer.densePath = gpu->densePath;
    layer.decodeOverlap = gpu->decodeOverlap;
    layer.report = gpu->report;
    pm.addPass(moe::createConvertMoELayerToGpuCall(layer));
    moe::ConvertMoEDenseToGpuCallOptions dense;
    dense.report = gpu->report;
    pm.addPass(moe::createConvertMoEDenseToGpuCall(dense));
  } else {
    // A whole model's alike layers lowered and compiled once, not once a
    // layer.
    pm.addPass(moe::createOutlineLayers());
    pm.addPass(moe::createMergeEqualFunctions());
  }
  pm.addPass(moe::createMoEDecomposeLayer());
  pm.addPass(moe::createConvertMoECommToRuntime());
  if (gpu)
    pm.addPass(moe::createConvertMoEExpertsToGpuCall());
  pm.addPass(moe::createConvertMoEToLinalg());
  pm.addPass(createCanonicalizerPass());

  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  if (gpu)
    pm.addPass(moe::createMoEGpuHelperStubs());
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  if (gpu) {
    moe::MoEGpuHelperStubsOptions strip;
    strip.strip = true;
    pm.addPass(moe::createMoEGpuHelperStubs(strip));
  } else {
    // The KV caches the layers update in place are no results to copy.
    pm.addPass(moe::createDropEquivalentPrivateResults());
  }
  bufferization::BufferResultsToOutParamsPassOptions outParams;
  outParams.modifyPublicFunctions = true;
  outParams.hoistStaticAllocs = true;
  pm.addPass(bufferization::createBufferResultsToOutParamsPass(outParams));
  pm.addPass(createCSEPass());
  pm.addPass(createCanonicalizerPass());
  if (gpu) {
    moe::MoEMaterializeGpuExpertsOptions outParams;
    outParams.outParamsOnly = true;
    pm.addPass(moe::createMoEMaterializeGpuExperts(outParams));
  }
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  if (gpu) {
    moe::MoEMaterializeGpuExpertsOptions materialize;
    materialize.report = gpu->report;
    materialize.attentionHeads = gpu->attentionHeads;
    materialize.attentionUnroll = gpu->attentionUnroll;
    materialize.attentionThreads = gpu->attentionThreads;
    materialize.attentionSplit = gpu->attentionSplit;
    materialize.attentionKernel = gpu->attentionKernel;
    pm.addPass(moe::createMoEMaterializeGpuExperts(materialize));
  }

  pm.addPass(moe::createCpuMatmulLoopOrder());
  pm.addPass(createConvertLinalgToLoopsPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  if (!gpu) {
    // A whole model's loop nests, each a function of its own for LLVM.
    pm.addPass(moe::createCpuOutlineLoops());
  } else {
    // Each kernel may start while the one before it finishes (the runtime
    // launches with programmatic stream serialization).
    moe::GpuProgrammaticLaunchOptions launch;
    launch.early = gpu->earlyLaunch;
    pm.addPass(moe::createGpuProgrammaticLaunch(launch));
    // No kernel the compiler built has a collective operation under
    // thread-dependent control flow.
    pm.addPass(moe::createGpuCheckConvergence());
  }
  // Identical layers' outlined nests and GPU helpers' host code, once.
  pm.addPass(moe::createMergeEqualFunctions());
  pm.addPass(createSCFToControlFlowPass());
}

/// The CUDA toolkit that serializes kernels (ptxas) and provides libdevice
/// (expf, erff, ... in kernels): $CUDA_HOME, $CUDA_PATH, else
/// /usr/local/cuda. Explicit, so that a scrubbed environment (lit, CI)
/// compiles the same as a shell.
std::string cudaToolkitPath() {
  for (const char *var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char *v = std::getenv(var); v && *v)
      return v;
  return "/usr/local/cuda";
}

void buildToLLVM(OpPassManager &pm, bool gpu, StringRef format = "fatbin") {
  std::string toolkit = gpu ? cudaToolkitPath() : "";
  if (gpu) {
    // Host gpu ops lower to mgpu* calls in their async form.
    pm.addNestedPass<func::FuncOp>(createGpuAsyncRegionPass());
    GpuNVVMAttachTargetOptions target;
    // sm_90a: the wgmma expert path needs the architecture-specific
    // features (the cubin runs on sm_90 GPUs only, as it would anyway).
    target.chip = "sm_90a";
    // PTX 8.3: red.global.add.v2/.v4.f32 (8.1), fence.proxy.tensormap (8.3).
    target.features = "+ptx83";
    std::string libdevice = toolkit + "/nvvm/libdevice/libdevice.10.bc";
    if (llvm::sys::fs::exists(libdevice))
      target.linkLibs.push_back(libdevice);
    pm.addPass(createGpuNVVMAttachTarget(target));
    pm.addNestedPass<gpu::GPUModuleOp>(createConvertNVGPUToNVVMPass());
    pm.addNestedPass<gpu::GPUModuleOp>(createConvertGpuOpsToNVVMOps());
    pm.addNestedPass<gpu::GPUModuleOp>(moe::createGpuExternDynamicShared());
  }
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addPass(arith::createArithExpandOpsPass(expand));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  ConvertFuncToLLVMPassOptions funcOptions;
  funcOptions.useBarePtrCallConv = true;
  pm.addPass(createConvertFuncToLLVMPass(funcOptions));
  if (gpu)
    pm.addPass(createGpuToLLVMConversionPass());
  pm.addPass(createConvertToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
  if (gpu) {
    GpuModuleToBinaryPassOptions binary;
    binary.toolkitPath = toolkit;
    binary.compilationTarget = format.str();
    pm.addPass(createGpuModuleToBinaryPass(binary));
  }
}
} // namespace

void mlir::moe::buildCpuPipeline(OpPassManager &pm) {
  buildToLoops(pm);
  buildToLLVM(pm, /*gpu=*/false);
}

void mlir::moe::buildCudaPipeline(OpPassManager &pm,
                                  const CudaPipelineOptions &options) {
  buildToLoops(pm, &options);
  buildToLLVM(pm, /*gpu=*/true, options.format);
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
  PassPipelineRegistration<CudaPipelineOptions>(
      "moe-cuda-pipeline",
      "Lower a moe program for CUDA: bf16 expert FFNs as sm_90a kernels, the "
      "rest for the CPU; expert weights are device pointers",
      [](OpPassManager &pm, const CudaPipelineOptions &options) {
        buildCudaPipeline(pm, options);
      });
}
