//===- hf-import-fuzzer.cpp - libFuzzer target: Hugging Face importer -----===//
//
// Part of moe-compiler. The input is config.json text, optionally followed by
// a NUL byte and model.safetensors.index.json text (empty: no index), and
// optionally another NUL and a safetensors header. The importer must either
// build a module that verifies and survives a print/parse round trip, or fail
// with a message; never crash, assert or read out of bounds.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Import/HFImport.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

using namespace mlir;

static MLIRContext &context() {
  static MLIRContext *ctx = [] {
    // Only what the importer emits: the fuzzer links no pipeline code.
    DialectRegistry registry;
    registry.insert<moe::MoEDialect, func::FuncDialect>();
    auto *c = new MLIRContext(registry, MLIRContext::Threading::DISABLED);
    c->loadAllAvailableDialects();
    return c;
  }();
  return *ctx;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  MLIRContext &ctx = context();
  ScopedDiagnosticHandler quiet(&ctx, [](Diagnostic &) { return success(); });
  llvm::StringRef input(reinterpret_cast<const char *>(data), size);
  auto [config, rest] = input.split('\0');
  auto [index, header] = rest.split('\0');
  bool hasIndex = !index.empty();
  std::vector<moe::HFSafetensorsHeader> headers;
  if (rest.size() != index.size())
    headers.push_back({"model.safetensors", header.str()});
  moe::HFImportOptions options;
  options.tokens = 1 + int64_t(size % 7);
  std::string error;
  OwningOpRef<ModuleOp> module = moe::importHFConfig(
      config, hasIndex ? std::optional<llvm::StringRef>(index) : std::nullopt,
      headers, &ctx, options, error);
  if (!module) {
    if (error.empty())
      std::abort(); // a failure must say why
    return 0;
  }
  if (!error.empty() || failed(verify(*module)))
    std::abort();
  // What the importer writes, moe-opt must read back.
  std::string text;
  llvm::raw_string_ostream os(text);
  module->print(os);
  OwningOpRef<ModuleOp> reparsed = parseSourceString<ModuleOp>(text, &ctx);
  if (!reparsed || failed(verify(*reparsed)))
    std::abort();
  return 0;
}
