//===- MoEBase.td - MoE dialect, enums and attributes ------*- tablegen -*-===//
//
// Part of moe-compiler. The `moe` dialect carries Mixture-of-Experts
// semantics on ranked tensors.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEBASE_TD
#define MOE_DIALECT_MOE_IR_MOEBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def MoE_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Mixture-of-Experts layers on ranked tensors";
  let description = [{
    The `moe` dialect describes the computation of a Mixture-of-Experts (MoE)
    layer at the level a model author thinks of it: a router that picks the
    top-k experts of every token, a dispatch that permutes tokens into
    expert-major order (the dense token-to-slot mapping of DeepSpeed-MoE rather
    than one-hot einsums), a grouped expert FFN, and a combine that undoes the
    permutation with the routing weights. `moe.layer` carries the whole layer,
    including shared experts and the PR-MoE residual MLP, and
    `-moe-decompose-layer` rewrites it into the primitives.

    Parallel layout is not a property of these ops: it is expressed with the
    upstream `shard` dialect.
  }];
  let dependentDialects = [
    "arith::ArithDialect", "linalg::LinalgDialect", "tensor::TensorDialect"
  ];
  let useDefaultAttributePrinterParser = 1;
  let hasCanonicalizer = 0;
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def MoE_ScoreFunc : I32EnumAttr<"ScoreFunc",
    "function that turns router logits into expert scores", [
  I32EnumAttrCase<"softmax", 0>,
  I32EnumAttrCase<"sigmoid", 1>
]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::moe";
}
def MoE_ScoreFuncAttr : EnumAttr<MoE_Dialect, MoE_ScoreFunc, "score_func"> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_Activation : I32EnumAttr<"Activation",
    "elementwise activation of an expert or MLP", [
  I32EnumAttrCase<"relu", 0>,
  I32EnumAttrCase<"gelu", 1>,       // exact, erf-based
  I32EnumAttrCase<"gelu_tanh", 2>,  // tanh approximation
  I32EnumAttrCase<"silu", 3>
]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::moe";
}
def MoE_ActivationAttr : EnumAttr<MoE_Dialect, MoE_Activation, "activation"> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_DropPolicy : I32EnumAttr<"DropPolicy",
    "which assignments an expert over capacity drops", [
  // Keep assignments in priority order: every token's first choice (in token
  // order) before any second choice, and so on (GShard / DeepSpeed-MoE).
  I32EnumAttrCase<"position", 0>,
  // Keep the assignments with the highest routing weight.
  I32EnumAttrCase<"score", 1>
]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::moe";
}
def MoE_DropPolicyAttr : EnumAttr<MoE_Dialect, MoE_DropPolicy, "drop_policy"> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_GroupScore : I32EnumAttr<"GroupScore",
    "how group-limited routing scores an expert group", [
  I32EnumAttrCase<"max", 0>,       // DeepSeek-V2
  I32EnumAttrCase<"top2_sum", 1>   // DeepSeek-V3
]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::moe";
}
def MoE_GroupScoreAttr : EnumAttr<MoE_Dialect, MoE_GroupScore, "group_score"> {
  let assemblyFormat = "`<` $value `>`";
}

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

def MoE_FloatElt : AnyTypeOf<[BF16, F16, F32]>;
def MoE_FloatTensor : RankedTensorOf<[BF16, F16, F32]>;
def MoE_IndexTensor : RankedTensorOf<[I32]>;

#endif // MOE_DIALECT_MOE_IR_MOEBASE_TD
