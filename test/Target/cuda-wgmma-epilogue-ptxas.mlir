// The wgmma kernels' bf16 epilogue (the up kernel's silu pairs, the down
// kernel's weighted rows) swaps bf16 pairs between the 4 threads of a row
// with shuffles and stores 16 bytes a thread. A shuffle under a branch
// there (the column-block or row checks) made ptxas serialize every wgmma
// of the kernel ("C7520 ... wgmma.mma_async instructions are serialized
// due to program dependence on compiler-inserted WG.AR in divergent path"),
// and the 192-row tiles of Mixtral at 1024 tokens 1.06x slower on an H100;
// the shuffles now run outside any branch and only the stores are checked.
// ptxas must compile the kernels, of each tile height, without it.
// The planner takes them where experts get 64 rows or more (here 256; at
// 128 tokens 32, where the shuffles and activations of a tile's empty rows
// cost more than they save), and not where asked not to.
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --gpu-report --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT
// RUN: sed 's/1024x256/128x256/g' %s | moe-compile - --target=cuda --gpu-report --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=FEW
// RUN: moe-compile %s --target=cuda --gpu-wgmma-wide-stores=never --gpu-report --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=NEVER
// REPORT: remark: the GPU layer's routed experts: wgmma, {{.*}}, 16-byte row stores,
// FEW: remark: the GPU layer's routed experts: wgmma,
// FEW-NOT: 16-byte row stores
// NEVER: remark: the GPU layer's routed experts: wgmma,
// NEVER-NOT: 16-byte row stores
// With gelu (its erf on 4 pairs at once spilled) the up kernel keeps the
// per-pair stores: combined by atomics no kernel takes them; by weighted
// rows the down kernel does.
// RUN: sed 's/activation<silu>/activation<gelu>/' %s | moe-compile - --target=cuda --gpu-combine=atomic --gpu-report --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=GELU-ATOMIC
// RUN: sed 's/activation<silu>/activation<gelu>/' %s | moe-compile - --target=cuda --gpu-combine=rows --emit=mlir | FileCheck %s --check-prefix=GELU-ROWS
// GELU-ATOMIC: remark: the GPU layer's routed experts: wgmma,
// GELU-ATOMIC-NOT: 16-byte row stores
// GELU-ROWS-DAG: @moe_wgmma_pair_gelu_bf16_{{[a-z0-9_]*}}_q blocks
// GELU-ROWS-DAG: @moe_wgmma_weighted_bf16_{{[a-z0-9_]*}}_q_v16 blocks
// RUN: moe-opt %s --moe-cuda-pipeline="path=wgmma wgmma-rows=192 wgmma-tile-step=128 combine=rows format=isa" -o %t.192.mlir
// RUN: %python %moe_src_root/test/Target/Inputs/ptx-of.py %t.192.mlir %t.192.ptx
// RUN: %ptxas -arch=sm_90a -v %t.192.ptx -o /dev/null 2>&1 | FileCheck %s --check-prefix=M192 --implicit-check-not=C7520
// RUN: moe-opt %s --moe-cuda-pipeline="path=wgmma wgmma-rows=128 combine=rows format=isa" -o %t.128.mlir
// RUN: %python %moe_src_root/test/Target/Inputs/ptx-of.py %t.128.mlir %t.128.ptx
// RUN: %ptxas -arch=sm_90a -v %t.128.ptx -o /dev/null 2>&1 | FileCheck %s --check-prefix=M128 --implicit-check-not=C7520
// RUN: moe-opt %s --moe-cuda-pipeline="path=wgmma wgmma-rows=64 combine=rows format=isa" -o %t.64.mlir
// RUN: %python %moe_src_root/test/Target/Inputs/ptx-of.py %t.64.mlir %t.64.ptx
// RUN: %ptxas -arch=sm_90a -v %t.64.ptx -o /dev/null 2>&1 | FileCheck %s --check-prefix=M64 --implicit-check-not=C7520
// RUN: FileCheck %s --check-prefix=PTX < %t.192.ptx
// M192-DAG: Compiling entry function 'moe_wgmma_pair_silu_bf16_m192s128_n256
// M192-DAG: Compiling entry function 'moe_wgmma_weighted_bf16_m192s128_n256
// M128-DAG: Compiling entry function 'moe_wgmma_pair_silu_bf16_n256
// M128-DAG: Compiling entry function 'moe_wgmma_weighted_bf16_n256
// M64-DAG: Compiling entry function 'moe_wgmma_pair_silu_bf16_m64_n256
// M64-DAG: Compiling entry function 'moe_wgmma_weighted_bf16_m64_n256
// PTX-LABEL: .entry moe_wgmma_pair_silu_bf16_m192s128_n256
// PTX: shfl.sync.bfly.b32
// PTX: st.global.v4.b32
// PTX-LABEL: .entry moe_wgmma_weighted_bf16_m192s128_n256
// PTX: shfl.sync.bfly.b32
// PTX: st.global.v4.b32
func.func @layer(%x: tensor<1024x256xbf16>, %router: tensor<256x8xbf16>,
                 %w_up: tensor<8x256x512xbf16>, %w_gate: tensor<8x256x512xbf16>,
                 %w_down: tensor<8x512x256xbf16>) -> tensor<1024x256xbf16> {
  %y = moe.layer %x : tensor<1024x256xbf16> router(%router : tensor<256x8xbf16>) up(%w_up : tensor<8x256x512xbf16>) gate(%w_gate : tensor<8x256x512xbf16>) down(%w_down : tensor<8x512x256xbf16>) {activation = #moe.activation<silu>, renormalize, score_func = #moe.score_func<softmax>, top_k = 2 : i64} -> tensor<1024x256xbf16>
  return %y : tensor<1024x256xbf16>
}
