//===- moe-compile.cpp - One-shot driver: moe IR to a model executable -----===//
//
// Part of moe-compiler.
//
//   moe-compile model.mlir|CHECKPOINT_DIR -o model [--target=cpu|cuda]
//       [--emit=exe|shared|obj|llvm|mlir]
//
// Parses and verifies the model, runs the target pipeline, adds the entry
// points the runtime expects, emits a native object in process and links it
// with the runtime (libmoert.a) through the system's C++ driver. Every output
// is written to a temporary file and renamed into place, so a failure never
// leaves a partial output behind.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/HFImport.h"
#include "moe/InitAll.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Support/InputLimits.h"
#include "moe/Parallel/Passes.h"
#include "moe/Target/CUDA/DenseKernels.h"
#include "moe/Target/CUDA/ExpertKernels.h"
#include "moe/Target/ModelEntry.h"
#include "moe/Target/ObjectEmitter.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/Timing.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
namespace cl = llvm::cl;

namespace {
enum class Emit { Exe, Shared, Obj, LLVMIR, MLIR };

/// This tool's options: --help lists them alone (see main).
cl::OptionCategory category("moe-compile options");

cl::opt<std::string> inputFile(cl::Positional, cl::desc("<model.mlir>"),
                               cl::init("-"), cl::cat(category));
cl::opt<std::string> outputFile("o", cl::desc("output path"),
                                cl::value_desc("path"), cl::init(""), cl::cat(category));
cl::opt<std::string> target("target",
                            cl::desc("cpu (default), or cuda: bf16 MoE "
                                     "layers and the dense parts that have "
                                     "GPU kernels on a Hopper GPU (sm_90a "
                                     "kernels), the rest on the CPU"),
                            cl::init("cpu"), cl::cat(category));
cl::opt<Emit> emit(
    "emit", cl::desc("what to produce"), cl::init(Emit::Exe),
    cl::values(clEnumValN(Emit::Exe, "exe", "a model executable (default)"),
               clEnumValN(Emit::Shared, "shared",
                          "a shared library exporting moe_model_run, "
                          "moe_model_signature and the runtime (for "
                          "harnesses that bring their own buffers)"),
               clEnumValN(Emit::Obj, "obj", "the model object file"),
               clEnumValN(Emit::LLVMIR, "llvm", "optimized LLVM IR"),
               clEnumValN(Emit::MLIR, "mlir",
                          "the LLVM-dialect module after the pipeline")), cl::cat(category));
cl::opt<std::string> gpuPath(
    "gpu-path",
    cl::desc("expert path of layers fused on the GPU: auto (default; chosen "
             "by rows per expert), gemv (memory-bound), mma (tensor cores, "
             "mma.sync) or wgmma (tensor cores, Hopper's warpgroup MMAs)"),
    cl::init("auto"), cl::cat(category));
cl::opt<int64_t> gpuWgmmaColumns(
    "gpu-wgmma-columns",
    cl::desc("weight columns per block of the wgmma path: 128 or 256 "
             "(default)"),
    cl::init(256), cl::cat(category));
cl::opt<int64_t> gpuWgmmaStages(
    "gpu-wgmma-stages",
    cl::desc("shared-memory stages of the wgmma path (default 4)"),
    cl::init(4), cl::cat(category));
cl::opt<int64_t> gpuWgmmaRows(
    "gpu-wgmma-rows",
    cl::desc("rows per tile of the wgmma path: 0 (default: chosen per "
             "layer, 64 below 32 rows an expert, 192 where its tiles "
             "multiply at most 0.95x the rows of 128-row ones, else 128), "
             "128, 64 (both MMA warpgroups on the same rows, each half the "
             "columns) or 192 (each MMA warpgroup 64 rows of all columns and "
             "half the columns of the last 64; the producer form); 64 and "
             "192 take 256-column tiles"),
    cl::init(0), cl::cat(category));
cl::opt<int64_t> gpuWgmmaTileStep(
    "gpu-wgmma-tile-step",
    cl::desc("rows from one of an expert's 192-row wgmma tiles to the next: "
             "0 (default: 192 with --gpu-wgmma-rows=192, chosen per layer "
             "where the planner takes 192-row tiles), 192, or 128 (tiles of "
             "128 rows until at most 192 are left, the expert's last tile; "
             "needs --gpu-wgmma-rows=192)"),
    cl::init(0), cl::cat(category));
cl::opt<int64_t> gpuGemvLanes(
    "gpu-gemv-lanes",
    cl::desc("most lanes of a warp splitting K in the expert GEMVs: 0 "
             "(default, chosen per layer), 1, 2, 4 or 8"),
    cl::init(0), cl::cat(category));
cl::opt<bool> gpuEarlyLaunch(
    "gpu-early-launch",
    cl::desc("kernels of more than one wave let the next one launch right "
             "after their grid dependency wait (default false: as their "
             "blocks exit)"),
    cl::init(false), cl::cat(category));
cl::opt<int64_t> gpuGemvUnroll(
    "gpu-gemv-unroll",
    cl::desc("weight rows each lane of the expert GEMVs loads ahead: 0 "
             "(default, chosen per layer), 4 or 8"),
    cl::init(0), cl::cat(category));
cl::opt<std::string> gpuFusedGate(
    "gpu-fused-gate",
    cl::desc("the router matmul, the clearing of the accumulators and the "
             "routing in one gating kernel: auto (default: at decode sizes "
             "where it measured faster), always (up to 64 tokens) or never "
             "(a memset, the router GEMV and the routing kernel)"),
    cl::init("auto"), cl::cat(category));
cl::opt<std::string> gpuWgmmaQueue(
    "gpu-wgmma-queue",
    cl::desc("the producer-form wgmma kernels take their (tile, column "
             "block) pairs from a global counter in order instead of "
             "round-robin by block: auto, always or never"),
    cl::init("auto"), cl::cat(category));
cl::opt<int64_t> gpuRouterSplitK(
    "gpu-router-split-k",
    cl::desc("the router's tensor-core GEMM split over K into this many "
             "runs added by f32 atomics: 0 (default: about two blocks an "
             "SM) or a count up to 256 (runs of ceil(steps / N) K steps, as "
             "many as are not empty; 1: none)"),
    cl::init(0), cl::cat(category));
cl::opt<bool> gpuFusedRoute(
    "gpu-fused-route",
    cl::desc("where the routing is split (over 64 tokens), the select "
             "kernel computes its tokens' router logits itself (mma.sync on "
             "the router staged through shared memory) instead of a router "
             "GEMM kernel before it; not the default: measured slower at "
             "OLMoE and qwen3 (1.035-1.058x)"),
    cl::init(false), cl::cat(category));
cl::opt<int64_t> gpuDownKRuns(
    "gpu-down-k-runs",
    cl::desc("the routed down kernel's (tile, column block) pairs in this "
             "many runs of their K steps, added by its atomics (so the "
             "combine by atomics): 0 (default: 2 where the pairs are few "
             "and long), 1 (none) or a count up to 64 (the most up to it "
             "that divide the K steps)"),
    cl::init(0), cl::cat(category));
cl::opt<int64_t> gpuWgmmaL2Prefetch(
    "gpu-wgmma-l2-prefetch",
    cl::desc("the wgmma producers bring the weights of a pair's K step kt + "
             "N into L2 as they issue step kt (TMA weights, not multicast), "
             "so that more weight bytes are in flight than the shared-memory "
             "stages hold: 0 (default: none) or N from 1 to 64 (measured "
             "slower on an H100: 1.09-1.25x at N = 1, 4 and 8)"),
    cl::init(0), cl::cat(category));
cl::opt<int64_t> gpuWgmmaGroupTiles(
    "gpu-wgmma-group-tiles",
    cl::desc("row tiles the wgmma blocks take together, all column blocks "
             "of a group before the next group: -1 (default: as many as fit "
             "24 MiB of rows, at most a wave of the grid's pairs, at least "
             "twice an expert's tiles; where experts get two or more tiles "
             "also at most 2 MiB of weights between a tile's column "
             "blocks), -2 (each "
             "expert's tiles, in the persistent form without multicast; "
             "elsewhere the default), 0 (all tiles of a column block, then "
             "the next) or a count"),
    cl::init(-1), cl::cat(category));
cl::opt<std::string> gpuWgmmaPersistent(
    "gpu-wgmma-persistent",
    cl::desc("the wgmma expert kernels as persistent grids of one block an "
             "SM streaming the (tile, column block) pairs' K steps: auto "
             "(default: producer, tma from 512 rows an expert), always, producer "
             "(also a producer warpgroup issuing the copies: "
             "warp-specialised), tma (the producer with the weights by TMA), "
             "multicast (tma, the weights multicast to clusters of two "
             "blocks over 256-row tiles) or never"),
    cl::init("auto"), cl::cat(category));
cl::opt<std::string> gpuCombine(
    "gpu-combine",
    cl::desc("how the tensor-core paths' down projection meets each token's "
             "k rows: auto (default: rows up to a rows buffer of 128 MiB), "
             "atomic (f32 atomics, then rounding) or rows (weighted "
             "bf16 rows, then a combine kernel)"),
    cl::init("auto"), cl::cat(category));
cl::opt<int64_t> gpuDecodeStages(
    "gpu-decode-stages",
    cl::desc("K steps each thread of the decode kernel's GEMV items keeps in "
             "flight through cp.async to shared memory: 2 or 3; 0 (default): "
             "loads to registers"),
    cl::init(0), cl::cat(category));
cl::opt<int64_t> gpuDecodeGridShare(
    "gpu-decode-grid-share",
    cl::desc("the decode kernel's GEMV items planned as for this percentage "
             "of the matrices (200: items of twice the K rows, half as "
             "many); default 100"),
    cl::init(100), cl::cat(category));
cl::opt<std::string> gpuDensePath(
    "gpu-dense-path",
    cl::desc("the expert path of the dense stages (shared experts, PR-MoE "
             "MLP): auto (default: as the routed experts', by rows), gemv, "
             "mma or wgmma"),
    cl::init("auto"), cl::cat(category));
cl::opt<int64_t> gpuAttentionHeads(
    "gpu-attention-heads",
    cl::desc("query heads of one kv head a block of the decoding attention "
             "takes: 0 (default, planned by shape) or a divisor of the "
             "model's query group"),
    cl::init(0), cl::cat(category));
cl::opt<int64_t> gpuAttentionUnroll(
    "gpu-attention-unroll",
    cl::desc("key rows a lane of the decoding attention loads at once: 0 "
             "(default, planned) or 1 to 16"),
    cl::init(0), cl::cat(category));
cl::opt<int64_t> gpuAttentionThreads(
    "gpu-attention-threads",
    cl::desc("threads of a block of the decoding attention: 0 (default, "
             "planned by the head size), 128, 256 or 512"),
    cl::init(0), cl::cat(category));
cl::opt<int64_t> gpuAttentionSplit(
    "gpu-attention-split",
    cl::desc("blocks splitting an item's keys in the decoding attention: 0 "
             "(default, planned by shape), a power of two up to 8 (a "
             "cluster) or up to 1024 (partial sums, then a merge kernel)"),
    cl::init(0), cl::cat(category));
cl::opt<std::string> gpuAttentionKernel(
    "gpu-attention-kernel",
    cl::desc("the decoding attention's kernel: auto (default: tensor cores "
             "where the head sizes allow, a block gets 2 or more query heads "
             "and no choice above is given), mma (tensor cores; heads and "
             "split may be given) or cores (the CUDA-core kernel)"),
    cl::init("auto"), cl::cat(category));
cl::opt<std::string> gpuDecodeOverlap(
    "gpu-decode-overlap",
    cl::desc("the few-rows path's down GEMV issues its first weight loads "
             "before its grid dependency wait, and the up GEMV lets it "
             "launch right after its own (at one token the gating kernel "
             "and the down GEMV trigger early too): auto (default) or never"),
    cl::init("auto"), cl::cat(category));
cl::opt<std::string> gpuDecodeKernel(
    "gpu-decode-kernel",
    cl::desc("one token's gating, up and down GEMVs as one persistent "
             "kernel of work items: auto (default) or never"),
    cl::init("auto"), cl::cat(category));
cl::opt<std::string> gpuDecodeDense(
    "gpu-decode-dense",
    cl::desc("at one token, the shared experts (or PR-MoE MLP without "
             "mixing) as items of the decode kernel: auto (default) or "
             "never"),
    cl::init("auto"), cl::cat(category));
cl::opt<std::string> gpuPrefetchRouter(
    "gpu-prefetch-router",
    cl::desc("the gating (or decode) kernel's blocks bring the router into "
             "L2 before their grid dependency wait, while the kernel before "
             "it ends: auto (default, where the layer has a gating or decode "
             "kernel) or never"),
    cl::init("auto"), cl::cat(category));
cl::opt<std::string> gpuDenseSplitK(
    "gpu-dense-split-k",
    cl::desc("a dense stage's (shared experts, PR-MoE MLP) down projection "
             "on wgmma tiles split over K, its sums by f32 atomics, where "
             "its column blocks leave most SMs idle: auto (default) or "
             "never"),
    cl::init("auto"), cl::cat(category));
cl::opt<std::string> gpuWgmmaBand(
    "gpu-wgmma-band",
    cl::desc("how a 192-row wgmma tile multiplies its band (rows 128-191): "
             "auto (default: m64), m64 (m64n128 wgmmas over all 64 rows "
             "where the tile has any), swap16 or swap32 (the weights as the "
             "wgmma's A, the rows as its B, in sub-bands of 16 or 32 rows, "
             "each where the tile has rows in it)"),
    cl::init("auto"), cl::cat(category));
cl::opt<std::string> gpuWgmmaKOrder(
    "gpu-wgmma-k-order",
    cl::desc("the wgmma producer's K-step order: a 192-row tile that "
             "multiplies its last 64 rows takes two of every three steps "
             "first, and where experts get two or more row tiles each "
             "expert's steps start at its own (in the down kernel too but "
             "for 192-row tiles 128 apart whose pairs run whole K): auto "
             "(default), never, band (the band order only), up (the "
             "rotation in the up kernel only) or both (in both kernels)"),
    cl::init("auto"), cl::cat(category));
cl::opt<std::string> gpuWgmmaWideStores(
    "gpu-wgmma-wide-stores",
    cl::desc("the wgmma kernels' bf16 rows stored 16 bytes a thread (the "
             "threads of a row swap their columns by shuffles) where "
             "experts get 64 rows or more and the epilogue's arithmetic is "
             "cheap (silu, relu, weighted rows): auto (default) or never"),
    cl::init("auto"), cl::cat(category));
cl::opt<std::string> gpuWeightsEvictFirst(
    "gpu-weights-evict-first",
    cl::desc("the wgmma kernels' TMA weight loads with the L2 evict-first "
             "policy, so that rows and activations stay in L2 while the "
             "weights stream past: auto (default) or never"),
    cl::init("auto"), cl::cat(category));
cl::opt<std::string> gpuStageDown(
    "gpu-stage-down",
    cl::desc("the few-rows path's down GEMV computes its input's activation "
             "once a block into shared memory: auto (default: where a "
             "block's rows fit 16 KiB) or never"),
    cl::init("auto"), cl::cat(category));
cl::opt<int64_t> gpuFfnColumns(
    "gpu-ffn-columns",
    cl::desc("the few-rows path's expert FFN as one kernel with this many "
             "ffn columns a block: 0 (default, chosen per layer), 32, 64 or "
             "128; -1: the up and down GEMVs instead"),
    cl::init(0), cl::cat(category));
cl::opt<int64_t> gpuMmaTileM(
    "gpu-mma-tile-m",
    cl::desc("rows per tensor-core tile: 0 (default, chosen per layer), 64 "
             "or 128"),
    cl::init(0), cl::cat(category));
cl::opt<int64_t> gpuMmaStages(
    "gpu-mma-stages",
    cl::desc("cp.async stages of the mma.sync tiles: 0 (default: 3 at 64 "
             "rows, 2 at 128), 2, 3 or 4"),
    cl::init(0), cl::cat(category));
cl::opt<int64_t> gpuMmaWarps(
    "gpu-mma-warps",
    cl::desc("warps per tensor-core block: 0 (default, chosen per layer), 4 "
             "or 8"),
    cl::init(0), cl::cat(category));
cl::opt<bool> gpuReport(
    "gpu-report",
    cl::desc("with --target=cuda: a remark per MoE layer (fused on the "
             "GPU and its expert paths, or decomposed and why) and per dense "
             "part of the model (embedding, norms, attention, MLP): on the "
             "GPU, or on the host and why"),
    cl::init(false), cl::cat(category));
cl::opt<bool> cpuFallback(
    "cpu-fallback",
    cl::desc("with --target=cuda: the executable also holds the model's CPU "
             "code and runs it where no usable GPU is found (default true; "
             "MOERT_DEVICE=cpu picks it, MOERT_DEVICE=gpu fails instead); "
             "models of one rank"),
    cl::init(true), cl::cat(category));
cl::opt<bool> importWhole(
    "import-hf-whole",
    cl::desc("for a Hugging Face checkpoint input: the whole model (token "
             "ids to logits, attention with KV caches), which the executable "
             "runs as a generator (--prompt-ids)"),
    cl::init(false), cl::cat(category));
cl::opt<int64_t> importMaxSeq(
    "import-hf-max-seq",
    cl::desc("with --import-hf-whole: rows of each layer's KV cache (the "
             "longest prompt plus generated tokens)"),
    cl::init(256), cl::cat(category));
cl::opt<int64_t> importTokens(
    "import-hf-tokens",
    cl::desc("for a Hugging Face checkpoint input: tokens per step (rows of "
             "the model's input)"),
    cl::init(1), cl::cat(category));
cl::opt<int64_t> importBatch(
    "import-hf-batch",
    cl::desc("with --import-hf-whole: sequences per step, each with its own "
             "position and KV cache (the executable generates that many)"),
    cl::init(1), cl::cat(category));
cl::opt<int64_t> ranks(
    "ranks",
    cl::desc("plan the model over this many ranks (GPUs, or CPU processes) "
             "with moe-plan-parallelism and compile the per-rank program; "
             "run it with 'mpirun -np N' (default 1: not partitioned)"),
    cl::init(1), cl::cat(category));
cl::opt<std::string> planOptions(
    "plan",
    cl::desc("extra moe-plan-parallelism options for --ranks, e.g. "
             "\"ep=2 es=2 tp=2 memory-gb=80\""),
    cl::init(""), cl::cat(category));
cl::opt<std::string> entryName("entry",
                               cl::desc("model entry function (default: the "
                                        "only public function)"),
                               cl::init(""), cl::cat(category));
cl::opt<std::string> cpu("cpu",
                         cl::desc("target CPU: native (default) or an LLVM "
                                  "CPU name such as x86-64-v3"),
                         cl::init("native"), cl::cat(category));
cl::opt<unsigned> optLevel("opt-level", cl::desc("LLVM optimization level"),
                           cl::init(3), cl::cat(category));
cl::opt<std::string> linker(
    "linker",
    cl::desc("C++ driver that links the executable (default: the compiler "
             "that built the runtime, else c++, g++ or clang++ on PATH)"),
    cl::init(""), cl::cat(category));
cl::opt<std::string> runtimeDir(
    "runtime-dir",
    cl::desc("directory holding libmoert.a (default: ../lib next to "
             "moe-compile)"),
    cl::init(""), cl::cat(category));

int fail(const Twine &message) {
  llvm::errs() << "moe-compile: error: " << message << "\n";
  return 1;
}

/// Names the first op of `module` that its pipeline left unlowered (not
/// LLVM, nor GPU where `gpu`), an op the backend does not support, rather
/// than failing later in the LLVM translation. `why` ends the message.
LogicalResult checkLowered(ModuleOp module, bool gpu, const Twine &why) {
  Operation *left = nullptr;
  module->walk([&](Operation *op) {
    bool lowered = isa<LLVM::LLVMDialect>(op->getDialect()) ||
                   (gpu && isa<gpu::GPUDialect>(op->getDialect()));
    if (op != module.getOperation() && !lowered && !left)
      left = op;
  });
  if (!left)
    return success();
  return left->emitError() << "'" << left->getName() << "' is not supported "
                           << why;
}

/// The directory of libmoert.a: --runtime-dir, else ../lib beside this tool.
std::string findRuntimeDir(const char *argv0) {
  if (!runtimeDir.empty())
    return runtimeDir;
  std::string self = llvm::sys::fs::getMainExecutable(
      argv0, reinterpret_cast<void *>(&findRuntimeDir));
  llvm::SmallString<256> dir(llvm::sys::path::parent_path(self));
  llvm::sys::path::append(dir, "..", "lib");
  return std::string(dir);
}

/// A temporary file beside `final`, so that the rename stays on one file
/// system.
std::string temporaryBeside(StringRef final) {
  return (final + ".tmp." + Twine(llvm::sys::Process::getProcessId())).str();
}

int link(StringRef object, StringRef output, StringRef libDir, bool shared) {
  llvm::SmallString<256> lib(libDir);
  llvm::sys::path::append(lib, "libmoert.a");
  if (!llvm::sys::fs::exists(lib))
    return fail("the runtime library '" + lib +
                "' does not exist (build the 'moert' target or pass "
                "--runtime-dir)");
  // --linker, else the compiler that built the runtime, else the usual
  // drivers on PATH.
  llvm::ErrorOr<std::string> driver =
      std::make_error_code(std::errc::no_such_file_or_directory);
  if (!linker.empty()) {
    if (!llvm::sys::fs::can_execute(linker))
      return fail("the linker driver '" + linker + "' is not executable");
    driver = std::string(linker);
  } else if (llvm::sys::fs::can_execute(MOE_LINKER_DRIVER)) {
    driver = std::string(MOE_LINKER_DRIVER);
  }
  if (!driver)
    driver = llvm::sys::findProgramByName("c++");
  if (!driver)
    driver = llvm::sys::findProgramByName("g++");
  if (!driver)
    driver = llvm::sys::findProgramByName("clang++");
  if (!driver)
    return fail("no linker driver found (looked for c++, g++, clang++ on "
                "PATH); install g++, or use --emit=obj and link yourself");
  std::string tmp = temporaryBeside(output);
  SmallVector<StringRef> args{*driver, object, lib, "-lm", "-ldl",
                              "-lpthread", "-o", tmp};
  if (shared)
    args.push_back("-shared");
  if (StringRef(MOE_MODEL_LINK_FLAGS).size())
    args.push_back(MOE_MODEL_LINK_FLAGS);
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(*driver, args, std::nullopt, {}, 0, 0,
                                     &message);
  if (rc != 0) {
    llvm::sys::fs::remove(tmp);
    return fail("linking with " + *driver + " failed" +
                (message.empty() ? "" : ": " + message) + " (exit code " +
                Twine(rc) + ")");
  }
  if (std::error_code ec = llvm::sys::fs::rename(tmp, output)) {
    llvm::sys::fs::remove(tmp);
    return fail("cannot write '" + output + "': " + ec.message());
  }
  return 0;
}
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  // --mlir-print-ir-after=PASS, --mlir-timing, ... for the pipeline.
  moe::registerAllPasses();
  registerMLIRContextCLOptions();
  registerPassManagerCLOptions();
  registerDefaultTimingManagerCLOptions();
  // --help lists this tool's options; LLVM's and MLIR's (--mlir-print-ir-*,
  // --mlir-timing, target options) still work and are listed by
  // --help-hidden.
  // --help lists this tool's options (`category`); LLVM's and MLIR's
  // (--mlir-print-ir-*, --mlir-timing, target flags) still work and are
  // hidden, not removed: --help-hidden lists them (HideUnrelatedOptions
  // would drop them from it too).
  for (auto &entry : cl::getRegisteredOptions()) {
    StringRef name = entry.first;
    cl::Option *o = entry.second;
    bool generic = name.starts_with("help") || name == "version" ||
                   name == "print-options" || name == "print-all-options";
    if (!generic && !llvm::is_contained(o->Categories, &category) &&
        o->getOptionHiddenFlag() == cl::NotHidden)
      o->setHiddenFlag(cl::Hidden);
  }
  cl::ParseCommandLineOptions(argc, argv,
                              "moe-compiler: compile a moe model into an "
                              "executable\n(--help-hidden also lists the "
                              "LLVM and MLIR options)\n");
  bool cuda = target == "cuda";
  if (target != "cpu" && !cuda)
    return fail("unknown target '" + target + "' (expected cpu or cuda)");
  if (gpuPath != "auto" && gpuPath != "gemv" && gpuPath != "mma" &&
      gpuPath != "wgmma")
    return fail("unknown --gpu-path '" + gpuPath +
                "' (expected auto, gemv, mma or wgmma)");
  if (std::string why = moe::whyNotWgmmaOptions(
          {gpuWgmmaColumns, gpuWgmmaStages, gpuWgmmaRows, gpuWgmmaTileStep});
      !why.empty())
    return fail("--gpu-wgmma-columns / --gpu-wgmma-stages / "
                "--gpu-wgmma-rows / --gpu-wgmma-tile-step: " + why);
  if (std::string why = moe::whyNotGemvTuning({gpuGemvLanes, gpuGemvUnroll});
      !why.empty())
    return fail("--gpu-gemv-lanes / --gpu-gemv-unroll: " + why);
  if (gpuMmaTileM != 0 && gpuMmaTileM != 64 && gpuMmaTileM != 128)
    return fail("--gpu-mma-tile-m must be 0 (auto), 64 or 128, got " +
                Twine(gpuMmaTileM));
  if (gpuMmaStages != 0 && (gpuMmaStages < 2 || gpuMmaStages > 4))
    return fail("--gpu-mma-stages must be 0 (auto), 2, 3 or 4, got " +
                Twine(gpuMmaStages));
  if (gpuMmaWarps != 0 && gpuMmaWarps != 4 && gpuMmaWarps != 8)
    return fail("--gpu-mma-warps must be 0 (auto), 4 or 8, got " +
                Twine(gpuMmaWarps));
  if (gpuAttentionHeads < 0)
    return fail("--gpu-attention-heads must be 0 (auto) or positive, got " +
                Twine(gpuAttentionHeads));
  if (gpuAttentionUnroll < 0 || gpuAttentionUnroll > moe::kAttentionMaxUnroll)
    return fail("--gpu-attention-unroll must be 0 (auto) or 1 to 16, got " +
                Twine(gpuAttentionUnroll));
  if (gpuAttentionThreads != 0 && gpuAttentionThreads != 128 &&
      gpuAttentionThreads != 256 && gpuAttentionThreads != 512)
    return fail("--gpu-attention-threads must be 0 (auto), 128, 256 or 512, "
                "got " +
                Twine(gpuAttentionThreads));
  if (gpuAttentionSplit < 0 ||
      gpuAttentionSplit > moe::kAttentionMaxPartialSplit ||
      !llvm::isPowerOf2_64(std::max<int64_t>(gpuAttentionSplit, 1)))
    return fail("--gpu-attention-split must be 0 (auto) or a power of two up "
                "to " +
                Twine(moe::kAttentionMaxPartialSplit) + ", got " +
                Twine(gpuAttentionSplit));
  if (!moe::isAttentionKernelKind(gpuAttentionKernel))
    return fail("--gpu-attention-kernel must be auto, mma or cores, got '" +
                Twine(gpuAttentionKernel) + "'");
  if (outputFile.empty()) {
    if (emit == Emit::Exe || emit == Emit::Shared || emit == Emit::Obj)
      return fail("no output path: pass -o <path>");
    outputFile = "-";
  }

  // Fail before any work when the output cannot be written.
  if (outputFile != "-") {
    llvm::SmallString<256> dir(llvm::sys::path::parent_path(outputFile));
    if (dir.empty())
      dir = ".";
    if (!llvm::sys::fs::is_directory(dir))
      return fail("cannot write '" + outputFile + "': the directory '" + dir +
                  "' does not exist");
    if (llvm::sys::fs::access(dir, llvm::sys::fs::AccessMode::Write))
      return fail("cannot write '" + outputFile + "': the directory '" + dir +
                  "' is not writable");
  }

  DialectRegistry registry;
  moe::registerAllDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();

  // A Hugging Face checkpoint (its directory or config.json) is imported;
  // anything else is parsed as MLIR.
  std::string inputPath = inputFile;
  bool hf = llvm::sys::path::filename(inputPath) == "config.json";
  if (llvm::sys::fs::is_directory(inputPath)) {
    llvm::SmallString<256> config(inputPath);
    llvm::sys::path::append(config, "config.json");
    if (!llvm::sys::fs::exists(config))
      return fail("'" + inputPath + "' is a directory without a config.json "
                  "(expected a Hugging Face checkpoint or an .mlir file)");
    inputPath = std::string(config);
    hf = true;
  }
  std::string errorMessage;
  std::unique_ptr<llvm::MemoryBuffer> input =
      openInputFile(inputPath, &errorMessage);
  if (!input)
    return fail(errorMessage);
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  // Diagnostics carry source locations; the IR dump of the op is noise.
  context.printOpOnDiagnostic(false);
  OwningOpRef<ModuleOp> module;
  if (hf) {
    moe::HFImportOptions importOptions;
    importOptions.tokens = importTokens;
    importOptions.whole = importWhole;
    importOptions.maxSeq = importMaxSeq;
    importOptions.batch = importBatch;
    module = moe::importHFFiles(input->getBuffer(), inputPath, &context,
                                importOptions, errorMessage);
    if (!module)
      return fail(errorMessage);
  } else {
    std::string tooDeep = moe::checkNestingDepth(input->getBuffer());
    if (!tooDeep.empty())
      return fail(inputFile + ": " + tooDeep);
    sourceMgr.AddNewSourceBuffer(std::move(input), llvm::SMLoc());
    module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  }
  if (!module || failed(verify(*module)))
    return 1;

  // Partitioned models: plan (unless the module was planned already) and
  // rewrite into the program of one rank.
  if (ranks < 1)
    return fail("--ranks must be at least 1, got " + Twine(ranks.getValue()));
  bool planned = bool(module->lookupSymbol("moe_grid"));
  if (ranks > 1 || planned || !planOptions.empty()) {
    PassManager partition(&context);
    if (!planned) {
      std::unique_ptr<Pass> plan = moe::createPlanParallelism();
      std::string options =
          "gpus=" + std::to_string(ranks) + " " + planOptions;
      std::string why;
      if (failed(plan->initializeOptions(options, [&](const Twine &msg) {
            why = msg.str();
            return failure();
          })))
        return fail("invalid --plan options '" + planOptions + "': " + why);
      partition.addPass(std::move(plan));
    } else if (ranks > 1 || !planOptions.empty()) {
      return fail("the module is planned already (it has @moe_grid); drop "
                  "--ranks and --plan");
    }
    partition.addPass(moe::createPartitionParallelism());
    if (failed(partition.run(*module)))
      return fail(planned ? Twine("partitioning the planned module failed "
                                  "(see the diagnostics above)")
                          : "partitioning for " + Twine(ranks.getValue()) +
                                " ranks failed (see the diagnostics above)");
  }

  // The CPU fallback of a GPU model: the same module through the CPU
  // pipeline, merged into the GPU code's under names of its own.
  OwningOpRef<ModuleOp> cpuModule;
  FailureOr<moe::ModelSignature> cpuSignature = failure();
  if (cuda && cpuFallback && ranks == 1 && !planned) {
    cpuModule = module->clone();
    cpuSignature = moe::prepareModelEntry(*cpuModule, entryName, false);
    if (failed(cpuSignature))
      return 1;
  }
  FailureOr<moe::ModelSignature> signature =
      moe::prepareModelEntry(*module, entryName, cuda);
  if (failed(signature))
    return 1;

  // The pipelines lower these dialects (the shard collectives of a
  // partitioned model through convert-moe-comm-to-runtime, which names any
  // it cannot lower); anything else (GPU ops, ...) is named before a pass
  // fails on it.
  WalkResult supported = module->walk([&](Operation *op) {
    StringRef ns = op->getDialect() ? op->getDialect()->getNamespace() : "";
    static const StringRef lowered[] = {
        "builtin", "func",   "moe",   "arith", "math", "tensor",
        "linalg",  "scf",    "affine", "memref", "cf", "bufferization",
        "index",   "llvm", "shard"};
    if (llvm::is_contained(lowered, ns))
      return WalkResult::advance();
    op->emitError() << "'" << op->getName() << "' is not supported by the "
                    << (cuda ? "CUDA" : "CPU") << " backend";
    return WalkResult::interrupt();
  });
  if (supported.wasInterrupted())
    return 1;

  PassManager pm(&context);
  if (failed(applyPassManagerCLOptions(pm)))
    return fail("invalid pass manager options");
  applyDefaultTimingPassManagerCLOptions(pm);
  if (cuda) {
    moe::CudaPipelineOptions cudaOptions;
    cudaOptions.path = gpuPath;
    cudaOptions.mmaTileM = gpuMmaTileM;
    cudaOptions.mmaWarps = gpuMmaWarps;
    cudaOptions.mmaStages = gpuMmaStages;
    cudaOptions.wgmmaColumns = gpuWgmmaColumns;
    cudaOptions.wgmmaStages = gpuWgmmaStages;
    cudaOptions.wgmmaRows = gpuWgmmaRows;
    cudaOptions.wgmmaTileStep = gpuWgmmaTileStep;
    cudaOptions.gemvLanes = gpuGemvLanes;
    cudaOptions.gemvUnroll = gpuGemvUnroll;
    cudaOptions.fusedGate = gpuFusedGate;
    cudaOptions.ffnColumns = gpuFfnColumns;
    cudaOptions.stageDown = gpuStageDown;
    cudaOptions.combine = gpuCombine;
    cudaOptions.wgmmaGroupTiles = gpuWgmmaGroupTiles;
    cudaOptions.downKRuns = gpuDownKRuns;
    cudaOptions.wgmmaL2Prefetch = gpuWgmmaL2Prefetch;
    cudaOptions.routerSplitK = gpuRouterSplitK;
    cudaOptions.fusedRoute = gpuFusedRoute;
    cudaOptions.wgmmaPersistent = gpuWgmmaPersistent;
    cudaOptions.wgmmaQueue = gpuWgmmaQueue;
    cudaOptions.decodeKernel = gpuDecodeKernel;
    cudaOptions.decodeDense = gpuDecodeDense;
    cudaOptions.prefetchRouter = gpuPrefetchRouter;
    cudaOptions.denseSplitK = gpuDenseSplitK;
    cudaOptions.weightsEvictFirst = gpuWeightsEvictFirst;
    cudaOptions.wgmmaWideStores = gpuWgmmaWideStores;
    cudaOptions.wgmmaKOrder = gpuWgmmaKOrder;
    cudaOptions.wgmmaBand = gpuWgmmaBand;
    cudaOptions.decodeStages = gpuDecodeStages;
    cudaOptions.decodeGridShare = gpuDecodeGridShare;
    cudaOptions.densePath = gpuDensePath;
    cudaOptions.attentionHeads = gpuAttentionHeads;
    cudaOptions.attentionUnroll = gpuAttentionUnroll;
    cudaOptions.attentionThreads = gpuAttentionThreads;
    cudaOptions.attentionSplit = gpuAttentionSplit;
    cudaOptions.attentionKernel = gpuAttentionKernel;
    cudaOptions.decodeOverlap = gpuDecodeOverlap;
    cudaOptions.earlyLaunch = gpuEarlyLaunch;
    cudaOptions.report = gpuReport;
    moe::buildCudaPipeline(pm, cudaOptions);
  } else {
    moe::buildCpuPipeline(pm);
  }
  if (failed(pm.run(*module)))
    return fail(Twine("the ") + (cuda ? "CUDA" : "CPU") +
                " pipeline failed (see the diagnostics above)");
  if (failed(checkLowered(*module, cuda,
                          Twine("by the ") + (cuda ? "CUDA" : "CPU") +
                              " backend (it is left after the pipeline)")))
    return 1;
  if (cpuModule) {
    PassManager cpuPm(&context);
    if (failed(applyPassManagerCLOptions(cpuPm)))
      return fail("invalid pass manager options");
    moe::buildCpuPipeline(cpuPm);
    if (failed(cpuPm.run(*cpuModule)))
      return fail("the CPU pipeline failed on the model's CPU fallback (see "
                  "the diagnostics above; --cpu-fallback=false builds the "
                  "GPU code alone)");
    if (failed(checkLowered(*cpuModule, /*gpu=*/false,
                            "by the CPU backend, which the model's CPU "
                            "fallback needs (--cpu-fallback=false builds the "
                            "GPU code alone)")))
      return 1;
    if (failed(moe::mergeCpuFallback(*module, *cpuModule, *cpuSignature)))
      return 1;
  }
  if (failed(moe::addExecutableEntry(
          *module, *signature, cuda && gpuReport,
          cpuModule ? &*cpuSignature : nullptr)))
    return 1;

  if (emit == Emit::MLIR) {
    std::unique_ptr<llvm::ToolOutputFile> out =
        openOutputFile(outputFile, &errorMessage);
    if (!out)
      return fail(errorMessage);
    module->print(out->os());
    out->keep();
    return 0;
  }

  moe::ObjectOptions options;
  options.cpu = cpu;
  options.optLevel = optLevel;
  if (emit == Emit::LLVMIR || emit == Emit::Obj) {
    bool toStdout = outputFile == "-";
    std::string path = toStdout ? "-" : temporaryBeside(outputFile);
    if (failed(moe::emitObject(*module, path, options, emit == Emit::LLVMIR,
                               errorMessage)))
      return fail(errorMessage);
    if (!toStdout) {
      if (std::error_code ec = llvm::sys::fs::rename(path, outputFile)) {
        llvm::sys::fs::remove(path);
        return fail("cannot write '" + outputFile + "': " + ec.message());
      }
    }
    return 0;
  }

  llvm::SmallString<128> object;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("moe-model", "o", object))
    return fail("cannot create a temporary object file: " + ec.message());
  llvm::FileRemover removeObject(object);
  if (failed(moe::emitObject(*module, object, options, /*emitLLVMIR=*/false,
                             errorMessage)))
    return fail(errorMessage);
  return link(object, outputFile, findRuntimeDir(argv[0]),
              emit == Emit::Shared);
}
