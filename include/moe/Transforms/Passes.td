//===- Passes.td - moe code generation transforms ----------*- tablegen -*-===//
//
// Part of moe-compiler. Target-specific transforms on upstream dialects.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_PASSES_TD
#define MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def CpuMatmulLoopOrder : Pass<"moe-cpu-matmul-loop-order"> {
  let summary = "Order matmul loops as (m, k, n) for row-major CPU code";
  let description = [{
    Rewrites `linalg.matmul` into a `linalg.generic` whose loops run
    (m, k, n): the innermost loop walks a row of B and a row of C with unit
    stride, which LLVM vectorizes, instead of a column of B. Each C element
    still accumulates over k in increasing order, so results are bitwise those
    of the (m, n, k) order.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def MergeEqualFunctions : Pass<"moe-merge-equal-functions", "::mlir::ModuleOp"> {
  let summary = "Keep one of each set of structurally equal private functions";
  let description = [{
    Private functions with a body that are structurally equal (the same
    signature, function attributes, and operations with the same names,
    attributes, properties, types and use-def structure, locations aside)
    become one: the first in the module is kept, calls of the others call
    it, and they are erased. A function used other than by `func.call` is
    left alone. In a whole model alike layers (`-moe-outline-layers`), the
    loop nests of identical layers (`-moe-cpu-outline-loops`), which differ
    only in the weights and buffers they take as arguments, and the host
    code of identical layers' GPU helpers then compile once
    (`test/bench/compile_time.py`).
  }];
  let statistics = [
    Statistic<"numMerged", "merged", "functions erased for an equal one">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect"];
}

def OutlineLayers : Pass<"moe-outline-layers", "::mlir::ModuleOp"> {
  let summary = "Move each layer of a whole model into a function of its own";
  let description = [{
    In every function with at least `min-layers` of them, each run of
    consecutive top-level operations whose locations name the same layer
    (a `NameLoc` such as `"model.layers.3.self_attn"`: the name up to its
    first numeric component, `model.layers.3`, as the Hugging Face import
    names them) moves into a private function named after the layer, which
    takes the values the run uses from above (the layer's input, weights,
    KV caches, position) as arguments and returns those it defines and the
    rest of the function uses (internal linkage). Constants are cloned in.
    Placed before `-moe-merge-equal-functions`, a model whose layers are
    alike is then lowered and compiled one layer at a time, not once a
    layer. Run before bufferization, the KV caches a layer updates are
    results equivalent to its arguments, which
    `-moe-drop-equivalent-private-results` drops after bufferization so
    that no copy remains.
  }];
  let options = [
    Option<"minLayers", "min-layers", "int64_t", /*default=*/"2",
           "outline only in functions with at least this many layers">,
  ];
  let statistics = [
    Statistic<"numOutlined", "outlined", "layers outlined">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::scf::SCFDialect"];
}

def DropEquivalentPrivateResults
    : Pass<"moe-drop-equivalent-private-results", "::mlir::ModuleOp"> {
  let summary = "Drop the memref results of private functions that are "
                "their arguments";
  let description = [{
    Upstream's `-drop-equivalent-buffer-results` for private functions
    only: a memref result that is one of the function's arguments (or a
    `memref.cast` of one) is dropped, and its calls use their operand
    instead. Public functions keep their signatures (a model's entry
    returns its KV caches by name).
  }];
  let statistics = [
    Statistic<"numDropped", "dropped", "results dropped">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::memref::MemRefDialect"];
}

def CpuOutlineLoops : Pass<"moe-cpu-outline-loops", "::mlir::ModuleOp"> {
  let summary = "Outline the top-level loop nests of large functions into "
                "functions of their own";
  let description = [{
    In every function with at least `min-nests` top-level region operations
    (`scf.for`, `scf.parallel`, `scf.while`, `scf.if`: after bufferization
    and the lowering of linalg to loops, the loop nests of a whole model's
    layers), each of them moves into a private function of its own
    (`<function>.nest<N>`, internal, `noinline`) that takes the values it
    uses from above as arguments; constants are cloned into it. A nest
    that uses a memref the bare-pointer calling convention cannot pass (a
    dynamic shape, stride or offset) stays. LLVM's function passes, several
    of which take time superlinear in a function's size (dominator trees,
    scalar evolution's guards), then see many small functions instead of
    one with every layer, and a whole model compiles in time linear in its
    layers (`test/bench/compile_time.py`). Each nest costs one call where
    it runs. (`-moe-merge-equal-functions` then keeps one of the nests that
    identical layers share.)
  }];
  let options = [
    Option<"minNests", "min-nests", "int64_t", /*default=*/"16",
           "outline only in functions with at least this many top-level "
           "loop nests (0: in every function)">,
  ];
  let statistics = [
    Statistic<"numOutlined", "outlined", "loop nests outlined">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::scf::SCFDialect"];
}

def GpuProgrammaticLaunch
    : Pass<"moe-gpu-programmatic-launch", "::mlir::ModuleOp"> {
  let summary = "Let each kernel start while the one before it finishes "
                "(Hopper programmatic dependent launch)";
  let description = [{
    Opens every kernel of the module's gpu.modules with
    `nvvm.griddepcontrol wait`: no thread reads or writes memory before the
    previous grid on the stream has completed and its writes are visible.
    The next grid is then scheduled as this one's blocks exit (the implicit
    trigger). With `early`, grids of more than one wave (more blocks than
    the SMs hold at 2048 threads each) also trigger it right after the wait
    (`nvvm.griddepcontrol launch_dependents`); on an H200 that was no
    faster at any point of the layer benchmark and slower at some (an
    early trigger in every kernel made the 16-token Mixtral layer 16%
    slower: the next kernel's blocks wait resident beside a grid of one
    wave). The runtime launches
    kernels with programmatic stream serialization, so that a kernel's
    launch, block scheduling and prologue overlap the tail of the one
    before it: at decode sizes a MoE layer is a
    chain of five short kernels, each a few microseconds. Without that
    launch attribute both instructions do nothing, so the kernels stay
    correct under any launch. Every kernel gets them, so none can be
    launched early without its wait. A kernel that has a wait already
    (anywhere: the expert GEMVs place theirs after loads that need nothing
    from the previous grid) is left as it is.
  }];
  let options = [
    Option<"early", "early", "bool", "false",
           "also launch_dependents right after the wait in grids of more "
           "than one wave (default false: the next kernel is scheduled as "
           "this one's blocks exit, which measured as fast or faster)">
  ];
  let dependentDialects = ["::mlir::NVVM::NVVMDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::scf::SCFDialect"];
}

def GpuCheckConvergence
    : Pass<"moe-gpu-check-convergence", "::mlir::ModuleOp"> {
  let summary = "Refuse kernels whose warp- or block-collective operations "
                "sit under thread-dependent control flow";
  let description = [{
    A conservative divergence analysis of every kernel of the module's
    gpu.modules, on structured control flow (before scf-to-cf): a value is
    uniform over the block (constants, block and grid ids and sizes,
    kernel arguments, loads at uniform addresses), uniform over each warp
    (the thread id divided by a multiple of 32, and what is computed from
    such values), or divergent (the thread id otherwise, atomic results,
    and anything computed from them). `gpu.shuffle` and the warp-wide
    tensor-core operations (`nvgpu.ldmatrix`, `nvgpu.mma.sync`) need every
    enclosing `scf.if` condition and `scf.for` bound uniform over the warp,
    `gpu.barrier` uniform over the block: otherwise the kernel can hang or
    read undefined values (a `shfl.sync` with a full mask in a `lane < k`
    branch hung an H200). Such an operation is an error naming the
    condition; the analysis knows nothing of data invariants, so a kernel
    that is correct only because of one is refused too.
  }];
}

def GpuExternDynamicShared
    : Pass<"moe-gpu-extern-dynamic-shared", "::mlir::gpu::GPUModuleOp"> {
  let summary = "Place dynamic shared memory after a kernel's static shared "
                "buffers";
  let description = [{
    Runs after `convert-gpu-to-nvvm`. Upstream lowers
    `gpu.dynamic_shared_memory` to an internal zero-length global of
    address space 3, which NVPTX prints as a one-byte static `.shared`
    variable: ptxas then places it among the kernel's other static shared
    buffers (workgroup attributions), and what a kernel addresses through
    it overlaps them. Given external linkage, the global becomes
    `.extern .shared ... []`, CUDA's dynamic shared memory, which starts
    after all static shared memory. (A kernel with both, the decode
    kernel, raced on its own queue slots without this.)
  }];
}

def GpuAddExpertKernels : Pass<"moe-gpu-add-expert-kernels", "ModuleOp"> {
  let summary = "Add the expert-path GPU kernels to a gpu.module";
  let description = [{
    Builds the kernels of the expert fusion group into the gpu.module named
    by `module`, creating it if needed: the grouped memory-bound GEMV
    (`grouped_gemv_bf16`), the activation kernels
    (`expert_<activation>_<gated|plain>`) and `round_bf16`. Host code launches
    them by symbol; it may declare them first with an empty body marked
    `moe.generate`.
  }];
  let options = [
    Option<"moduleName", "module", "std::string", "\"kernels\"",
           "name of the gpu.module that receives the kernels">
  ];
  let dependentDialects = [
    "::mlir::gpu::GPUDialect", "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect", "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect", "::mlir::LLVM::LLVMDialect",
    "::mlir::NVVM::NVVMDialect"
  ];
}

#endif // MOE_TRANSFORMS_PASSES_TD
