//===- mlir-fuzzer.cpp - libFuzzer target: parse, verify, lower moe IR -----===//
//
// Part of moe-compiler. Feeds arbitrary text to the parser with every dialect
// moe-opt registers, verifies what parses, and runs the start of the CPU
// pipeline (the layers outlined and merged, decomposition and
// convert-moe-to-linalg) on what verifies. Any crash, assertion or sanitizer
// report is a bug: bad IR must end in a diagnostic.
//
//===----------------------------------------------------------------------===//

#include "moe/InitAll.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Support/InputLimits.h"
#include "moe/Transforms/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;

static MLIRContext &context() {
  static MLIRContext *ctx = [] {
    DialectRegistry registry;
    moe::registerAllDialects(registry);
    auto *c = new MLIRContext(registry, MLIRContext::Threading::DISABLED);
    c->loadAllAvailableDialects();
    return c;
  }();
  return *ctx;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  MLIRContext &ctx = context();
  ScopedDiagnosticHandler quiet(&ctx, [](Diagnostic &) { return success(); });
  // The MLIR lexer relies on a NUL after the buffer, as files read by the
  // tools have: copy the input into such a buffer.
  StringRef text(reinterpret_cast<const char *>(data), size);
  // The tools refuse what the upstream parser cannot survive (see
  // InputLimits.h); the fuzzer tests what they accept.
  if (!moe::checkNestingDepth(text).empty())
    return 0;
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(text),
                               llvm::SMLoc());
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &ctx);
  if (!module || failed(verify(*module)))
    return 0;
  PassManager pm(&ctx);
  pm.addPass(moe::createOutlineLayers());
  pm.addPass(moe::createMergeEqualFunctions());
  moe::buildMoEToLinalgPipeline(pm);
  (void)pm.run(*module);
  return 0;
}
