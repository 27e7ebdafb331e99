//===- DenseToGPU.cpp - The dense parts of a model on the GPU -------------===//
//
// Part of moe-compiler.
//
// A whole model's dense parts (token embedding, RMSNorm, attention with its
// KV cache, residual adds, the LM head) become calls to private helpers, as
// moe.experts and moe.layer do (ExpertsToGPU.cpp, LayerToGPU.cpp), so that
// bufferization and deallocation run around them. After bufferization,
// -moe-materialize-gpu-experts moves every buffer that only GPU helpers
// touch to the device and gives each helper its kernels:
//
//   embedding     gather kernel (ids uploaded: the generator writes them)
//   position_embedding  the same for learned positions (GPT): the kernel
//                 computes row s T + t's id, positions[s] + t
//   rms_norm      one block per row
//   layer_norm    one block per row (mean, then squared deviations)
//   mlp           up (and gate) projections, the activation, the down
//                 projection: dense GEMVs or tensor-core GEMMs
//   add           elementwise, rounded once
//   matmul        dense GEMV (few rows) or tensor-core GEMM, then rounding
//   attention     q, k, v projections (+ bias, + q/k RMSNorm), RoPE of q and
//                 of k straight into the key cache at the position, v into
//                 the value cache, attention (a block per token and head),
//                 the output projection
//   mla_attention DeepSeek's latent attention: the projections and norms,
//                 a kernel each assembling the heads' queries and keys
//                 with their rotary parts, attention (a block per token and
//                 head), the output projection
//
// The positions are uploaded and the kernels read them. The caches
// are copied from the step's input to its output on the device; the
// generator hands both as one buffer, and the runtime skips a copy onto
// itself, so a decoding step moves no cache rows.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToGPU/GpuHelpers.h"
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Target/CUDA/DenseKernels.h"
#include "moe/Target/CUDA/ExpertKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinOps.h"

#include <cmath>

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOEDENSETOGPUCALL
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {
constexpr StringLiteral kDenseAttrsAttr = "moe.gpu_dense_attrs";

struct ConvertMoEDenseToGpuCallPass
    : mlir::moe::impl::ConvertMoEDenseToGpuCallBase<
          ConvertMoEDenseToGpuCallPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (report)
      module.walk([&](Operation *op) {
        if (!isa<EmbeddingOp, RmsNormOp, LayerNormOp, AttentionOp,
                 CrossAttentionOp, MlaAttentionOp, MlpOp>(op))
          return;
        std::string why = whyNotGpuDense(op);
        InFlightDiagnostic remark = op->emitRemark()
                                    << "'" << op->getName() << "' runs on the ";
        if (why.empty())
          remark << "GPU";
        else
          remark << "host: " << why;
      });
    SmallVector<Operation *> ops;
    module.walk([&](Operation *op) {
      if (isa<EmbeddingOp, RmsNormOp, LayerNormOp, MlpOp, AttentionOp,
              MlaAttentionOp, linalg::GenericOp>(op) &&
          op->getParentOfType<func::FuncOp>() && whyNotGpuDense(op).empty())
        ops.push_back(op);
    });
    unsigned counter = 0;
    OpBuilder b(module.getContext());
    for (Operation *op : ops) {
      StringRef kind;
      SmallVector<Value> operands(op->getOperands());
      Operation *replaced = op;
      DictionaryAttr attrs = op->getAttrDictionary();
      Operation *positionIds = nullptr;
      if (auto emb = dyn_cast<EmbeddingOp>(op)) {
        kind = "embedding";
        // Learned positions: the kernel computes the ids from the
        // positions, so no host loop runs before it (GPT).
        if (Value position = learnedPositionsOf(emb)) {
          kind = "position_embedding";
          positionIds = emb.getIds().getDefiningOp();
          operands = {position, emb.getTable()};
        }
      } else if (isa<RmsNormOp>(op)) {
        kind = "rms_norm";
      } else if (isa<LayerNormOp>(op)) {
        kind = "layer_norm";
      } else if (isa<MlpOp>(op)) {
        kind = "mlp";
      } else if (isa<AttentionOp>(op)) {
        kind = "attention";
      } else if (isa<MlaAttentionOp>(op)) {
        kind = "mla_attention";
      } else if (auto generic = dyn_cast<linalg::GenericOp>(op)) {
        if (isResidualAdd(generic)) {
          kind = "add";
          operands = generic.getDpsInputs();
        } else {
          linalg::MatmulOp matmul = gpuMatmulOf(generic);
          kind = "matmul";
          operands = matmul.getDpsInputs();
        }
        attrs = b.getDictionaryAttr({});
      }
      SmallVector<Type> inputTypes(ValueRange(operands).getTypes());
      SmallVector<Type> resultTypes(replaced->getResultTypes());
      func::FuncOp decl =
          declareGpuHelper(module, "__moe_gpu_dense_", counter, inputTypes,
                           resultTypes, op->getLoc());
      decl->setAttr(kGpuDenseAttr, b.getStringAttr(kind));
      decl->setAttr(kDenseAttrsAttr, attrs);
      b.setInsertionPoint(replaced);
      auto call = func::CallOp::create(b, op->getLoc(), decl, operands);
      replaced->replaceAllUsesWith(call.getResults());
      Operation *matmul = kind == "matmul"
                              ? cast<linalg::GenericOp>(op)
                                    .getDpsInputs()[0]
                                    .getDefiningOp()
                              : nullptr;
      replaced->erase();
      // The ids' collapse, generic and its empty init, now unused.
      for (Operation *dead = positionIds; dead && dead->use_empty();) {
        Operation *next = dead->getNumOperands()
                              ? dead->getOperands().back().getDefiningOp()
                              : nullptr;
        dead->erase();
        dead = next;
      }
      // The projection's matmul and its fill have no other users.
      if (matmul) {
        Operation *fill = matmul->getOperand(2).getDefiningOp();
        matmul->erase();
        if (fill && fill->use_empty())
          fill->erase();
      }
    }
  }
};

/// Builds the host side of one dense helper.
class DenseBodyBuilder {
public:
  DenseBodyBuilder(OpBuilder &b, func::FuncOp fn, gpu::GPUModuleOp kernels,
                   ArrayRef<bool> deviceArgs, const DenseTuning &tuning)
      : b(b), fn(fn), kernels(kernels), deviceArgs(deviceArgs), tuning(tuning),
        loc(fn.getLoc()), h(b, loc), bf16(b.getBF16Type()),
        f32(b.getF32Type()) {}

  LogicalResult build() {
    FunctionType type = fn.getFunctionType();
    for (Type t : type.getInputs()) {
      auto m = dyn_cast<MemRefType>(t);
      if (!m || !m.hasStaticShape() || !m.getLayout().isIdentity())
        return fn.emitError() << "expected the bufferized GPU dense helper to "
                                 "take static identity-layout memrefs, got "
                              << type;
    }
    if (type.getNumResults() != 0)
      return fn.emitError() << "expected the GPU dense helper's results as "
                               "out-parameters";
    StringRef kind = fn->getAttrOfType<StringAttr>(kGpuDenseAttr).getValue();
    attrs = fn->getAttrOfType<DictionaryAttr>(kDenseAttrsAttr);
    entry = prepareHelperEntry(fn);
    b.setInsertionPointToStart(entry);
    LogicalResult result = failure();
    if (kind == "embedding")
      result = embedding();
    else if (kind == "position_embedding")
      result = positionEmbedding();
    else if (kind == "rms_norm")
      result = rmsNorm();
    else if (kind == "layer_norm")
      result = layerNorm();
    else if (kind == "mlp")
      result = mlp();
    else if (kind == "add")
      result = add();
    else if (kind == "matmul")
      result = matmul();
    else if (kind == "attention")
      result = attention();
    else if (kind == "mla_attention")
      result = mlaAttention();
    else
      return fn.emitError() << "unknown GPU dense helper kind '" << kind << "'";
    if (failed(result))
      return failure();
    h.freeAll();
    func::ReturnOp::create(b, loc);
    fn->removeAttr(kGpuDenseAttr);
    fn->removeAttr(kDenseAttrsAttr);
    return success();
  }

private:
  OpBuilder &b;
  func::FuncOp fn;
  gpu::GPUModuleOp kernels;
  ArrayRef<bool> deviceArgs;
  DenseTuning tuning;
  Location loc;
  HostBuilder h;
  Type bf16, f32;
  DictionaryAttr attrs;
  Block *entry = nullptr;

  Value arg(unsigned i) { return entry->getArgument(i); }
  unsigned numArgs() { return entry->getNumArguments(); }
  /// Argument i on the device (uploaded when the caller's is on the host).
  Value input(unsigned i) { return deviceArgs[i] ? arg(i) : h.upload(arg(i)); }
  /// Where to write out-parameter i: itself when it is on the device, else a
  /// device buffer copied to it by finish().
  Value output(unsigned i) {
    if (deviceArgs[i])
      return arg(i);
    auto t = cast<MemRefType>(arg(i).getType());
    Value d = h.alloc(t.getShape(), t.getElementType());
    pendingCopies.push_back({arg(i), d});
    return d;
  }
  SmallVector<std::pair<Value, Value>> pendingCopies;
  void finish() {
    for (auto [host, device] : pendingCopies)
      h.copy(host, device);
  }

  static int64_t dim(Value v, unsigned i) {
    return cast<MemRefType>(v.getType()).getDimSize(i);
  }

  gpu::GPUFuncOp kernel(StringRef name,
                        function_ref<gpu::GPUFuncOp()> build) {
    return getOrBuildKernel(kernels, name, build);
  }

  /// `v` [R, C] viewed as [R * C / width, width] (rows of one head).
  Value rowsOf(Value v, int64_t width) {
    auto t = cast<MemRefType>(v.getType());
    int64_t r = t.getDimSize(0), c = t.getDimSize(1);
    Value three = memref::ExpandShapeOp::create(
        b, loc, MemRefType::get({r, c / width, width}, t.getElementType()), v,
        ArrayRef<ReassociationIndices>{{0}, {1, 2}});
    return memref::CollapseShapeOp::create(
        b, loc, three, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
  }
  /// `v` [S, n, w] as [S, n * w].
  Value flatten(Value v) {
    return memref::CollapseShapeOp::create(
        b, loc, v, ArrayRef<ReassociationIndices>{{0}, {1, 2}});
  }

  /// round(x w (+ bias)) into `out` [T, M] bf16.
  void project(Value x, Value w, Value bias, Value out) {
    // The dense GEMV reads no offsets: any i32 buffer will do.
    Value acc = denseMatmulF32(b, h, kernels, x, w, h.alloc({1}, b.getI32Type()));
    int64_t elements = dim(out, 0) * dim(out, 1);
    Location kloc = kernels.getLoc();
    if (bias) {
      gpu::GPUFuncOp k = kernel("moe_round_bias_bf16", [&] {
        return buildRoundBiasKernel(b, kloc, kernels, "moe_round_bias_bf16",
                                    bf16);
      });
      h.launchElementwise(k, elements, {acc, bias, out});
      return;
    }
    gpu::GPUFuncOp k = kernel("round_bf16", [&] {
      return buildRoundKernel(b, kloc, kernels, "round_bf16", bf16);
    });
    h.launchRound(k, elements, {acc, out});
  }

  void rmsNormRows(Value x, Value w, Value out, double epsilon) {
    int64_t threads = normThreads(dim(x, 1));
    std::string name = "moe_rms_norm_bf16_t" + std::to_string(threads);
    gpu::GPUFuncOp k = kernel(name, [&] {
      return buildRmsNormKernel(b, kernels.getLoc(), kernels, name, bf16,
                                threads);
    });
    Value eps = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(float(epsilon)));
    h.launch(k, {dim(x, 0), 1, 1}, {threads, 1, 1}, {x, w, out, eps});
  }

  double epsilonAttr(StringRef name, double fallback) {
    auto a = attrs ? dyn_cast_or_null<FloatAttr>(attrs.get(name)) : FloatAttr();
    return a ? a.getValueAsDouble() : fallback;
  }

  LogicalResult embedding() {
    // (ids, table, out)
    Value ids = input(0), table = input(1), out = output(2);
    gpu::GPUFuncOp k = kernel("moe_embedding_bf16", [&] {
      return buildEmbeddingKernel(b, kernels.getLoc(), kernels,
                                  "moe_embedding_bf16", bf16);
    });
    h.launchElementwise(k, dim(out, 0) * dim(out, 1), {out, ids, table});
    finish();
    return success();
  }

  LogicalResult positionEmbedding() {
    // (positions [B], table, out [B*T, d]): the positions are read on the
    // host, uploaded.
    Value positions = input(0), table = input(1), out = output(2);
    int64_t T = dim(out, 0) / dim(arg(0), 0);
    gpu::GPUFuncOp k = kernel("moe_position_embedding_bf16", [&] {
      return buildEmbeddingKernel(b, kernels.getLoc(), kernels,
                                  "moe_position_embedding_bf16", bf16,
                                  /*learnedPositions=*/true);
    });
    h.launchElementwise(k, dim(out, 0) * dim(out, 1),
                        {out, positions, table, h.index(T)});
    finish();
    return success();
  }

  LogicalResult rmsNorm() {
    Value x = input(0), w = input(1), out = output(2);
    rmsNormRows(x, w, out, epsilonAttr("epsilon", 1e-6));
    finish();
    return success();
  }

  LogicalResult layerNorm() {
    // (x, weight, [bias,] out)
    bool bias = numArgs() == 4;
    Value x = input(0), w = input(1), bv = bias ? input(2) : Value(),
          out = output(bias ? 3 : 2);
    int64_t threads = normThreads(dim(x, 1));
    std::string name = std::string("moe_layer_norm_bf16_t") +
                       std::to_string(threads) + (bias ? "_bias" : "");
    gpu::GPUFuncOp k = kernel(name, [&] {
      return buildLayerNormKernel(b, kernels.getLoc(), kernels, name, bf16,
                                  threads, bias);
    });
    Value eps = arith::ConstantOp::create(
        b, loc, b.getF32FloatAttr(float(epsilonAttr("epsilon", 1e-5))));
    SmallVector<Value> args{x, w};
    if (bias)
      args.push_back(bv);
    args.append({out, eps});
    h.launch(k, {dim(x, 0), 1, 1}, {threads, 1, 1}, args);
    finish();
    return success();
  }

  /// A dense FFN (moe.mlp) with moe.experts' numerics: the up (and gate)
  /// projections in f32, the activation rounded, the down projection
  /// rounded; each projection the dense GEMV or tensor-core GEMM.
  LogicalResult mlp() {
    // (x, w_up, [w_gate,] w_down, out)
    bool gated = numArgs() == 5;
    Value x = input(0), up = input(1), gate = gated ? input(2) : Value(),
          down = input(gated ? 3 : 2), out = output(gated ? 4 : 3);
    auto act = dyn_cast_or_null<ActivationAttr>(attrs.get("activation"));
    if (!act)
      return fn.emitError() << "GPU dense MLP helper without its activation";
    int64_t rows = dim(x, 0), f = dim(up, 1);
    Value anyI32 = h.alloc({1}, b.getI32Type());
    Value hUp = denseMatmulF32(b, h, kernels, x, up, anyI32);
    Value hGate = gated ? denseMatmulF32(b, h, kernels, x, gate, anyI32)
                        : Value();
    std::string actName = expertActivationKernelName(act.getValue(), gated);
    gpu::GPUFuncOp activation = kernel(actName, [&] {
      return buildExpertActivationKernel(b, kernels.getLoc(), kernels, actName,
                                         act.getValue(), gated, bf16);
    });
    Value a = h.alloc({rows, f}, bf16);
    if (gated)
      h.launchElementwise(activation, rows * f, {hUp, hGate, a});
    else
      h.launchElementwise(activation, rows * f, {hUp, a});
    project(a, down, Value(), out);
    finish();
    return success();
  }

  LogicalResult add() {
    Value x = input(0), y = input(1), out = output(2);
    gpu::GPUFuncOp k = kernel("moe_add_bf16", [&] {
      return buildAddKernel(b, kernels.getLoc(), kernels, "moe_add_bf16", bf16);
    });
    h.launchElementwise(k, dim(out, 0) * dim(out, 1), {x, y, out});
    finish();
    return success();
  }

  LogicalResult matmul() {
    Value x = input(0), w = input(1), out = output(2);
    project(x, w, Value(), out);
    finish();
    return success();
  }

  /// The inverse frequencies of a rotary embedding of `width` dimensions
  /// and its cos/sin factor: computed as transformers does (in f32), unless
  /// the op gives its own (scaled RoPE).
  LogicalResult ropeFrequencies(int64_t width, SmallVector<float> &invFreq,
                                double &factor) {
    if (auto given =
            dyn_cast_or_null<DenseF32ArrayAttr>(attrs.get("rope_inv_freq"))) {
      invFreq.assign(given.asArrayRef().begin(), given.asArrayRef().end());
    } else {
      auto thetaAttr = dyn_cast_or_null<FloatAttr>(attrs.get("rope_theta"));
      float theta = float(thetaAttr ? thetaAttr.getValueAsDouble() : 10000.0);
      for (int64_t j = 0; j < width / 2; ++j)
        invFreq.push_back(1.0f /
                          std::pow(theta, float(2 * j) / float(width)));
    }
    auto factorAttr =
        dyn_cast_or_null<FloatAttr>(attrs.get("rope_attention_factor"));
    factor = factorAttr ? factorAttr.getValueAsDouble() : 1.0;
    if (int64_t(invFreq.size()) != width / 2)
      return fn.emitError() << "rope_inv_freq has " << invFreq.size()
                            << " entries, expected " << width / 2;
    return success();
  }
  /// A name suffix that tells rotary embeddings apart.
  static std::string ropeHash(ArrayRef<float> invFreq, double factor) {
    return llvm::utohexstr(uint64_t(llvm::hash_combine(
        llvm::hash_value(StringRef(
            reinterpret_cast<const char *>(invFreq.data()),
            invFreq.size() * sizeof(float))),
        llvm::bit_cast<uint64_t>(factor))));
  }

  /// The operands of a helper made from an op with optional operand
  /// segments, in the op's order: operand(s) is the value of segment s, or
  /// null where it is absent; firstOut the first out-parameter.
  struct Segments {
    SmallVector<int> index;
    unsigned firstOut = 0;
  };
  FailureOr<Segments> segmentsOf(int count) {
    auto sizes = attrs ? dyn_cast_or_null<DenseI32ArrayAttr>(
                             attrs.get("operandSegmentSizes"))
                       : DenseI32ArrayAttr();
    if (!sizes || int(sizes.size()) != count)
      return fn.emitError() << "GPU helper without its operand segments";
    Segments seg;
    seg.index.assign(count, -1);
    int next = 0;
    for (int s = 0; s < count; ++s)
      if (sizes[s])
        seg.index[s] = next++;
    seg.firstOut = unsigned(next);
    return seg;
  }

  /// The attention kernel for `ao` at T rows per sequence (H heads, B
  /// sequences) and how to launch it. Many rows per sequence (prefill) take
  /// tensor cores, a block per 64 rows and head; otherwise clusters of
  /// blocks splitting the keys, a cluster per row, sequence and block of
  /// query heads (planAttention, or the tuning's choices). `suffix` ends the
  /// kernel's name.
  struct AttentionLaunch {
    gpu::GPUFuncOp kernel;
    SmallVector<int64_t, 3> grid, cluster;
    int64_t threads, sharedBytes;
    // With partial sums: the merge kernel, its grid and the floats of the
    // work buffer between them.
    gpu::GPUFuncOp merge;
    int64_t mergeBlocks = 0, workFloats = 0;
  };
  FailureOr<AttentionLaunch> attentionKernel(AttentionKernelOptions ao,
                                             int64_t T, int64_t H, int64_t B,
                                             StringRef suffix) {
    bool flash = usesFlashAttention(ao, T);
    bool mma = false;
    if (!flash) {
      // (auto, mma or cores: checked by the pass.)
      const std::string &kind = tuning.attentionKernel;
      if (!llvm::is_contained({0, 128, 256, 512}, tuning.attentionThreads))
        return fn.emitError() << "attention threads a block must be 128, 256 "
                                 "or 512, got "
                              << tuning.attentionThreads;
      if (tuning.attentionUnroll < 0 ||
          tuning.attentionUnroll > kAttentionMaxUnroll)
        return fn.emitError()
               << "attention rows in flight a lane must be 1 "
                  "to "
               << kAttentionMaxUnroll << ", got " << tuning.attentionUnroll;
      if (tuning.attentionHeads < 0 ||
          (tuning.attentionHeads && ao.group % tuning.attentionHeads))
        return fn.emitError()
               << "attention heads a block (" << tuning.attentionHeads
               << ") must divide the query heads of a kv head (" << ao.group
               << ")";
      if (tuning.attentionSplit < 0 ||
          tuning.attentionSplit > kAttentionMaxPartialSplit ||
          !llvm::isPowerOf2_64(std::max<int64_t>(tuning.attentionSplit, 1)))
        return fn.emitError() << "attention split must be a power of two up "
                                 "to "
                              << kAttentionMaxPartialSplit << ", got "
                              << tuning.attentionSplit;
      // Tensor cores where they can take the shape, unless a choice of the
      // CUDA-core kernel is given (auto) or that kernel is asked for.
      bool coresAsked = tuning.attentionUnroll || tuning.attentionThreads;
      if (kind == "mma" && coresAsked)
        return fn.emitError() << "attention unroll and threads are choices "
                                 "of the CUDA-core kernel, not of the "
                                 "tensor-core one";
      if (kind == "mma" || (kind == "auto" && !coresAsked &&
                            !tuning.attentionHeads && !tuning.attentionSplit)) {
        AttentionKernelOptions m = planAttentionMma(
            ao, T, H, B, tuning.attentionHeads, tuning.attentionSplit);
        std::string why = whyNotAttentionMma(m);
        if (why.empty() &&
            (kind == "mma" || m.heads >= kAttentionMmaMinHeads)) {
          ao = m;
          mma = true;
        } else if (kind == "mma") {
          return fn.emitError()
                 << "the tensor-core decoding attention cannot take "
                 << ao.headDim << "/" << ao.valueDim << "-wide heads, "
                 << m.heads << " a block: " << why;
        }
      }
      if (!mma) {
        ao = planAttention(ao, T, H, B, tuning.attentionHeads,
                           tuning.attentionUnroll, tuning.attentionThreads,
                           tuning.attentionSplit);
        if (!ao.split)
          return fn.emitError() << "the decoding attention's scores of "
                                << ao.maxRows << " cache rows and " << ao.heads
                                << " heads a block do not fit shared memory";
      }
    }
    std::string name =
        std::string(flash ? "moe_flash_attention"
                    : mma ? "moe_attention_mma"
                          : "moe_attention") +
        "_batched_bf16_hd" + std::to_string(ao.headDim) +
        (ao.valueDim != ao.headDim ? "_dv" + std::to_string(ao.valueDim) : "") +
        (flash ? "" : "_s" + std::to_string(ao.maxRows)) + "_g" +
        std::to_string(ao.group) +
        (flash ? ""
         : mma ? "_h" + std::to_string(ao.heads)
               : "_h" + std::to_string(ao.heads) + "_u" +
                     std::to_string(ao.unroll) +
                     (ao.threads != kAttentionThreads
                          ? "_t" + std::to_string(ao.threads)
                          : "")) +
        (!flash && ao.split > 1
             ? (ao.partials ? "_p" : "_c") + std::to_string(ao.split)
             : "") +
        suffix.str();
    gpu::GPUFuncOp k = kernel(name, [&] {
      return flash ? buildFlashAttentionKernel(b, kernels.getLoc(), kernels,
                                               name, ao)
             : mma
                 ? buildAttentionMmaKernel(b, kernels.getLoc(), kernels, name,
                                           ao)
                 : buildAttentionKernel(b, kernels.getLoc(), kernels, name, ao);
    });
    if (flash)
      return AttentionLaunch{k,
                             {(T + kFlashRows - 1) / kFlashRows, H, B},
                             {},
                             32 * kFlashWarps,
                             0};
    AttentionLaunch launch{k,
                           {T * (H / ao.heads) * B * ao.split, 1, 1},
                           {},
                           mma ? 32 * kFlashWarps : ao.threads,
                           mma ? 0 : attentionDynamicSharedBytes(ao)};
    if (ao.partials) {
      std::string mergeName =
          "moe_attention_merge_bf16_dv" + std::to_string(ao.valueDim) + "_h" +
          std::to_string(ao.heads) + "_p" + std::to_string(ao.split);
      launch.merge = kernel(mergeName, [&] {
        return buildAttentionMergeKernel(b, kernels.getLoc(), kernels,
                                         mergeName, ao);
      });
      int64_t items = T * (H / ao.heads) * B;
      launch.mergeBlocks = items * ao.heads;
      launch.workFloats = items * ao.split * attentionPartialFloats(ao);
    } else if (ao.split > 1) {
      launch.cluster = {ao.split, 1, 1};
    }
    return launch;
  }

  /// Launches `attn` on (q, keys, values, out, positions, T, S): the
  /// attention kernel, and with partial sums the merge after it.
  void launchAttention(const AttentionLaunch &attn, SmallVector<Value> args) {
    Value work;
    if (attn.merge) {
      work = h.alloc({attn.workFloats}, b.getF32Type());
      args.push_back(work);
    }
    h.launch(attn.kernel, attn.grid, {attn.threads, 1, 1}, args,
             attn.sharedBytes, attn.cluster);
    if (attn.merge)
      h.launch(attn.merge, {attn.mergeBlocks, 1, 1},
               {kAttentionMergeThreads, 1, 1}, {work, args[3], args[5]});
  }

  /// The kernel that writes a step's rows into a cache at their positions.
  gpu::GPUFuncOp storeRowsKernel() {
    return kernel("moe_store_rows_batched_bf16", [&] {
      return buildBatchedStoreRowsKernel(b, kernels.getLoc(), kernels,
                                         "moe_store_rows_batched_bf16", bf16);
    });
  }

  /// Multi-head latent attention (moe.mla_attention): the
  /// projections and RMSNorms as the dense kernels run them, the heads'
  /// queries and keys [nope | rope] assembled with their rotary parts by
  /// one kernel each, the new rows into the caches, the block-per-row
  /// attention (query and value head sizes differ), the output projection.
  LogicalResult mlaAttention() {
    constexpr int kSegments = 11;
    FailureOr<Segments> seg = segmentsOf(kSegments);
    if (failed(seg))
      return failure();
    auto operand = [&](int s) -> Value {
      return seg->index[s] < 0 ? Value() : input(unsigned(seg->index[s]));
    };
    unsigned firstOut = seg->firstOut;
    if (numArgs() != firstOut + 3)
      return fn.emitError() << "GPU latent attention helper with "
                            << numArgs() << " arguments, expected "
                            << firstOut + 3;
    auto intAttr = [&](StringRef name) {
      return cast<IntegerAttr>(attrs.get(name)).getInt();
    };
    int64_t H = intAttr("num_heads"), nope = intAttr("nope_dim"),
            rope = intAttr("rope_dim"), vd = intAttr("v_dim");
    Value x = operand(0), qA = operand(1), qANorm = operand(2),
          qB = operand(3), kvA = operand(4), kvANorm = operand(5),
          kvB = operand(6), wO = operand(7);
    Value keyIn = arg(unsigned(seg->index[8])),
          valueIn = arg(unsigned(seg->index[9])),
          position = arg(unsigned(seg->index[10]));
    if (deviceArgs[unsigned(seg->index[10])])
      return fn.emitError() << "the GPU latent attention reads its position "
                               "on the host";
    // B sequences of T rows each, caches of S rows each.
    int64_t B = dim(position, 0), rows = dim(x, 0), T = rows / B,
            S = dim(keyIn, 0) / B, lkv = dim(kvANorm, 0);
    int64_t qk = nope + rope;
    double eps = epsilonAttr("epsilon", 1e-6);

    // 1. Queries [B*T, H * (nope + rope)], before their rotary part.
    Value qIn = x;
    if (qA) {
      Value a = h.alloc({rows, dim(qA, 1)}, bf16);
      project(x, qA, Value(), a);
      qIn = h.alloc({rows, dim(qA, 1)}, bf16);
      rmsNormRows(a, qANorm, qIn, eps);
    }
    Value q = h.alloc({rows, H * qk}, bf16);
    project(qIn, qB, Value(), q);

    // 2. The latent [B*T, lkv] (normed) and the shared rotary key part, then
    // each head's key part without position and its value.
    Value kva = h.alloc({rows, lkv + rope}, bf16);
    project(x, kvA, Value(), kva);
    gpu::GPUFuncOp gather = kernel("moe_gather_columns_bf16", [&] {
      return buildGatherColumnsKernel(b, kernels.getLoc(), kernels,
                                      "moe_gather_columns_bf16", bf16);
    });
    Value latent = h.alloc({rows, lkv}, bf16), latentN = h.alloc({rows, lkv}, bf16);
    h.launchElementwise(gather, rows * lkv,
                        {latent, kva, h.index(lkv), h.index(lkv + rope),
                         h.index(0)});
    rmsNormRows(latent, kvANorm, latentN, eps);
    Value kv = h.alloc({rows, H * (nope + vd)}, bf16);
    project(latentN, kvB, Value(), kv);

    // 3. and 4. Queries and keys [nope | rope], the rotary parts embedded
    // at the step's position; the values; into the caches.
    SmallVector<float> invFreq;
    double factor;
    if (failed(ropeFrequencies(rope, invFreq, factor)))
      return failure();
    bool interleaved = attrs.get("interleaved") != nullptr;
    std::string headsName = "moe_mla_heads_bf16_n" + std::to_string(nope) +
                            (interleaved ? "_i_" : "_") +
                            ropeHash(invFreq, factor);
    gpu::GPUFuncOp heads = kernel(headsName, [&] {
      return buildMlaHeadsKernel(b, kernels.getLoc(), kernels, headsName,
                                 bf16, nope, invFreq, factor, interleaved);
    });
    Value positions = h.upload(position);
    Value tIdx = h.index(T), sIdx = h.index(S);
    Value qFull = h.alloc({rows, H * qk}, bf16), kFull = h.alloc({rows, H * qk}, bf16);
    h.launchElementwise(heads, rows * H * qk,
                        {qFull, q, q, positions, h.index(qk), h.index(qk),
                         h.index(nope), tIdx});
    h.launchElementwise(heads, rows * H * qk,
                        {kFull, kv, kva, positions, h.index(nope + vd),
                         h.index(0), h.index(lkv), tIdx});
    Value v = h.alloc({rows, H * vd}, bf16);
    h.launchElementwise(gather, rows * H * vd,
                        {v, kv, h.index(vd), h.index(nope + vd),
                         h.index(nope)});
    Value keys = output(firstOut + 1), values = output(firstOut + 2);
    h.copy(keys, keyIn);
    h.copy(values, valueIn);
    Value keys2 = flatten(keys), values2 = flatten(values);
    gpu::GPUFuncOp store = storeRowsKernel();
    h.launchElementwise(store, rows * H * qk, {kFull, keys2, positions, tIdx, sIdx});
    h.launchElementwise(store, rows * H * vd, {v, values2, positions, tIdx, sIdx});

    // 5. Attention; 6. the output projection.
    AttentionKernelOptions ao;
    ao.headDim = qk;
    ao.valueDim = vd;
    ao.maxRows = S;
    ao.group = 1;
    auto scaleAttr = dyn_cast_or_null<FloatAttr>(attrs.get("softmax_scale"));
    ao.scale = float(scaleAttr ? scaleAttr.getValueAsDouble()
                               : 1.0 / std::sqrt(double(qk)));
    // (The scale is the op's own: in the kernel's name.)
    FailureOr<AttentionLaunch> attn = attentionKernel(
        ao, T, H, B,
        "_scale" + llvm::utohexstr(llvm::bit_cast<uint32_t>(ao.scale)));
    if (failed(attn))
      return failure();
    Value o = h.alloc({rows, H * vd}, bf16);
    launchAttention(*attn, {qFull, keys2, values2, o, positions, tIdx, sIdx});
    project(o, wO, Value(), output(firstOut));
    finish();
    return success();
  }

  LogicalResult attention() {
    constexpr int kSegments = 15;
    FailureOr<Segments> seg = segmentsOf(kSegments);
    if (failed(seg))
      return failure();
    // (The last two, position_bias and key_length, are absent: such
    // attention stays on the host.)
    const SmallVector<int> &index = seg->index;
    if (index[13] >= 0 || index[14] >= 0)
      return fn.emitError() << "GPU attention helper with a position bias "
                               "or key lengths";
    auto operand = [&](int s) -> Value {
      return index[s] < 0 ? Value() : input(unsigned(index[s]));
    };
    unsigned firstOut = seg->firstOut;
    if (numArgs() != firstOut + 3)
      return fn.emitError() << "GPU attention helper with " << numArgs()
                            << " arguments, expected " << firstOut + 3;
    int64_t H = cast<IntegerAttr>(attrs.get("num_heads")).getInt();
    int64_t KV = cast<IntegerAttr>(attrs.get("num_kv_heads")).getInt();
    Value keyIn = arg(unsigned(index[10])), valueIn = arg(unsigned(index[11]));
    Value position = arg(unsigned(index[12]));

    // B sequences of T rows each, caches of S rows each.
    Value x = operand(0);
    int64_t rows = dim(x, 0), B = dim(position, 0);
    int64_t T = rows / B, S = dim(keyIn, 0) / B, hd = dim(keyIn, 2);
    Value q = h.alloc({rows, H * hd}, bf16), k = h.alloc({rows, KV * hd}, bf16),
          v = h.alloc({rows, KV * hd}, bf16);
    project(x, operand(1), operand(5), q);
    project(x, operand(2), operand(6), k);
    project(x, operand(3), operand(7), v);
    if (Value qNorm = operand(8)) {
      Value kNorm = operand(9);
      double eps = epsilonAttr("qk_norm_epsilon", 1e-6);
      bool whole = dim(qNorm, 0) != hd; // OLMoE: the whole projection
      Value qn = h.alloc({rows, H * hd}, bf16),
            kn = h.alloc({rows, KV * hd}, bf16);
      if (whole) {
        rmsNormRows(q, qNorm, qn, eps);
        rmsNormRows(k, kNorm, kn, eps);
      } else {
        rmsNormRows(rowsOf(q, hd), qNorm, rowsOf(qn, hd), eps);
        rmsNormRows(rowsOf(k, hd), kNorm, rowsOf(kn, hd), eps);
      }
      q = qn;
      k = kn;
    }

    // The positions are on the host: uploaded.
    if (deviceArgs[unsigned(index[12])])
      return fn.emitError() << "the GPU attention reads its position on the "
                               "host";
    Value c0 = h.index(0);

    // The caches: the step's input, then the new rows.
    Value keys = output(firstOut + 1), values = output(firstOut + 2);
    h.copy(keys, keyIn);
    h.copy(values, valueIn);

    SmallVector<float> invFreq;
    double factor;
    if (failed(ropeFrequencies(hd, invFreq, factor)))
      return failure();
    std::string ropeName = "moe_rope_bf16_" + ropeHash(invFreq, factor);
    Value qr = h.alloc({rows, H * hd}, bf16);
    Value keys2 = flatten(keys), values2 = flatten(values);
    AttentionKernelOptions ao;
    ao.headDim = hd;
    ao.valueDim = hd;
    ao.maxRows = S;
    ao.group = H / KV;
    ao.scale = float(1.0 / std::sqrt(double(hd)));
    FailureOr<AttentionLaunch> attn = attentionKernel(ao, T, H, B, "");
    if (failed(attn))
      return failure();
    Value o = h.alloc({rows, H * hd}, bf16);
    Value positions = h.upload(position);
    std::string batchedRope = "moe_rope_batched" + ropeName.substr(8);
    gpu::GPUFuncOp brope = kernel(batchedRope, [&] {
      return buildBatchedRopeKernel(b, kernels.getLoc(), kernels, batchedRope,
                                    bf16, invFreq, factor);
    });
    Value tIdx = h.index(T), sIdx = h.index(S), one = h.index(1);
    h.launchElementwise(brope, rows * H * hd,
                        {q, qr, positions, tIdx, tIdx, c0});
    h.launchElementwise(brope, rows * KV * hd,
                        {k, keys2, positions, tIdx, sIdx, one});
    h.launchElementwise(storeRowsKernel(), rows * KV * hd,
                        {v, values2, positions, tIdx, sIdx});
    launchAttention(*attn, {qr, keys2, values2, o, positions, tIdx, sIdx});
    project(o, operand(4), Value(), output(firstOut));
    finish();
    return success();
  }
};
} // namespace

LogicalResult mlir::moe::buildGpuDenseBody(OpBuilder &b, func::FuncOp fn,
                                           gpu::GPUModuleOp kernels,
                                           ArrayRef<bool> deviceArgs,
                                           const DenseTuning &tuning) {
  return DenseBodyBuilder(b, fn, kernels, deviceArgs, tuning).build();
}
