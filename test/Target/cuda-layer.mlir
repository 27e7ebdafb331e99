// moe-compile --target=cuda on a layer the fused GPU path takes: the whole
// layer runs on the GPU, its input and output stay device buffers
// (device-input / device-output in the signature), and the host code is
// launches only: no copies between host and device.
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --gpu-wgmma-persistent=producer --emit=mlir | FileCheck %s --check-prefix=MLIR
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s --check-prefix=TMAPS
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=TMAPTX
// RUN: moe-compile %s --target=cuda --gpu-wgmma-persistent=multicast --emit=mlir | FileCheck %s --check-prefix=MCPS
// RUN: moe-compile %s --target=cuda --gpu-wgmma-persistent=multicast --emit=llvm | FileCheck %s --check-prefix=MCLL
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa wgmma-persistent=multicast" | FileCheck %s --check-prefix=MCPTX
// RUN: moe-compile %s --target=cuda --gpu-path=mma --emit=mlir | FileCheck %s --check-prefix=MMA
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa wgmma-persistent=producer" | FileCheck %s --check-prefix=SPLITPTX
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s --check-prefix=ONEMEMSET
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=SELPTX
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s --check-prefix=SELGRID
// RUN: moe-compile %s --target=cuda --emit=llvm | FileCheck %s --check-prefix=LLVM
// RUN: moe-compile %s --target=cuda --gpu-path=gemv --emit=mlir | FileCheck %s --check-prefix=GEMV
// RUN: moe-compile %s --target=cuda --gpu-path=mma --gpu-mma-tile-m=128 --emit=mlir | FileCheck %s --check-prefix=TILE128
// RUN: not moe-compile %s --target=cuda --gpu-mma-tile-m=96 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADTILE
// RUN: not moe-opt %s --moe-cuda-pipeline="path=simd" 2>&1 | FileCheck %s --check-prefix=OPTPATH
// RUN: moe-compile %s --target=cuda --gpu-path=mma --gpu-mma-warps=8 --emit=mlir | FileCheck %s --check-prefix=WARPS8
// RUN: moe-compile %s --target=cuda --gpu-path=mma --gpu-mma-tile-m=64 --gpu-mma-stages=4 --emit=mlir | FileCheck %s --check-prefix=STAGES4
// RUN: not moe-compile %s --target=cuda --gpu-mma-stages=5 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADSTAGES
// RUN: moe-compile %s --target=cuda --gpu-path=mma --gpu-mma-tile-m=128 --gpu-mma-stages=4 --emit=mlir | FileCheck %s --check-prefix=STAGES128
// RUN: not moe-compile %s --target=cuda --gpu-mma-warps=6 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADWARPS
// RUN: not moe-compile %s --target=cuda --gpu-path=wmma --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADPATH
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-columns=192 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADWGCOLS
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-stages=5 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADWGSTAGES
// RUN: moe-compile %s --target=cuda --gpu-wgmma-rows=64 --gpu-wgmma-stages=5 --emit=mlir | FileCheck %s --check-prefix=WG64S5
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa wgmma-l2-prefetch=4" | FileCheck %s --check-prefix=PFPTX
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=NOPF
// RUN: moe-compile %s --target=cuda --gpu-wgmma-l2-prefetch=4 --gpu-report --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=PFREPORT
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-l2-prefetch=65 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADPF
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-rows=96 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADWGROWS
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-rows=64 --gpu-wgmma-persistent=multicast --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADWGROWSMC
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-rows=64 --gpu-wgmma-columns=128 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADWGROWS128
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-rows=192 --gpu-wgmma-persistent=multicast --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADTALLMC
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-rows=192 --gpu-wgmma-persistent=never --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADTALLNEVER
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-rows=192 --gpu-wgmma-columns=128 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADTALL128
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-rows=192 --gpu-wgmma-stages=5 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADTALL5
// RUN: moe-compile %s --target=cuda --gpu-wgmma-rows=192 --emit=mlir | FileCheck %s --check-prefix=TALL
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa wgmma-rows=192" | FileCheck %s --check-prefix=TALLPTX
// RUN: moe-compile %s --target=cuda --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=128 --emit=mlir | FileCheck %s --check-prefix=STEP
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa wgmma-rows=192 wgmma-tile-step=128" | FileCheck %s --check-prefix=STEPPTX
// RUN: moe-compile %s --target=cuda --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=192 --emit=mlir | FileCheck %s --check-prefix=TALL
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-tile-step=128 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADSTEPROWS
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-rows=192 --gpu-wgmma-tile-step=64 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADSTEP64
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-rows=128 --gpu-wgmma-tile-step=64 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADSTEP128
// RUN: moe-compile %s --target=cuda --gpu-combine=atomic --gpu-wgmma-group-tiles=3 --gpu-wgmma-persistent=never --emit=mlir | FileCheck %s --check-prefix=ATOMIC
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa combine=atomic wgmma-group-tiles=3 wgmma-persistent=never" | FileCheck %s --check-prefix=ATOMICPTX
// RUN: not moe-compile %s --target=cuda --gpu-combine=sum --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADCOMBINE
// RUN: moe-opt %s --moe-cuda-pipeline="wgmma-persistent=always" --mlir-print-ir-after=moe-materialize-gpu-experts --mlir-disable-threading -o /dev/null 2>&1 | FileCheck %s --check-prefix=PERSIST
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa wgmma-persistent=always" | FileCheck %s --check-prefix=PERSISTPTX
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-persistent=maybe --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADPERSIST
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-group-tiles=-3 --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADGROUP
// RUN: moe-compile %s --target=cuda --gpu-wgmma-queue=never --emit=mlir | FileCheck %s --check-prefix=NOQUEUE
// RUN: not moe-compile %s --target=cuda --gpu-wgmma-queue=sometimes --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADQUEUE
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa weights-evict-first=never" | FileCheck %s --check-prefix=NOEF
// RUN: not moe-compile %s --target=cuda --gpu-weights-evict-first=always --emit=mlir 2>&1 | FileCheck %s --check-prefix=BADEF
// RUN: moe-compile %s --target=cuda --gpu-wgmma-columns=128 --gpu-wgmma-stages=5 --emit=mlir | FileCheck %s --check-prefix=QUEUE5
// RUN: moe-compile %s --target=cuda --gpu-wgmma-columns=128 --gpu-wgmma-stages=6 --emit=mlir | FileCheck %s --check-prefix=NOQUEUE6
// RUN: moe-compile %s --target=cuda --ranks 2 --plan "ep=2 dispatch=all-reduce min-slice=8" --emit=mlir 2>/dev/null | FileCheck %s --check-prefix=EPAR
// RUN: moe-compile %s --target=cuda --ranks 2 --plan "ep=2 dispatch=all-reduce min-slice=8" --gpu-path=gemv --emit=mlir 2>/dev/null | FileCheck %s --check-prefix=EPARGEMV
// RUN: moe-compile %s --target=cuda --ranks 2 --plan "es=2 min-slice=8" --emit=mlir 2>/dev/null | FileCheck %s --check-prefix=ES

// 256 tokens, top-2 of 8: 64 rows per expert, the tensor-core path on
// warpgroup MMAs (128-row tiles); the router's logits on tensor cores too
// (8 columns: mma.sync; its 2 row tiles split over K in 2, the halves
// added by atomics), and routing in two parts (256 tokens). With
// --gpu-path=mma: mma.sync with 64-row tiles and three cp.async stages.
// The down kernel stores each assignment's weighted row (bf16, 128 KiB in
// all: the combine by rows) and the combine kernel sums each token's two;
// the 12 row tiles are one group (their rows fit the L2 many times over).
// The wgmma kernels are persistent and warp-specialised: a block per
// (tile, column block) pair up to one an SM (24 pairs up, 12 down), of
// three warpgroups, the third (the producer) issuing the copies (here all
// by cp.async, as asked: by default a gated layer's weights come by TMA,
// TMAPS below).
// MLIR: llvm.func @__moe_gpu_layer_0(
// MLIR-SAME: moe.gpu_plan = {combine = "rows", group_tiles = array<i64: 0, 0>, path = "wgmma", persistent, producer, queue, router = "mma", router_split_k = 2 : i64,
// MLIR-DAG: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_mma_dense_f32_m128_s2_splitk blocks in
// MLIR-DAG: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_route_e8_k2_softmax_renorm_tiles128_select blocks in
// MLIR-DAG: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_route_e8_k2_softmax_renorm_tiles128_finish blocks in
// MLIR-DAG: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_wgmma_pair_silu_bf16_n256_s4_ws_q_v16 blocks in (%{{.*}}, %{{.*}}, %{{.*}}) threads in (%[[WS:[a-z0-9_]+]],
// MLIR-DAG: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_wgmma_weighted_bf16_n256_s4_ws_q_v16 blocks in (%{{.*}}, %{{.*}}, %{{.*}}) threads in (%[[WS]],
// MLIR-DAG: %[[WS]] = llvm.mlir.constant(384 : index)
// MLIR-DAG: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_combine_k2_bf16 blocks in (%{{.*}}, %{{.*}}, %{{.*}}) threads in (%{{.*}}, %{{.*}}, %{{.*}}) : i64 args(
// MLIR-NOT: round_bf16
// One memset clears what the layer accumulates, the routing's counts
// included: none between the router and the select kernel (a graph's
// memset node kept the select kernel about 4.5 us behind the router).
// ONEMEMSET: llvm.call @mgpuMemset32
// ONEMEMSET-NOT: llvm.call @mgpuMemset32
// ONEMEMSET: @moe_kernels::@moe_route_e8_k2_softmax_renorm_tiles128_select
// ONEMEMSET-NOT: llvm.call @mgpuMemset32
// ONEMEMSET: llvm.func @mgpuMemset32
// The select kernel's blocks count in shared memory, then take each
// expert's base with one global atomic.
// The select grid: 256 tokens in blocks of 16 (a warp a token, 512 threads).
// SELGRID-DAG: @moe_kernels::@moe_route_e8_k2_softmax_renorm_tiles128_select blocks in (%[[SB:[0-9]+]], %{{[0-9]+}}, %{{[0-9]+}}) threads in (%[[ST:[0-9]+]],
// SELGRID-DAG: %[[SB]] = llvm.mlir.constant(16 : index)
// SELGRID-DAG: %[[ST]] = llvm.mlir.constant(512 : index)
// SELPTX: .entry moe_route_e8_k2_softmax_renorm_tiles128_select(
// SELPTX-SAME: .maxntid 512, 1, 1
// SELPTX-SAME: atom.shared.add.u32
// SELPTX-SAME: atom.global.add.u32
// SELPTX-SAME: .entry
// The router's K split: grid z picks the run of K steps, the tile's sums
// go out as f32 vector atomics; the routing's finish kernel maps the
// assignments strided over its blocks.
// SPLITPTX: .entry moe_mma_dense_f32_m128_s2_splitk(
// SPLITPTX-SAME: %ctaid.z
// SPLITPTX-SAME: %nctaid.z
// SPLITPTX-SAME: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// SPLITPTX-SAME: red.global.add.v2.f32
// SPLITPTX-SAME: .entry moe_route_e8_k2_softmax_renorm_tiles128_finish(
// SPLITPTX-SAME: %ctaid.x
// SPLITPTX-SAME: %nctaid.x
// The weighted down kernel: plain bf16 pair stores, no atomics. The
// combine kernel: both rows' 16-byte loads before the sum, one 16-byte
// store (LLVM sums two bf16 rows as bf16x2: the same as the f32 sum
// rounded once). The warp-specialised kernel: thread 0 initialises the
// stages' full and empty mbarriers; the producer waits for a stage's
// release, issues its copies and has the full mbarrier track them; the
// MMA warpgroups wait for it, fence the copies into the async proxy, and
// release the stage of the step before once one wgmma group is left in
// flight. The producer's first thread takes each pair from the kernel's
// counter and the producer warpgroup meets at a named barrier to read it.
// SPLITPTX-SAME: .entry moe_wgmma_weighted_bf16_n256_s4_ws_q_v16(
// SPLITPTX-SAME: .maxntid 384, 1, 1
// SPLITPTX-SAME: mbarrier.init.shared.b64
// SPLITPTX-SAME: atom.global.add.u32
// SPLITPTX-SAME: bar.sync {{\\09}}1, 128;
// SPLITPTX-SAME: cp.async.cg.shared.global
// SPLITPTX-SAME: cp.async.mbarrier.arrive.noinc.shared.b64
// SPLITPTX-SAME: mbarrier.try_wait.parity.shared.b64
// SPLITPTX-SAME: fence.proxy.async.shared::cta
// SPLITPTX-SAME: wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
// SPLITPTX-SAME: wgmma.wait_group.sync.aligned {{\\09}}1;
// SPLITPTX-SAME: mbarrier.arrive.shared.b64
// SPLITPTX-NOT: red.global.add
// SPLITPTX-SAME: st.global.b32
// SPLITPTX-SAME: .entry moe_combine_k2_bf16(
// SPLITPTX-SAME: ld.global.v4.b32
// SPLITPTX-SAME: ld.global.v4.b32
// SPLITPTX-SAME: add.rn.{{f32|bf16x2}}
// SPLITPTX-SAME: st.global.v4.b32

// The combine by atomics, and groups of 3 row tiles, on the plain grid of
// a block per (tile, column block) pair: the f32 output
// cleared, the down kernel adds weighted rows by vector atomics, the
// rounding kernel (8 elements a thread, two 16-byte loads, one store); the
// blocks find their tile and column block from their place in launch order.
// ATOMIC: moe.gpu_plan = {combine = "atomic", group_tiles = array<i64: 3, 3>,
// ATOMIC-DAG: @moe_kernels::@moe_wgmma_pair_silu_bf16_n256_s4_g3_v16 blocks in
// ATOMIC-DAG: @moe_kernels::@moe_wgmma_scatter_bf16_n256_s4_g3 blocks in
// ATOMIC-DAG: @moe_kernels::@round_bf16 blocks in
// ATOMIC-NOT: moe_combine_k
// ATOMICPTX: .entry moe_wgmma_scatter_bf16_n256_s4_g3(
// ATOMICPTX-SAME: %ctaid.y
// ATOMICPTX-SAME: %nctaid.x
// ATOMICPTX-SAME: red.global.add.v2.f32
// ATOMICPTX-SAME: .entry round_bf16(
// ATOMICPTX-SAME: ld.global.v4.b32
// ATOMICPTX-SAME: ld.global.v4.b32
// ATOMICPTX-SAME: cvt.rn.bf16x2.f32
// ATOMICPTX-SAME: st.global.v4.b32
// BADCOMBINE: error: combine must be auto, atomic or rows, got 'sum'

// The persistent wgmma form without the producer (slower,
// results/combine-rows-2026-12-02.md): a block per (tile, column block)
// pair up to one an SM (24 pairs up, 12 down); each block counts the live
// tiles (a shared atomic) and streams its pairs' K steps.
// PERSIST: moe.gpu_plan = {combine = "rows", group_tiles = array<i64: 0, 0>, path = "wgmma", persistent,
// PERSIST: gpu.launch_func  @moe_kernels::@moe_wgmma_pair_silu_bf16_n256_s4_p_v16 blocks in (%c24, %c1{{[_0-9]*}}, %c1{{[_0-9]*}})
// PERSIST: gpu.launch_func  @moe_kernels::@moe_wgmma_weighted_bf16_n256_s4_p_v16 blocks in (%c12, %c1{{[_0-9]*}}, %c1{{[_0-9]*}})
// PERSISTPTX: .entry moe_wgmma_weighted_bf16_n256_s4_p_v16(
// PERSISTPTX-SAME: atom.shared.add.u32
// PERSISTPTX-SAME: %nctaid.x
// PERSISTPTX-SAME: wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
// PERSISTPTX-SAME: wgmma.wait_group.sync.aligned {{\\09}}0;
// The producer's weights by TMA (the default for gated layers): the host makes the
// tensor maps (one a matrix) before any GPU work (a host call between the
// launches would synchronize the stream there) and passes their device
// addresses. In the kernel, the producer's first thread acquires the maps;
// after a stage's release it has the full mbarrier expect the weights'
// bytes and issues their TMA boxes (64 columns x 64 K rows, one per B atom:
// four); all producer threads copy the rows by cp.async, tracked by the
// same mbarrier (in the PTX the loop is rotated: the copies come first).
// TMAPS: moe.gpu_plan = {{{.*}}, persistent, producer, {{.*}}, weights_tma, wide_stores}
// TMAPS-COUNT-3: llvm.call @moert_cuda_tensor_map_bf16(
// TMAPS-NOT: mgpuStreamSynchronize
// TMAPS: llvm.call @mgpuStreamCreate()
// TMAPS-NOT: llvm.call @moert_cuda_tensor_map_bf16(
// TMAPS: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_wgmma_pair_silu_bf16_n256_s4_ws_tma_ef_q_v16 blocks in
// TMAPTX: .entry moe_wgmma_weighted_bf16_n256_s4_ws_tma_ef_q_v16(
// TMAPTX-SAME: .maxntid 384, 1, 1
// TMAPTX-SAME: mbarrier.init.shared.b64
// TMAPTX-SAME: fence.proxy.tensormap::generic.acquire.gpu
// TMAPTX-SAME: cp.async.cg.shared.global
// TMAPTX-SAME: cp.async.mbarrier.arrive.noinc.shared.b64
// TMAPTX-SAME: mbarrier.try_wait.parity.shared.b64
// TMAPTX-SAME: mbarrier.arrive.expect_tx.shared.b64
// TMAPTX-SAME: cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.L2::cache_hint
// TMAPTX-SAME: cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.L2::cache_hint
// TMAPTX-SAME: mbarrier.try_wait.parity.shared.b64
// TMAPTX-SAME: fence.proxy.async.shared::cta
// TMAPTX-SAME: wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
// TMAPTX-SAME: mbarrier.arrive.shared.b64
// The weights multicast in clusters of two (wgmma-persistent=multicast):
// 256-row tiles from the routing, the wgmma kernels launched in clusters
// (an even grid), each block's leader bringing two of the four atoms to
// both blocks; a stage goes back to the producer on the arrivals of this
// block's MMA threads and of one thread a warpgroup of the other block.
// MCPS: moe.gpu_plan = {{{.*}}, persistent, producer, {{.*}}, tile = array<i64: 256, 256, 64>, {{.*}}, weights_multicast = 2 : i64, weights_tma, wide_stores}
// MCPS: @moe_kernels::@moe_route_e8_k2_softmax_renorm_tiles256_select
// MCPS: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_wgmma_pair_silu_bf16_n256_s4_ws_tma_ef_mc2_v16 clusters in
// MCLL: call void @mgpuLaunchClusterKernel(ptr %{{.*}}, i64 2, i64 1, i64 1, i64 {{[0-9]*[02468]}}, i64 1, i64 1, i64 384,
// MCPTX: .entry moe_wgmma_weighted_bf16_n256_s4_ws_tma_ef_mc2_v16(
// MCPTX-SAME: mbarrier.init.shared.b64
// MCPTX-SAME: fence.mbarrier_init.release.cluster
// MCPTX-SAME: barrier.cluster.arrive
// MCPTX-SAME: barrier.cluster.wait
// MCPTX-SAME: mbarrier.arrive.expect_tx.shared.b64
// MCPTX-SAME: cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster
// MCPTX-SAME: cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster
// MCPTX-NOT: .multicast::cluster
// MCPTX-SAME: wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
// MCPTX-SAME: mapa.shared::cluster
// MCPTX-SAME: mbarrier.arrive.release.cluster.shared::cluster.b64
// MCPTX-SAME: barrier.cluster.arrive
// MCPTX-SAME: barrier.cluster.wait
// BADPERSIST: error: wgmma-persistent must be auto, always, producer, tma, multicast or never, got 'maybe'
// BADGROUP: error: wgmma-group-tiles must be -1 (auto), -2 (each expert's tiles), 0 or a tile count, got -3
// Round-robin pairs instead of the pair counter: no counter argument, no
// `queue` in the plan, the kernels without the `_q` suffix.
// NOQUEUE: moe.gpu_plan = {combine = "rows", evict_first, group_tiles = array<i64: 0, 0>, path = "wgmma", persistent, producer, router = "mma"
// NOQUEUE-NOT: _ws_q
// NOQUEUE: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_wgmma_pair_silu_bf16_n256_s4_ws_tma_ef_v16 blocks in
// NOQUEUE-NOT: _ws_q
// BADQUEUE: error: wgmma-queue must be auto, always or never, got 'sometimes'
// The weights' TMA loads without the L2 evict-first policy where asked.
// NOEF-NOT: L2::cache_hint
// NOEF: .entry moe_wgmma_weighted_bf16_n256_s4_ws_tma_q_v16(
// NOEF-SAME: cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [
// NOEF-NOT: L2::cache_hint
// BADEF: error: weights-evict-first must be auto or never, got 'always'
// The counter's ring of taken values covers up to 5 stages (the producer
// runs at most stages + 2 pairs ahead): beyond, the round-robin order.
// QUEUE5: moe.gpu_plan = {{{.*}}, persistent, producer, queue, {{.*}}stages = 5 : i64, tile = array<i64: 128, 128, 64>
// QUEUE5: @moe_wgmma_pair_silu_bf16_n128_s5_ws_tma_ef_q_v16 blocks in
// NOQUEUE6: moe.gpu_plan = {{{.*}}, persistent, producer, router = {{.*}}stages = 6 : i64, tile = array<i64: 128, 128, 64>
// NOQUEUE6: @moe_wgmma_pair_silu_bf16_n128_s6_ws_tma_ef_v16 blocks in
// MMA: llvm.func @__moe_gpu_layer_0(
// MMA-DAG: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_route_e8_k2_softmax_renorm_tiles64_select blocks in
// MMA-DAG: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_mma_pair_silu_bf16_m64_s3_w4 blocks in
// MMA-DAG: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@moe_mma_weighted_bf16_m64_s3_w4 blocks in
// MLIR: gpu.binary @moe_kernels
// MLIR: @moe_model_signature("capturable-step\0Adevice-input x BF16 256x128\0Adevice-weight router BF16 128x8\0Adevice-weight w_up BF16 8x128x256\0Adevice-weight w_gate BF16 8x128x256\0Adevice-weight w_down BF16 8x256x128\0Adevice-output y BF16 256x128\0A\00")

// LLVM-NOT: call void @mgpuMemcpy
// LLVM: call void @mgpuLaunchKernel(
// LLVM-NOT: call void @mgpuMemcpy

// The GEMV path: up and gate in one launch, the down projection applying
// SwiGLU as it reads them (no activation kernel).
// GEMV-DAG: @moe_kernels::@moe_gemv_gather_pair_bf16
// GEMV-DAG: @moe_kernels::@moe_gemv_scatter_bf16{{[_a-z0-9]*}}_silu_gated
// GEMV-NOT: {{moe_(wg)?mma_(pair|plain|scatter)|expert_silu_gated}}

// BADPATH: moe-compile: error: unknown --gpu-path 'wmma' (expected auto, gemv, mma or wgmma)
// BADPATH-NOT: moe.layer
// BADWGCOLS: moe-compile: error: --gpu-wgmma-columns / --gpu-wgmma-stages / --gpu-wgmma-rows / --gpu-wgmma-tile-step: wgmma tiles are 128 or 256 columns wide, got 192
// BADWGSTAGES: moe-compile: error: --gpu-wgmma-columns / --gpu-wgmma-stages / --gpu-wgmma-rows / --gpu-wgmma-tile-step: 5 stages of a 256-column tile do not fit: 246784 bytes of shared memory (232448 at most, 3 stages at least), sized for 128-row tiles with rows chosen per layer (64-row tiles, --gpu-wgmma-rows=64, fit them)
// Five stages fit 64-row tiles: 5 x (64 + 256) rows of 128 bytes + 1 KB.
// WG64S5: llvm.mlir.constant(205824 : i32)
// WG64S5-DAG: @moe_kernels::@moe_wgmma_pair_silu_bf16_m64_n256_s5_
// WG64S5-DAG: @moe_kernels::@moe_wgmma_weighted_bf16_m64_n256_s5_

// The weights of K step kt + 4 into L2 as the producer issues step kt
// (--gpu-wgmma-l2-prefetch): a prefetch per weight atom (four in each
// kernel here: the up kernel's two matrices of two atoms, the down
// kernel's four), by the tensor maps the loads take; none by default.
// PFPTX: .entry moe_wgmma_pair_silu_bf16_n256_s4_ws_tma_ef_q_v16_pf4(
// PFPTX-SAME: cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.L2::cache_hint
// PFPTX-SAME: cp.async.bulk.prefetch.tensor.3d.L2.global.tile
// PFPTX-SAME: .entry moe_wgmma_weighted_bf16_n256_s4_ws_tma_ef_q_v16_pf4(
// PFPTX-SAME: cp.async.bulk.prefetch.tensor.3d.L2.global.tile
// NOPF: .entry moe_wgmma_weighted_bf16_n256_s4_ws_tma_ef_q_v16(
// NOPF-NOT: cp.async.bulk.prefetch
// PFREPORT: remark: the GPU layer's routed experts: wgmma, {{.*}}, persistent, weights into L2 4 K steps ahead,
// BADPF: error: wgmma-l2-prefetch must be 0 (none) or a count of K steps from 1 to 64, got 65

// 192-row tiles (--gpu-wgmma-rows=192; the planner's where they multiply
// at most 0.95x the rows of 128-row tiles): the routing's tiles of 192
// rows, the producer form with TMA weights (230400 bytes of dynamic shared
// memory, 4 stages of 192 + 256 rows of 128 bytes + 1 KB: whole-model-
// cuda-wgmma.test checks the launch); one block an SM
// so that setmaxnreg knows the entry count (168 at 384 threads), the
// producer warpgroup down to 56 registers, the MMA warpgroups up to 224
// (192 accumulators). Each K step: the main m64n256 wgmmas, then, where
// the tile has more than 128 rows, the band's m64n128 ones (fenced in
// their branch), one group committed, one left in flight.
// TALL: moe.gpu_plan = {{{.*}}path = "wgmma", persistent, producer, {{.*}}tile = array<i64: 192, 256, 64>, {{.*}}weights_tma, wide_stores}
// TALL: @moe_kernels::@moe_route_e8_k2_softmax_renorm_tiles192_select
// TALL: gpu.launch_func {{.*}}@moe_kernels::@moe_wgmma_pair_silu_bf16_m192_n256_s4_ws_tma_ef_q_v16 blocks in
// TALLPTX: .entry moe_wgmma_pair_silu_bf16_m192_n256_s4_ws_tma_ef_q_v16(
// TALLPTX-SAME: .maxntid 384, 1, 1
// TALLPTX-SAME: .minnctapersm 1
// TALLPTX-SAME: setmaxnreg.dec.sync.aligned.u32 {{\\09}}56;
// TALLPTX-SAME: setmaxnreg.inc.sync.aligned.u32 {{\\09}}224;
// TALLPTX-SAME: wgmma.fence.sync.aligned;
// TALLPTX-SAME: wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
// TALLPTX-SAME: @%p{{[0-9]+}} bra
// TALLPTX-SAME: wgmma.fence.sync.aligned;
// TALLPTX-SAME: wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16
// TALLPTX-SAME: wgmma.commit_group.sync.aligned;
// TALLPTX-SAME: wgmma.wait_group.sync.aligned {{\\09}}1;
// BADWGROWS: moe-compile: error: --gpu-wgmma-columns / --gpu-wgmma-stages / --gpu-wgmma-rows / --gpu-wgmma-tile-step: wgmma tiles are 64, 128 or 192 rows high, got 96
// BADWGROWSMC: error: multicast wgmma clusters take 128-row tiles, got 64 rows
// 192-row tiles 128 rows apart (--gpu-wgmma-tile-step=128): an expert's
// tiles of 128 rows until at most 192 are left, its last tile; the plan
// says so (tile_step), the routing's tile table and the kernels are named
// for it. The producer copies a tile's band rows (128-191) only where the
// band's MMAs run (a tile of more than 128 rows): a branch in each K step
// around those rows' cp.async copies.
// STEP: moe.gpu_plan = {{{.*}}tile = array<i64: 192, 256, 64>, tile_step = 128 : i64,
// STEP: @moe_kernels::@moe_route_e8_k2_softmax_renorm_tiles192s128_select
// STEP: gpu.launch_func {{.*}}@moe_kernels::@moe_wgmma_pair_silu_bf16_m192s128_n256_s4_ws_tma_ef_q_v16 blocks in
// STEPPTX: .entry moe_route_e8_k2_softmax_renorm_tiles192s128_finish(
// STEPPTX: .entry moe_wgmma_pair_silu_bf16_m192s128_n256_s4_ws_tma_ef_q_v16(
// STEPPTX-SAME: setmaxnreg.dec.sync.aligned.u32 {{\\09}}56;
// STEPPTX-SAME: cp.async.cg.shared.global
// STEPPTX-SAME: @%p{{[0-9]+}} bra
// STEPPTX-SAME: cp.async.cg.shared.global
// STEPPTX-SAME: cp.async.mbarrier.arrive.noinc.shared.b64
// BADSTEPROWS: moe-compile: error: --gpu-wgmma-columns / --gpu-wgmma-stages / --gpu-wgmma-rows / --gpu-wgmma-tile-step: a wgmma tile step needs the tiles' rows (192), got step 128 with rows chosen per layer
// BADSTEP64: moe-compile: error: --gpu-wgmma-columns / --gpu-wgmma-stages / --gpu-wgmma-rows / --gpu-wgmma-tile-step: wgmma tiles start 192 rows apart (or 128 with 192-row tiles), got 64
// BADSTEP128: moe-compile: error: --gpu-wgmma-columns / --gpu-wgmma-stages / --gpu-wgmma-rows / --gpu-wgmma-tile-step: wgmma tiles start 128 rows apart (or 128 with 192-row tiles), got 64
// BADTALLMC: error: multicast wgmma clusters take 128-row tiles, got 192 rows
// BADTALLNEVER: error: 192-row wgmma tiles need the producer warpgroup (wgmma-persistent auto, producer or tma), got wgmma-persistent=never
// BADTALL128: moe-compile: error: --gpu-wgmma-columns / --gpu-wgmma-stages / --gpu-wgmma-rows / --gpu-wgmma-tile-step: 192-row wgmma tiles are 256 columns wide, got 128
// BADTALL5: moe-compile: error: --gpu-wgmma-columns / --gpu-wgmma-stages / --gpu-wgmma-rows / --gpu-wgmma-tile-step: 5 stages of a 256-column tile do not fit: 287744 bytes of shared memory (232448 at most, 3 stages at least)
// BADWGROWS128: moe-compile: error: --gpu-wgmma-columns / --gpu-wgmma-stages / --gpu-wgmma-rows / --gpu-wgmma-tile-step: 64-row wgmma tiles are 256 columns wide, got 128

// OPTPATH: error: unknown GPU expert path 'simd' (expected auto, gemv, mma or wgmma)
// OPTPATH-NOT: see current operation

// TILE128: @moe_kernels::@moe_route_e8_k2_softmax_renorm_tiles128_select
// TILE128: @moe_kernels::@moe_mma_pair_silu_bf16_m128_s2_w4

// WARPS8: @moe_kernels::@moe_mma_pair_silu_bf16_m64_s3 blocks in
// BADWARPS: moe-compile: error: --gpu-mma-warps must be 0 (auto), 4 or 8, got 6

// Expert parallel over 2 GPUs with replicated tokens: each rank's fused
// layer routes over all 8 experts, the localize kernel narrows the step to
// its 4 (offset from its expert coordinate), one all-reduce sums the ranks.
// EPAR-DAG: llvm.call @moert_comm_group_rank
// EPAR-DAG: @moe_kernels::@moe_route_e8_k2_softmax_renorm_tiles128_finish
// EPAR-DAG: @moe_kernels::@moe_localize_experts_tiles
// EPAR-DAG: @moe_kernels::@moe_wgmma_pair_silu_bf16_n256_s4
// EPAR-DAG: @moe_kernels::@moe_wgmma_scatter_bf16_n256_s4
// EPAR-DAG: llvm.call @moert_comm_all_reduce_device(
// EPAR: @moe_model_signature("grid 1x2x1\0Adevice-input x BF16 256x128\0Adevice-weight router BF16 128x8\0Adevice-weight w_up BF16 4x128x256 split=1|-|-\0Adevice-weight w_gate BF16 4x128x256 split=1|-|-\0Adevice-weight w_down BF16 4x256x128 split=1|-|-\0Adevice-output y BF16 256x128\0A\00")
// EPARGEMV-DAG: @moe_kernels::@moe_localize_experts blocks
// EPARGEMV-DAG: @moe_kernels::@moe_gemv_gather_pair_bf16
// EPARGEMV-DAG: @moe_kernels::@moe_gemv_scatter_bf16

// Expert slicing over 2 GPUs: the same fused layer on each rank's ffn
// halves, no localize step, one all-reduce.
// ES-NOT: moe_localize_experts
// ES-DAG: @moe_kernels::@moe_wgmma_pair_silu_bf16_n256_s4
// ES-DAG: llvm.call @moert_comm_all_reduce_device(
// ES: @moe_model_signature("grid 1x1x2\0Adevice-input x BF16 256x128\0Adevice-weight router BF16 128x8\0Adevice-weight w_up BF16 8x128x128 split=-|-|2

// BADTILE: moe-compile: error: --gpu-mma-tile-m must be 0 (auto), 64 or 128, got 96
// BADTILE-NOT: moe.layer
func.func @layer(%x: tensor<256x128xbf16> {moe.input = "x"}, %router: tensor<128x8xbf16> {moe.weight = "router"},
                 %w_up: tensor<8x128x256xbf16> {moe.weight = "w_up"}, %w_gate: tensor<8x128x256xbf16> {moe.weight = "w_gate"},
                 %w_down: tensor<8x256x128xbf16> {moe.weight = "w_down"}) -> (tensor<256x128xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<256x128xbf16> router(%router : tensor<128x8xbf16>) up(%w_up : tensor<8x128x256xbf16>) gate(%w_gate : tensor<8x128x256xbf16>) down(%w_down : tensor<8x256x128xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64} -> tensor<256x128xbf16>
  return %y : tensor<256x128xbf16>
}
// Four cp.async stages of the mma.sync tiles, as asked (static shared
// memory: 56 KB at 64 rows, 76 KB at 128; ptxas allows 227 KB on sm_90).
// STAGES4: moe.gpu_plan = {{{.*}}path = "mma"{{.*}}stages = 4 : i64
// STAGES4-DAG: @moe_kernels::@moe_mma_pair_silu_bf16_m64_s4_w4 blocks in
// STAGES4-DAG: @moe_kernels::@moe_mma_weighted_bf16_m64_s4_w4 blocks in
// BADSTAGES: error: --gpu-mma-stages must be 0 (auto), 2, 3 or 4, got 5
// STAGES128: moe.gpu_plan = {{{.*}}path = "mma"{{.*}}stages = 4 : i64, tile = array<i64: 128, 128, 32>
// STAGES128-DAG: @moe_kernels::@moe_mma_pair_silu_bf16_m128_s4_w4 blocks in
