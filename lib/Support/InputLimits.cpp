//===- InputLimits.cpp - Reject inputs the MLIR parser cannot survive ------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Support/InputLimits.h"

std::string mlir::moe::checkNestingDepth(llvm::StringRef text, unsigned limit) {
  unsigned depth = 0, line = 1;
  for (size_t i = 0, e = text.size(); i < e; ++i) {
    char c = text[i];
    switch (c) {
    case '\n':
      ++line;
      break;
    case '"': // skip a string literal, with escapes
      for (++i; i < e && text[i] != '"'; ++i) {
        if (text[i] == '\\')
          ++i;
        else if (text[i] == '\n')
          ++line;
      }
      break;
    case '/': // a // comment runs to the end of the line
      if (i + 1 < e && text[i + 1] == '/')
        while (i + 1 < e && text[i + 1] != '\n')
          ++i;
      break;
    case '(':
    case '[':
    case '{':
    case '<':
      if (++depth > limit)
        return "the input nests brackets more than " + std::to_string(limit) +
               " deep (line " + std::to_string(line) +
               "); the moe tools reject such input instead of overflowing "
               "the parser's stack";
      break;
    case ')':
    case ']':
    case '}':
      if (depth)
        --depth;
      break;
    case '>': // `->` is an arrow, not a closing bracket
      if (depth && !(i > 0 && text[i - 1] == '-'))
        --depth;
      break;
    default:
      break;
    }
  }
  return "";
}
