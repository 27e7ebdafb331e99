//===- InitAll.h - Register everything moe tools need -----------*- C++ -*-===//
//
// Part of moe-compiler. The one place that lists dialects, passes and
// translations, so that tools stay thin.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_INITALL_H
#define MOE_INITALL_H

namespace mlir {
class DialectRegistry;
namespace moe {

/// Adds the moe dialect and the upstream dialects (with their interface
/// implementations) that moe pipelines produce or consume.
void registerAllDialects(DialectRegistry &registry);

/// Registers moe passes and the upstream passes and pipelines moe-opt offers.
void registerAllPasses();

/// Registers the translations moe-translate offers.
void registerAllTranslations();

} // namespace moe
} // namespace mlir

#endif // MOE_INITALL_H
