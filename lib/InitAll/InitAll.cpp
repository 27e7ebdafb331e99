//===- InitAll.cpp - Register everything moe tools need --------------------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/InitAll.h"

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Parallel/Passes.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Transforms/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/InitAllTranslations.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

void mlir::moe::registerAllDialects(DialectRegistry &registry) {
  registry.insert<MoEDialect>();
  // The tools link libMLIR.so whole, so offering every upstream dialect costs
  // nothing and lets moe-opt run any upstream pipeline on moe programs.
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary serializes kernels through the LLVM IR translation.
  mlir::registerAllToLLVMIRTranslations(registry);
}

void mlir::moe::registerAllPasses() {
  mlir::registerAllPasses();
  mlir::moe::registerMoEPasses();
  mlir::moe::registerMoEConversionPasses();
  mlir::moe::registerPipelines();
  mlir::moe::registerMoETransformsPasses();
  mlir::moe::registerMoEParallelPasses();
}

void mlir::moe::registerAllTranslations() {
  mlir::registerAllTranslations();
}
