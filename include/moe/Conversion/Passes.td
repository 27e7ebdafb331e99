//===- Passes.td - moe conversion passes -------------------*- tablegen -*-===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PASSES_TD
#define MOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoEToLinalg : Pass<"convert-moe-to-linalg"> {
  let summary = "Lower moe primitives to linalg, tensor, scf, arith and math";
  let description = [{
    The target-independent lowering used by the CPU backend (and by the CUDA
    backend for the parts it does not fuse). Expects `moe.layer` to be
    decomposed first.

    - `moe.experts` / `moe.mlp`: a loop over experts; per expert, slices of
      its rows and weights, f32-accumulating `linalg.matmul`s and a
      `linalg.generic` for the activation (and gate product).
    - `moe.router`: f32 logits (`linalg.matmul`), scores as generics with
      row reductions, then a per-token loop that applies group limits and
      selects the top-k; capacity drops in a second loop.
    - `moe.dispatch`: per-expert counts, offsets and slot assignment in
      scalar loops, then a gather `linalg.generic` for the rows.
    - `moe.combine`: one `linalg.generic` over [T, d] that gathers the k
      expert rows of each token (the dense mapping table).
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def ConvertMoEExpertsToGpuCall : Pass<"convert-moe-experts-to-gpu-call", "ModuleOp"> {
  let summary = "Route bf16 moe.experts to a GPU helper function";
  let description = [{
    Replaces every bf16 `moe.experts` with static shapes by a call to a new
    private function `@__moe_gpu_experts_<n>` whose arguments are read-only
    for bufferization (`bufferization.access = "read"`), so that the CPU
    pipeline bufferizes and deallocates around it without copying the
    weights. `-moe-materialize-gpu-experts` gives it a body after
    bufferization: the deallocation pipeline does not accept GPU launches.
  }];
  let dependentDialects = ["::mlir::func::FuncDialect"];
}

def ConvertMoELayerToGpuCall : Pass<"convert-moe-layer-to-gpu-call", "ModuleOp"> {
  let summary = "Route whole bf16 moe.layer ops to a fused GPU helper";
  let description = [{
    Replaces every `moe.layer` that the fused GPU path supports (bf16, static
    shapes, dropless routing, group limits included, at most 1024 experts,
    sizes divisible by 8) by a call to a private function
    `@__moe_gpu_layer_<n>` marked `moe.gpu_layer` with the routing options.
    `-moe-materialize-gpu-experts` gives it its body after bufferization: the
    router GEMV, one routing kernel (top-k, counts, offsets, mapping table),
    the up/gate GEMV with the dispatch gather fused, the activation, and the
    down GEMV with the weighted combine fused, all on the GPU. Shared
    experts and the PR-MoE residual MLP are expert stages of one expert
    each (every token one row), planned here too (`shared`, `mlp` in
    `moe.gpu_layer`), adding into the routed stage's f32 output. Other
    layers are left to `-moe-decompose-layer`.

    The expert path is chosen here and recorded in the helper's
    `moe.gpu_layer` (`path`): `gemv`, the memory-bound grouped GEMV, or `mma`,
    the tensor-core grouped GEMM, taken when an expert gets at least
    `mma-min-rows` rows on average under uniform routing (T k / E(1 -
    (1 - k/E)^T)) and the sizes are multiples of 128; or `wgmma`, the same
    GEMM on Hopper's warpgroup MMAs (sm_90a), from `wgmma-min-rows` rows
    (on an H200, wgmma was faster with 32 and 64 rows per expert, and 2%
    slower than mma.sync at 8: test/bench/results/wgmma-2026-12-01.md).
  }];
  let options = [
    Option<"path", "path", "std::string", "\"auto\"",
           "expert path: auto, gemv, mma or wgmma">,
    Option<"wgmmaMinRows", "wgmma-min-rows", "double", "24",
           "average rows per expert from which auto takes the wgmma path">,
    Option<"wgmmaColumns", "wgmma-columns", "int64_t", "256",
           "weight columns per wgmma block: 128 or 256">,
    Option<"wgmmaStages", "wgmma-stages", "int64_t", "4",
           "shared-memory stages of the wgmma path">,
    Option<"wgmmaRows", "wgmma-rows", "int64_t", "0",
           "rows per wgmma tile: 0 (chosen per layer: 64 below 32 rows an "
           "expert with 256 columns, 192 where its tiles multiply at most "
           "0.95x the rows of 128-row ones, else 128), 128, 64 (both "
           "warpgroups on the same rows, each half the columns) or 192 "
           "(each warpgroup 64 rows of all columns and half the columns of "
           "the last 64; the producer form)">,
    Option<"wgmmaTileStep", "wgmma-tile-step", "int64_t", "0",
           "rows from one of an expert's 192-row tiles to the next: 0 (192 "
           "where wgmma-rows=192; chosen per layer where the planner takes "
           "192-row tiles), 192, or 128 (tiles of 128 rows until at most "
           "192 are left, the expert's last tile)">,
    Option<"wgmmaQueue", "wgmma-queue", "std::string", "\"auto\"",
           "the producer-form wgmma kernels take their (tile, column block) "
           "pairs from a global counter in order instead of round-robin by "
           "block: auto, always or never">,
    Option<"wgmmaGroupTiles", "wgmma-group-tiles", "int64_t", "-1",
           "row tiles the wgmma blocks take together, all column blocks of "
           "a group before the next group: -1 (auto: as many as fit 24 MiB "
           "of rows, at most a wave of the grid's pairs, at least twice an "
           "expert's tiles; where experts get two or more tiles also at most "
           "2 MiB of weights between a tile's column blocks), 0 (all tiles "
           "of a column block, then the next) or a count">,
    Option<"routerSplitK", "router-split-k", "int64_t", "0",
           "the router's tensor-core GEMM split over K into this many runs "
           "added by f32 atomics: 0 (auto: about two blocks an SM), or a "
           "count up to 256 (runs of ceil(steps / N) K steps, as many as are "
           "not empty; 1: none)">,
    Option<"fusedRoute", "fused-route", "bool", "false",
           "where the routing is split (over 64 tokens), the select "
           "kernel's blocks compute their 16 tokens' router logits "
           "themselves (mma.sync on the router staged through shared "
           "memory) instead of a router GEMM kernel before them; not the "
           "default: measured 1.035-1.058x slower at OLMoE and qwen3">,
    Option<"downKRuns", "down-k-runs", "int64_t", "0",
           "the routed down kernel's (tile, column block) pairs in this "
           "many runs of their K steps, added by its atomics (the combine "
           "by atomics): 0 (auto: 2 where the pairs are few and long), 1 "
           "(none) or a count up to 64 (the most up to it that divide the "
           "K steps)">,
    Option<"wgmmaL2Prefetch", "wgmma-l2-prefetch", "int64_t", "0",
           "the wgmma producers bring the weights of a pair's K step kt + N "
           "into L2 as they issue step kt (TMA weights, not multicast): 0 "
           "(default: none) or N from 1 to 64">,
    Option<"wgmmaPersistent", "wgmma-persistent", "std::string", "\"auto\"",
           "the wgmma expert kernels as persistent grids of one block an SM "
           "that stream the (tile, column block) pairs' K steps, the next "
           "pair's first copies in flight during an epilogue: auto (default: "
           "producer, tma from 512 rows an expert), always, producer (also a "
           "producer warpgroup that issues the copies: warp-specialised), "
           "tma (the producer with the weights by TMA), multicast (tma, the "
           "weights multicast to clusters of two blocks over 256-row tiles) "
           "or never">,
    Option<"mmaMinRows", "mma-min-rows", "double", "1.2",
           "average rows per expert from which auto takes the mma path">,
    Option<"mmaTileM", "mma-tile-m", "int64_t", "0",
           "rows per tensor-core tile: 0 (by rows per expert), 64 or 128">,
    Option<"mmaWarps", "mma-warps", "int64_t", "0",
           "warps per tensor-core block: 0 (auto), 4 or 8">,
    Option<"mmaStages", "mma-stages", "int64_t", "0",
           "cp.async stages of the mma.sync tiles: 0 (auto: 3 at 64 rows, "
           "2 at 128), 2, 3 or 4">,
    Option<"gemvLanes", "gemv-lanes", "int64_t", "0",
           "most lanes of a warp splitting K in the expert GEMVs: 0 (auto), "
           "1, 2, 4 or 8">,
    Option<"gemvUnroll", "gemv-unroll", "int64_t", "0",
           "weight rows each lane of the expert GEMVs loads ahead: 0 (auto), "
           "4 or 8">,
    Option<"fusedGate", "fused-gate", "std::string", "\"auto\"",
           "the router matmul, the clearing of the accumulators and the "
           "routing in one gating kernel: auto (at decode sizes where it "
           "measured faster), always (wherever it can: up to 64 tokens), "
           "never (a memset, the router GEMV and the routing kernel)">,
    Option<"decodeOverlap", "decode-overlap", "std::string", "\"auto\"",
           "the few-rows path's down GEMV issues its first weight loads "
           "before its grid dependency wait, and the up GEMV lets it launch "
           "right after its own (and, at one token, the gating kernel and the "
           "down GEMV trigger early too): auto (the default) or never">,
    Option<"wgmmaKOrder", "wgmma-k-order", "std::string", "\"auto\"",
           "the wgmma producer's K-step order: a 192-row tile that "
           "multiplies its last 64 rows takes two of every three steps "
           "first, and where experts get two or more row tiles (but in "
           "192-row tiles 192 apart) each expert's steps start at its own: "
           "auto (the default), never (every tile in order), band (the "
           "band order only), up (the rotation in the up kernel only) or "
           "both (the rotation in both kernels wherever it applies)">,
    Option<"wgmmaBand", "wgmma-band", "std::string", "\"auto\"",
           "how a 192-row tile multiplies its band (rows 128-191): m64 "
           "(m64n128 wgmmas over all 64 rows where the tile has any), swap16 "
           "or swap32 (the operands swapped: weights as A, the band's rows "
           "as B, in sub-bands of 16 or 32 rows, each where the tile has "
           "rows in it) or auto (the default: m64)">,
    Option<"wgmmaWideStores", "wgmma-wide-stores", "std::string",
           "\"auto\"",
           "the wgmma kernels' bf16 rows stored 16 bytes a thread (the "
           "threads of a row swap their columns by shuffles) where experts "
           "get 64 rows or more and the epilogue's arithmetic is cheap: auto "
           "(the default) or never">,
    Option<"weightsEvictFirst", "weights-evict-first", "std::string",
           "\"auto\"",
           "the wgmma kernels' TMA weight loads with the L2 evict-first "
           "policy, so that the rows, activations and rows buffer stay in L2 "
           "while the weights stream past: auto (the default) or never">,
    Option<"decodeKernel", "decode-kernel", "std::string", "\"auto\"",
           "one token's gating, up and down GEMVs as one persistent kernel "
           "of work items: auto (the default, where it applies) or never "
           "(the chain of kernels)">,
    Option<"decodeDense", "decode-dense", "std::string", "\"auto\"",
           "at one token, a layer's shared experts (or PR-MoE MLP without "
           "mixing) as items of the decode kernel, streaming while the "
           "routing is decided: auto (the default) or never (their own "
           "routing and GEMV kernels after it)">,
    Option<"prefetchRouter", "prefetch-router", "std::string", "\"auto\"",
           "the gating (or decode) kernel's blocks bring the router into L2 "
           "before their grid dependency wait, while the kernel before it "
           "ends: auto (the default, where the layer has a gating or decode "
           "kernel) or never">,
    Option<"denseSplitK", "dense-split-k", "std::string", "\"auto\"",
           "a dense stage's down projection on wgmma tiles split over K "
           "(grid z, f32 atomics) where its column blocks leave most SMs "
           "idle: auto (the default) or never">,
    Option<"report", "report", "bool", "false",
           "a remark per moe.layer: fused on the GPU (with its stages' "
           "paths), or decomposed and why">,
    Option<"densePath", "dense-path", "std::string", "\"auto\"",
           "the expert path of the dense stages (shared experts, PR-MoE "
           "MLP): auto (as the routed experts', by rows), gemv, mma or "
           "wgmma">,
    Option<"decodeGridShare", "decode-grid-share", "int64_t", "100",
           "the decode kernel's GEMV items planned as for this percentage "
           "of the matrices (200: items of twice the K rows, half as many)">,
    Option<"decodeStages", "decode-stages", "int64_t", "0",
           "K steps each thread of the decode kernel's GEMV items keeps in "
           "flight through cp.async to shared memory: 2 or 3; 0 (the "
           "default): loads to registers (results/"
           "decode-stages-2026-12-01.md)">,
    Option<"combine", "combine", "std::string", "\"auto\"",
           "how the tensor-core paths' down projection meets each token's k "
           "rows: atomic (f32 atomics into the output, then a rounding "
           "kernel), rows (weighted bf16 rows by plain stores, then a "
           "combine kernel sums each token's k rows) or auto (rows up to a "
           "rows buffer of 128 MiB: results/combine-rows-2026-12-02.md)">,
    Option<"stageDown", "stage-down", "std::string", "\"auto\"",
           "the few-rows path's down GEMV computes its input's activation "
           "once a block into shared memory: auto (where a block's rows fit "
           "16 KiB) or never (every thread activates what it reads)">,
    Option<"ffnColumns", "ffn-columns", "int64_t", "0",
           "the few-rows path's expert FFN as one kernel with this many ffn "
           "columns a block: 0 (auto), 32, 64 or 128; -1: the up and down "
           "GEMVs instead">
  ];
  let dependentDialects = ["::mlir::func::FuncDialect"];
}

def ConvertMoEDenseToGpuCall : Pass<"convert-moe-dense-to-gpu-call", "ModuleOp"> {
  let summary = "Route the bf16 dense parts of a model to GPU helpers";
  let description = [{
    Replaces every bf16 `moe.embedding` (GPT's learned position embedding
    with its ids, `position[s] + t`, computed by the kernel), `moe.rms_norm`,
    `moe.layer_norm`, `moe.mlp`, `moe.attention` and `moe.mla_attention`
    with static shapes, every residual add (a linalg.generic computing
    `truncf(extf(a) + extf(b))` on bf16 [T, d]) and every bf16 projection
    rounded to bf16 (`linalg.matmul` over a zero f32 fill, then `truncf`:
    the LM head) by a call to a private helper `@__moe_gpu_dense_<n>` marked
    `moe.gpu_dense` with its kind and the op's attributes.
    `-moe-materialize-gpu-experts` gives it its kernels after bufferization
    (lib/Target/CUDA/DenseKernels.cpp); activations that only GPU helpers
    read and write then live on the device, and the KV caches stay there
    between steps. Ops the kernels do not take (`whyNotGpuDense`) are left
    to the CPU lowering. With `report`, every dense moe op gets a remark
    saying whether it runs on the GPU, or why it stays on the host.
  }];
  let options = [
    Option<"report", "report", "bool", "false",
           "a remark per dense op: on the GPU, or on the host and why">
  ];
  let dependentDialects = ["::mlir::func::FuncDialect"];
}

def MoEMaterializeGpuExperts : Pass<"moe-materialize-gpu-experts", "ModuleOp"> {
  let summary = "Give the GPU expert helpers their bodies (kernels + host code)";
  let description = [{
    For each declaration made by `-convert-moe-layer-to-gpu-call` (see there)
    or `-convert-moe-experts-to-gpu-call` (now on memrefs), builds the host
    side. For moe.experts: device buffers, copies, the grouped GEMV
    launches for the up (and gate) and down projections, the activation and
    the rounding kernels from `lib/Target/CUDA/ExpertKernels.cpp` in the
    gpu.module `moe_kernels`, and the copy of the result back to the host.
    The expert weights must be device pointers (moe-compile marks them).
    With `out-params-only`, it only turns the helpers' results into
    caller-allocated out-parameters (run it before the deallocation
    pipeline).
  }];
  let options = [
    Option<"outParamsOnly", "out-params-only", "bool", "false",
           "only rewrite the helpers' results into out-parameters">,
    Option<"report", "report", "bool", "false",
           "a remark per fused GPU layer with its expert stages' kernel "
           "plan (path, tile, stages, groups of row tiles, combine)">,
    Option<"attentionHeads", "attention-heads", "int64_t", "0",
           "query heads of one kv head a block of the decoding attention "
           "takes: 0 (default, planned by shape) or a divisor of the group">,
    Option<"attentionUnroll", "attention-unroll", "int64_t", "0",
           "key rows a lane of the decoding attention loads at once: 0 "
           "(default, planned by the heads a block) or 1 to 16">,
    Option<"attentionThreads", "attention-threads", "int64_t", "0",
           "threads of a block of the decoding attention: 0 (default, "
           "planned by the head size), 128, 256 or 512">,
    Option<"attentionSplit", "attention-split", "int64_t", "0",
           "blocks splitting an item's keys in the decoding attention: 0 "
           "(default, planned by shape), a power of two up to 8 (a cluster) "
           "or up to 1024 (partial sums, then a merge kernel)">,
    Option<"attentionKernel", "attention-kernel", "std::string", "\"auto\"",
           "the decoding attention's kernel: auto (tensor cores where the "
           "head sizes allow, with 2 or more query heads a block, and no "
           "other choice is given), mma (tensor cores) or cores (the "
           "CUDA-core kernel)">
  ];
  let dependentDialects = [
    "::mlir::gpu::GPUDialect", "::mlir::memref::MemRefDialect",
    "::mlir::arith::ArithDialect", "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect", "::mlir::math::MathDialect",
    "::mlir::NVVM::NVVMDialect", "::mlir::LLVM::LLVMDialect",
    "::mlir::nvgpu::NVGPUDialect"
  ];
}


def MoEGpuHelperStubs : Pass<"moe-gpu-helper-stubs", "ModuleOp"> {
  let summary = "Give the GPU helper declarations stub bodies for One-Shot "
                "Bufferize (or drop them again)";
  let description = [{
    One-Shot Bufferize assumes that each tensor result of a function without
    a body may alias each of its tensor arguments. A GPU helper's results
    (`-convert-moe-layer-to-gpu-call`, `-convert-moe-experts-to-gpu-call`,
    `-convert-moe-dense-to-gpu-call`) are always new buffers, but declared
    without a body they put a whole model's activations, weights and KV
    caches into one alias set, and the analysis's conflict checks grow with
    the cube of the layers (32 Mixtral-shaped layers: 2.3 s of bufferization;
    8 layers: 0.05 s). This pass gives each helper declaration a body that
    returns a `bufferization.alloc_tensor` for each tensor result (its
    arguments keep their `bufferization.access` markers), so that the
    analysis sees results that alias nothing; with `strip` (right after
    bufferization) it drops those bodies, now `memref.alloc`s and a
    `func.return`, so that the helpers are declarations on memrefs again,
    as bufferization would have left them.
  }];
  let options = [
    Option<"strip", "strip", "bool", "false",
           "drop the stub bodies (after bufferization) instead of adding them">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::bufferization::BufferizationDialect"];
}


def ConvertMoECommToRuntime : Pass<"convert-moe-comm-to-runtime", "ModuleOp"> {
  let summary = "Lower the collectives of a partitioned model to moert_comm calls";
  let description = [{
    Rewrites the communication of `moe-partition`'s per-rank program into
    calls of the runtime's thin C ABI (`moert_comm_*`, runtime/include/moert/
    moert.h), which runs them over MPI between processes on the CPU (and
    NCCL on GPUs): `shard.all_reduce` (sum), `shard.all_gather` and
    `shard.all_slice` along dimension 0, `shard.process_multi_index`,
    `moe.dispatch_exchange` and `moe.combine_exchange`. Buffers pass as
    aligned pointers; every result is a fresh buffer the call fills. The
    group of a collective is given as a mask of grid axes; the runtime knows
    the grid from the model's signature. Other collectives are refused by
    name.
  }];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::bufferization::BufferizationDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::arith::ArithDialect"];
}

#endif // MOE_CONVERSION_PASSES_TD
