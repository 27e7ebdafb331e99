//===- ObjectEmitter.h - LLVM dialect module to a native object --*- C++ -*-===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TARGET_OBJECTEMITTER_H
#define MOE_TARGET_OBJECTEMITTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

#include <string>

namespace mlir::moe {

struct ObjectOptions {
  /// Target CPU: "native" (the build machine), or an LLVM CPU name such as
  /// "x86-64-v3" for executables that run on other machines.
  std::string cpu = "native";
  unsigned optLevel = 3;
};

/// Translates `module` (LLVM dialect) to LLVM IR, optimizes it and writes it
/// to `path` as LLVM IR text (`emitLLVMIR`) or a native object file. On
/// failure, `error` says what went wrong and nothing is left at `path`.
LogicalResult emitObject(ModuleOp module, StringRef path,
                         const ObjectOptions &options, bool emitLLVMIR,
                         std::string &error);

} // namespace mlir::moe

#endif // MOE_TARGET_OBJECTEMITTER_H
