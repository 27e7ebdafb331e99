// The few-rows path's plan for one token of an OLMoE-shaped layer (64
// experts, top 8, hidden 2048, ffn 1024), four kernels:
// - the gating kernel (gate = blocks, threads, K rows a block) adds the
//   router's logits over 16 blocks of 128 rows, clears the accumulated
//   buffers (no memset) and routes in its last block (one token: _t1, one
//   warp selects and writes the offsets, hit and mapping, no scans);
// - the up and gate GEMVs, then the down GEMV: K split across blocks (at
//   least 64 rows each), then across the lanes of a warp, eight rows in
//   flight a lane; each plan is (blocks x, splits, threads, kchunk, lanes,
//   unroll); the down projection applies SwiGLU as it reads;
// - the rounding.
// With --gpu-fused-gate=never: one memset, the router GEMV (its 64 columns
// fill a warp with 4 lanes, 32 rows a block) and the routing kernel. With
// --gpu-ffn-columns=32 the expert FFN is one kernel (ffn = column slices,
// slots, threads, columns a slice): 32 slices of 32 columns for each of the
// 8 experts, up and gate over all of d, SwiGLU, then those 32 rows of the
// down projection added into the token's row (auto takes it only with many
// slices: cuda-ffn-plan.mlir).
// The decode chain overlaps kernels (decode_overlap = "chain" at one
// token): the gating kernel and both GEMVs let the next kernel launch
// right after their grid dependency wait, and the down GEMV issues its
// first weight loads (and reads its slot's expert from L2) before its own
// wait; it computes SwiGLU of its 64 rows of the up projection once a
// block into shared memory (stage_down = 64). --gpu-decode-overlap=never
// --gpu-stage-down=never gives the kernels without either.
// That chain is what --gpu-decode-kernel=never gives. By default one token
// with two or more experts hit runs as one persistent decode kernel and the
// rounding (decode_kernel = blocks, gating items, up items, down items):
// items taken from a queue counter (the first before the grid dependency
// wait), the last gating item releases the routing, GEMV items acquire it
// and read the experts hit from L2 once a block, an up item releases its
// slot's count after a barrier, a down item issues its first 8 weight rows
// and then acquires its slot's count.
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --gpu-decode-kernel=never --emit=mlir -o %t.mlir
// RUN: FileCheck %s < %t.mlir
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa decode-kernel=never prefetch-router=never" | FileCheck %s --check-prefix=PTX
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s --check-prefix=DECODE
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa prefetch-router=never" | FileCheck %s --check-prefix=DECODEPTX
// RUN: not moe-compile %s --target=cuda --gpu-decode-kernel=always --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADDECODE
// RUN: moe-compile %s --target=cuda --gpu-decode-stages=3 --emit=mlir | FileCheck %s --check-prefix=STAGES
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa decode-stages=3" | FileCheck %s --check-prefix=STAGESPTX
// RUN: not moe-compile %s --target=cuda --gpu-decode-stages=4 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADSTAGES
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa ffn-columns=32" | FileCheck %s --check-prefix=FFNPTX
// RUN: moe-compile %s --target=cuda --gpu-fused-gate=never --emit=mlir | FileCheck %s --check-prefix=SEPARATE
// RUN: moe-compile %s --target=cuda --gpu-ffn-columns=32 --emit=mlir | FileCheck %s --check-prefix=FFN
// RUN: moe-compile %s --target=cuda --gpu-ffn-columns=128 --emit=mlir | FileCheck %s --check-prefix=WIDE
// RUN: moe-compile %s --target=cuda --gpu-decode-kernel=never --gpu-gemv-lanes=1 --gpu-gemv-unroll=4 --emit=mlir | FileCheck %s --check-prefix=FORCED
// RUN: not moe-compile %s --target=cuda --gpu-gemv-lanes=3 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADLANES
// RUN: not moe-compile %s --target=cuda --gpu-gemv-unroll=6 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADUNROLL
// RUN: not moe-opt %s --moe-cuda-pipeline="gemv-lanes=16" 2>&1 | FileCheck %s --check-prefix=BADOPT
// RUN: not moe-compile %s --target=cuda --gpu-fused-gate=sometimes --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADGATE
// RUN: not moe-compile %s --target=cuda --gpu-ffn-columns=48 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADFFN
// RUN: moe-compile %s --target=cuda --gpu-decode-kernel=never --gpu-decode-overlap=never --gpu-stage-down=never --emit=mlir | FileCheck %s --check-prefix=PLAIN
// RUN: not moe-compile %s --target=cuda --gpu-decode-overlap=sometimes --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADOVERLAP
// RUN: not moe-compile %s --target=cuda --gpu-stage-down=always --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADSTAGE
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa prefetch-router=never" | FileCheck %s --check-prefix=NOPF
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=PF
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa decode-kernel=never" | FileCheck %s --check-prefix=PFGATE
// RUN: not moe-compile %s --target=cuda --gpu-prefetch-router=sometimes --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADPF

// CHECK: moe.gpu_plan = {decode_overlap = "chain", down = array<i64: 4, 16, 256, 64, 4, 8>, gate = array<i64: 16, 256, 128>, path = "gemv", slots = 8 : i64, stage_down = 64 : i64, up = array<i64: 1, 32, 256, 64, 2, 8>}
// CHECK-NOT: llvm.call @mgpuMemset32(
// CHECK: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_gate_e64_k8_softmax_renorm_t1_trigger_pf blocks in
// CHECK: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_gemv_gather_pair_bf16_r1_l2_u8_trigger blocks in
// CHECK: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_gemv_scatter_bf16_r1_l4_u8_silu_gated_s64_early_trigger blocks in
// CHECK: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@round_bf16 blocks in
// CHECK-NOT: gpu.launch_func
// The kernels: at most 256 threads a block, 16-byte weight loads, warps
// reduced by shuffles, 4-wide vector reductions.
// PTX: gpu.binary @moe_kernels
// PTX-SAME: .global .align 4 .b8 moe_gate_e64_k8_softmax_renorm_t1_trigger_ticket[4];
// The gating kernel: logits added by atomics, then the ticket (membar,
// atomic) and the last block's copy read from L2.
// PTX-SAME: .entry moe_gate_e64_k8_softmax_renorm_t1_trigger(
// PTX-SAME: .maxntid 256, 1, 1
// PTX-SAME: griddepcontrol.wait
// PTX-SAME: griddepcontrol.launch_dependents
// PTX-SAME: ld.global.v4.b32
// PTX-SAME: membar.gl
// PTX-SAME: atom.global.add.u32
// PTX-SAME: ld.global.cg.f32
// One token: the routing has no shared-memory counts (atomics) or scans.
// PTX-NOT: atom.shared
// PTX-SAME: .entry moe_gemv_gather_pair_bf16_r1_l2_u8_trigger(
// The down GEMV: its slot's expert read from L2 and its first 8 weight
// rows loaded before the wait (the inline-assembly loads, written without
// the tab of the compiler's own); then the activated input staged
// (barrier).
// PTX-SAME: .entry moe_gemv_scatter_bf16_r1_l4_u8_silu_gated_s64_early_trigger(
// PTX-SAME: .maxntid 256, 1, 1
// PTX-SAME: .shared .align 16 .b8 {{.*}}[256];
// PTX-SAME: ld.global.cg.b32
// PTX-SAME: ld.global.v4.b32 {
// PTX-SAME: ld.global.v4.b32 {
// PTX-SAME: ld.global.v4.b32 {
// PTX-SAME: ld.global.v4.b32 {
// PTX-SAME: ld.global.v4.b32 {
// PTX-SAME: ld.global.v4.b32 {
// PTX-SAME: ld.global.v4.b32 {
// PTX-SAME: ld.global.v4.b32 {
// PTX-SAME: griddepcontrol.wait
// PTX-SAME: griddepcontrol.launch_dependents
// PTX-SAME: ex2.approx
// PTX-SAME: st.shared.b32
// PTX-SAME: bar.sync
// PTX-SAME: ld.global.v4.b32
// PTX-SAME: ld.shared
// PTX-SAME: shfl.sync.bfly.b32
// PTX-SAME: red.global.add.v4.f32

// DECODE: moe.gpu_plan = {decode_kernel = array<i64: 264, 16, 512, 512, 0>, down = array<i64: 4, 16, 256, 64, 4, 8>, gate = array<i64: 16, 256, 128>, path = "gemv", slots = 8 : i64, stage_down = 64 : i64, up = array<i64: 1, 32, 256, 64, 2, 8>}
// DECODE-NOT: llvm.call @mgpuMemset32(
// DECODE: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_decode_e64_k8_softmax_renorm_t1_pf_up_pair_r1_l2_u8_t1_t256_down_r1_l4_u8_silu_gated_s64_early_t1_t256 blocks in (%{{.*}}, %{{.*}}, %{{.*}}) threads in
// DECODE: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@round_bf16 blocks in
// DECODE-NOT: gpu.launch_func
// DECODEPTX: gpu.binary @moe_kernels
// DECODEPTX-SAME: .entry moe_decode_e64_k8_softmax_renorm_t1_up_pair_r1_l2_u8_t1_t256_down_r1_l4_u8_silu_gated_s64_early_t1_t256(
// DECODEPTX-SAME: .maxntid 256, 1, 1
// DECODEPTX-SAME: .minnctapersm 2
// The experts' shared buffer (64 slots) 16-byte aligned: the routing word
// is packed and unpacked with vector accesses to it (4-byte aligned, they
// faulted on the GPU).
// DECODEPTX-SAME: .shared .align 16 .b8 __wg_moe_decode_{{[a-z0-9_]+}}_4[256]
// DECODEPTX-SAME: atom.global.add.u32
// DECODEPTX-SAME: griddepcontrol.wait
// DECODEPTX-SAME: griddepcontrol.launch_dependents
// The routing published: one 64-bit word, the flag and the 8 experts hit
// (a byte each), acquired; no read of them back from L2.
// DECODEPTX-SAME: ld.acquire.gpu.global.b64
// DECODEPTX-NOT: ld.global.cg.b32
// DECODEPTX-SAME: bar.sync
// The gating items: the ticket, the last one's logits from L2 into shared
// memory, the routing reading them there, the word released.
// DECODEPTX-SAME: membar.gl
// DECODEPTX-SAME: ld.global.cg.f32
// DECODEPTX-SAME: st.shared.b32
// DECODEPTX-SAME: bar.sync
// DECODEPTX-SAME: ld.shared.b32
// DECODEPTX-SAME: st.release.gpu.global.b64
// An up item: its atomics, the barrier, its slot's count released.
// DECODEPTX-SAME: red.global.add.v4.f32
// DECODEPTX-SAME: bar.sync
// DECODEPTX-SAME: red.release.gpu.global.add.u32
// A down item: 8 weight rows in flight, then its slot's count acquired,
// then the staged input read from L2.
// DECODEPTX-SAME: ld.global.v4.b32 {
// DECODEPTX-SAME: ld.global.v4.b32 {
// DECODEPTX-SAME: ld.global.v4.b32 {
// DECODEPTX-SAME: ld.global.v4.b32 {
// DECODEPTX-SAME: ld.global.v4.b32 {
// DECODEPTX-SAME: ld.global.v4.b32 {
// DECODEPTX-SAME: ld.global.v4.b32 {
// DECODEPTX-SAME: ld.global.v4.b32 {
// DECODEPTX-SAME: ld.acquire.gpu.global.b32
// DECODEPTX-SAME: bar.sync
// DECODEPTX-SAME: ld.global.cg.f32
// DECODEPTX-SAME: red.global.add.v4.f32
// BADDECODE: error: decode-kernel must be auto or never, got 'always'
// With decode-stages=3 the GEMV items copy their weight rows to a ring in
// dynamic shared memory (3 steps x 8 rows x 256 threads x 16 bytes), which
// the kernel declares after its static buffers; a step's group is waited
// for with two newer ones in flight, and the down items' early steps end
// with a wait for all.
// STAGES: moe.gpu_plan = {decode_kernel = array<i64: 264, 16, 512, 512, 3>,
// STAGES: %[[RING:[0-9]+]] = llvm.mlir.constant(98304 : i32) : i32
// STAGES: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_decode_e64_k8_softmax_renorm_t1_pf_up_pair_r1_l2_u8_t1_a3_t256_down_r1_l4_u8_silu_gated_s64_early_t1_a3_t256 blocks in (%{{.*}}, %{{.*}}, %{{.*}}) threads in (%{{.*}}, %{{.*}}, %{{.*}}) : i64 dynamic_shared_memory_size %[[RING]]
// STAGESPTX: .extern .shared .align 16 .b8 __dynamic_shmem__0[];
// STAGESPTX-SAME: .entry moe_decode_e64_k8_softmax_renorm_t1_pf_up_pair_r1_l2_u8_t1_a3_t256_down_r1_l4_u8_silu_gated_s64_early_t1_a3_t256(
// STAGESPTX-SAME: cp.async.cg.shared.global
// STAGESPTX-SAME: cp.async.commit_group;
// STAGESPTX-SAME: cp.async.wait_group {{\\09}}2;
// STAGESPTX-SAME: ld.shared.v4.b32
// STAGESPTX-SAME: cp.async.wait_group {{\\09}}0;
// BADSTAGES: error: decode-stages must be 0, 2 or 3, got 4
// FFNPTX: .entry moe_ffn_bf16_silu_gated_c32(
// FFNPTX-SAME: .maxntid 256, 1, 1
// FFNPTX-SAME: griddepcontrol.wait
// FFNPTX-SAME: ld.global.v4.b32
// FFNPTX-SAME: shfl.sync.bfly.b32
// FFNPTX-SAME: bar.sync
// FFNPTX-SAME: red.global.add.v4.f32

// SEPARATE: moe.gpu_plan = {decode_overlap = "chain", down = array<i64: 4, 16, 256, 64, 4, 8>, path = "gemv", router = array<i64: 1, 64, 32, 32, 4, 8>, slots = 8 : i64, stage_down = 64 : i64, up = array<i64: 1, 32, 256, 64, 2, 8>}
// SEPARATE-COUNT-1: llvm.call @mgpuMemset32(
// SEPARATE-NOT: llvm.call @mgpuMemset32(
// SEPARATE: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_gemv_dense_bf16_r1_l4_u8 blocks in
// SEPARATE: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_route_e64_k8_softmax_renorm_t1 blocks in
// SEPARATE: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_gemv_gather_pair_bf16_r1_l2_u8_trigger blocks in
// SEPARATE: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_gemv_scatter_bf16_r1_l4_u8_silu_gated_s64_early_trigger blocks in

// FFN: moe.gpu_plan = {ffn = array<i64: 32, 8, 256, 32>, gate = array<i64: 16, 256, 128>, path = "gemv", slots = 8 : i64}
// FFN-NOT: llvm.call @mgpuMemset32(
// FFN: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_gate_e64_k8_softmax_renorm_t1_pf blocks in
// FFN: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_ffn_bf16_silu_gated_c32 blocks in
// FFN: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@round_bf16 blocks in
// FFN-NOT: gpu.launch_func

// WIDE: moe.gpu_plan = {ffn = array<i64: 8, 8, 256, 128>, gate = array<i64: 16, 256, 128>, path = "gemv", slots = 8 : i64}
// WIDE: @moe_kernels::@moe_ffn_bf16_silu_gated_c128 blocks in

// FORCED: moe.gpu_plan = {decode_overlap = "chain", down = array<i64: 1, 16, 256, 64, 1, 4>, gate = array<i64: 16, 256, 128>, path = "gemv", slots = 8 : i64, stage_down = 64 : i64, up = array<i64: 1, 32, 128, 64, 1, 4>}
// FORCED: @moe_kernels::@moe_gemv_gather_pair_bf16_r1_trigger blocks in
// FORCED: @moe_kernels::@moe_gemv_scatter_bf16_r1_silu_gated_s64_early_trigger blocks in

// PLAIN: moe.gpu_plan = {down = array<i64: 4, 16, 256, 64, 4, 8>, gate = array<i64: 16, 256, 128>, path = "gemv", slots = 8 : i64, up = array<i64: 1, 32, 256, 64, 2, 8>}
// PLAIN: @moe_kernels::@moe_gate_e64_k8_softmax_renorm_t1_pf blocks in
// PLAIN: @moe_kernels::@moe_gemv_gather_pair_bf16_r1_l2_u8 blocks in
// PLAIN: @moe_kernels::@moe_gemv_scatter_bf16_r1_l4_u8_silu_gated blocks in

// BADLANES: moe-compile: error: --gpu-gemv-lanes / --gpu-gemv-unroll: GEMV lanes must be 0 (auto), 1, 2, 4 or 8, got 3
// BADUNROLL: moe-compile: error: --gpu-gemv-lanes / --gpu-gemv-unroll: GEMV unroll must be 0 (auto), 4 or 8, got 6
// BADOPT: error: GEMV lanes must be 0 (auto), 1, 2, 4 or 8, got 16
// BADGATE: error: fused-gate must be auto, always or never, got 'sometimes'
// BADFFN: error: ffn-columns must be 0 (auto), 32, 64, 128 or -1 (none), got 48
// BADOVERLAP: error: decode-overlap must be auto or never, got 'sometimes'
// --gpu-prefetch-router=never: the decode kernel has no prefetch: it waits
// first thing after it takes its item.
// NOPF: .entry moe_decode_e64_k8_softmax_renorm_t1_up_pair
// NOPF-NOT: prefetch
// NOPF: griddepcontrol.wait
// NOPF-NOT: prefetch
// NOPF: .entry
// By default (auto): the decode kernel (_pf) takes
// its first item, brings the router's lines into L2, then waits; so does
// the gating kernel of the chain.
// PF: .entry moe_decode_e64_k8_softmax_renorm_t1_pf_up_pair
// PF-SAME: atom.global.add.u32
// PF-SAME: prefetch.global.L2
// PF-SAME: griddepcontrol.wait
// PFGATE: .entry moe_gate_e64_k8_softmax_renorm_t1_trigger_pf(
// PFGATE-SAME: prefetch.global.L2
// PFGATE-SAME: griddepcontrol.wait
// PFGATE-SAME: griddepcontrol.launch_dependents
// BADPF: error: prefetch-router must be auto or never, got 'sometimes'
// BADSTAGE: error: stage-down must be auto or never, got 'always'

func.func @layer(%x: tensor<1x2048xbf16> {moe.input = "x"}, %router: tensor<2048x64xbf16> {moe.weight = "router"}, %w_up: tensor<64x2048x1024xbf16> {moe.weight = "w_up"}, %w_gate: tensor<64x2048x1024xbf16> {moe.weight = "w_gate"}, %w_down: tensor<64x1024x2048xbf16> {moe.weight = "w_down"}) -> (tensor<1x2048xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<1x2048xbf16> router(%router : tensor<2048x64xbf16>) up(%w_up : tensor<64x2048x1024xbf16>) gate(%w_gate : tensor<64x2048x1024xbf16>) down(%w_down : tensor<64x1024x2048xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 8 : i64} -> tensor<1x2048xbf16>
  return %y : tensor<1x2048xbf16>
}
