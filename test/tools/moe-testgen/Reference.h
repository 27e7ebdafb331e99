//===- Reference.h - Straightforward C++ reference of a MoE layer -*- C++ -*-===//
//
// Part of moe-compiler's test suite. An independent implementation of the
// moe.layer semantics (see MoEOps.td) with plain loops, used to check the
// compiled executables. It rounds to the layer's element type at the same
// points as the compiler (hidden activations, branch outputs, the result) and
// accumulates in f32 in the same order, so that routing decisions agree.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TEST_TOOLS_MOETESTGEN_REFERENCE_H
#define MOE_TEST_TOOLS_MOETESTGEN_REFERENCE_H

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace moe_ref {

enum class DType { F32, F16, BF16 };
enum class Act { Relu, Gelu, GeluTanh, Silu };

struct LayerConfig {
  int64_t tokens = 16, hidden = 32, ffn = 48, experts = 8, topK = 2;
  DType dtype = DType::F32;
  bool sigmoid = false, scoreAfterTopk = false, renormalize = false;
  double scaling = 1.0;
  std::optional<double> capacityFactor;
  int64_t minCapacity = 0;
  bool dropByScore = false;
  int64_t nGroup = 0, topkGroup = 0; // 0: no group limit
  bool groupTop2Sum = false;
  bool bias = false;
  Act act = Act::Silu;
  bool gated = true;
  int64_t sharedFfn = 0; // 0: no shared expert
  bool sharedGated = false, sharedCoef = false;
  int64_t mlpFfn = 0; // 0: no PR-MoE residual MLP
  bool mlpCoef = false;
};

/// Tensors by name, as f32 values already representable in the dtype.
using Tensors = std::map<std::string, std::vector<float>>;

/// Rounds `v` to `t` (round to nearest even) and back to f32.
float roundTo(DType t, float v);

/// The names and shapes of the layer's weights (in moe.layer operand order)
/// and of its input "x".
std::vector<std::pair<std::string, std::vector<int64_t>>>
layerTensors(const LayerConfig &c);

/// Routing of every token: expert ids (-1 when dropped) and weights, [T, k].
void referenceRouter(const LayerConfig &c, const Tensors &t,
                     std::vector<int32_t> &ids, std::vector<float> &weights);

/// The layer's output [T, d], rounded to the dtype.
std::vector<float> referenceLayer(const LayerConfig &c, const Tensors &t);

/// The moe.layer function for `c`, with named entry arguments.
std::string layerMlir(const LayerConfig &c);

} // namespace moe_ref

#endif // MOE_TEST_TOOLS_MOETESTGEN_REFERENCE_H
