//===- MoEToLinalg.h - Lower moe primitives to linalg -----------*- C++ -*-===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H
#define MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H

namespace mlir {
class RewritePatternSet;
namespace moe {

/// moe.experts and moe.mlp.
void populateFfnToLinalgPatterns(RewritePatternSet &patterns);
/// moe.router, moe.dispatch and moe.combine.
void populateRoutingToLinalgPatterns(RewritePatternSet &patterns);
/// moe.embedding, moe.rms_norm and moe.layer_norm.
void populateDenseToLinalgPatterns(RewritePatternSet &patterns);

} // namespace moe
} // namespace mlir

#endif // MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H
