// A 192-row wgmma tile's band (rows 128-191) with the operands swapped
// (--gpu-wgmma-band=swap16|swap32): the weights are each wgmma's A,
// MN-major (imm-trans-a 1), the band's rows its B, K-major (imm-trans-b
// 0), in sub-bands of 16 (m64n16k16) or 32 rows (m64n32k16) instead of
// the m64n128k16 MMAs over all 64 rows; the main 128 rows keep their
// m64n256k16 (trans-a 0, trans-b 1). Both expert kernels (the up kernel's
// silu pairs, the down kernel's scatter or weighted rows) take it, and
// ptxas compiles them without serializing their wgmmas (C7520).
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=128 --gpu-wgmma-band=swap16 --emit=mlir | FileCheck %s --check-prefix=NAMES16
// NAMES16-DAG: @moe_kernels::@moe_wgmma_pair_silu_bf16_m192s128_n256_{{[a-z0-9_]*}}_sw16_
// NAMES16-DAG: @moe_kernels::@moe_wgmma_weighted_bf16_m192s128_n256_{{[a-z0-9_]*}}_sw16_
// RUN: moe-compile %s --target=cuda --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=128 --gpu-combine=atomic --gpu-wgmma-band=swap32 --emit=mlir | FileCheck %s --check-prefix=NAMES32
// NAMES32-DAG: @moe_kernels::@moe_wgmma_pair_silu_bf16_m192s128_n256_{{[a-z0-9_]*}}_sw32_
// NAMES32-DAG: @moe_kernels::@moe_wgmma_scatter_bf16_m192s128_n256_{{[a-z0-9_]*}}_sw32_
// The default keeps the m64 band; so does a tile that is not 192 rows.
// RUN: moe-compile %s --target=cuda --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=128 --emit=mlir | FileCheck %s --check-prefix=DEFAULT
// RUN: moe-compile %s --target=cuda --gpu-wgmma-rows=128 --gpu-wgmma-band=swap16 --emit=mlir | FileCheck %s --check-prefix=DEFAULT
// DEFAULT: @moe_kernels::@moe_wgmma_pair_silu_bf16
// DEFAULT-NOT: _sw{{16|32}}
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-band=swap64 --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: error: wgmma-band must be auto, m64, swap16 or swap32, got 'swap64'
// RUN: moe-opt %s --moe-cuda-pipeline="path=wgmma wgmma-rows=192 wgmma-tile-step=128 combine=rows wgmma-band=swap16 format=isa" -o %t.16.mlir
// RUN: %python %moe_src_root/test/Target/Inputs/ptx-of.py %t.16.mlir %t.16.ptx
// RUN: FileCheck %s --check-prefix=PTX16 < %t.16.ptx
// RUN: %ptxas -arch=sm_90a -v %t.16.ptx -o /dev/null 2>&1 | FileCheck %s --check-prefix=PTXAS --implicit-check-not=C7520
// PTX16-LABEL: .entry moe_wgmma_pair_silu_bf16_m192s128_n256
// PTX16-NOT: m64n128k16
// PTX16: wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 0, 1;
// PTX16-NOT: m64n128k16
// PTX16: wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 1, 0;
// PTX16-NOT: m64n128k16
// PTX16-LABEL: .entry moe_wgmma_weighted_bf16_m192s128_n256
// PTX16-NOT: m64n128k16
// PTX16: wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 1, 0;
// PTX16-NOT: m64n128k16
// RUN: moe-opt %s --moe-cuda-pipeline="path=wgmma wgmma-rows=192 wgmma-tile-step=128 combine=atomic wgmma-band=swap32 format=isa" -o %t.32.mlir
// RUN: %python %moe_src_root/test/Target/Inputs/ptx-of.py %t.32.mlir %t.32.ptx
// RUN: FileCheck %s --check-prefix=PTX32 < %t.32.ptx
// RUN: %ptxas -arch=sm_90a -v %t.32.ptx -o /dev/null 2>&1 | FileCheck %s --check-prefix=PTXAS --implicit-check-not=C7520
// PTX32-LABEL: .entry moe_wgmma_scatter_bf16_m192s128_n256
// PTX32-NOT: m64n128k16
// PTX32: wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 1, 0;
// PTX32: atom.global.add.f32
// PTXAS-DAG: Compiling entry function 'moe_wgmma_pair_silu_bf16_m192s128_n256
// PTXAS-DAG: Compiling entry function 'moe_wgmma_{{weighted|scatter}}_bf16_m192s128_n256
func.func @layer(%x: tensor<1024x256xbf16>, %router: tensor<256x8xbf16>,
                 %w_up: tensor<8x256x512xbf16>, %w_gate: tensor<8x256x512xbf16>,
                 %w_down: tensor<8x512x256xbf16>) -> tensor<1024x256xbf16> {
  %y = moe.layer %x : tensor<1024x256xbf16> router(%router : tensor<256x8xbf16>) up(%w_up : tensor<8x256x512xbf16>) gate(%w_gate : tensor<8x256x512xbf16>) down(%w_down : tensor<8x512x256xbf16>) {activation = #moe.activation<silu>, renormalize, score_func = #moe.score_func<softmax>, top_k = 2 : i64} -> tensor<1024x256xbf16>
  return %y : tensor<1024x256xbf16>
}
