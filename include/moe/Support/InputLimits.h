//===- InputLimits.h - Reject inputs the MLIR parser cannot survive --*- C++ -*-===//
//
// Part of moe-compiler. MLIR's parser recurses once per nested bracket with
// no limit, so a few thousand '(' overflow the stack (found by the fuzzer).
// The tools check the nesting depth before parsing and answer with an error.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_SUPPORT_INPUTLIMITS_H
#define MOE_SUPPORT_INPUTLIMITS_H

#include "llvm/ADT/StringRef.h"

#include <string>

namespace mlir::moe {

/// The deepest bracket nesting the tools accept; real programs stay far below.
constexpr unsigned kMaxNestingDepth = 256;

/// Returns an error message when `text` nests (, [, { or < deeper than
/// `limit` outside string literals and comments; an empty string otherwise.
std::string checkNestingDepth(llvm::StringRef text,
                              unsigned limit = kMaxNestingDepth);

} // namespace mlir::moe

#endif // MOE_SUPPORT_INPUTLIMITS_H
