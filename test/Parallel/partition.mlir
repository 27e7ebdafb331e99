// The per-rank program of planned layers: slicing, routing, the expert
// exchanges and the collectives, pinned for representative plans.
// RUN: moe-opt %s --moe-plan-parallelism="gpus=4 ep=2 es=2 tp=2 dispatch=all-to-all min-slice=8" --moe-partition 2>/dev/null | FileCheck %s --check-prefix=EPES
// RUN: moe-opt %s --moe-plan-parallelism="gpus=2 ep=2 dispatch=all-to-all min-slice=8" --moe-partition 2>/dev/null | FileCheck %s --check-prefix=EP
// RUN: moe-opt %s --moe-plan-parallelism="gpus=2 es=2 tp=2 min-slice=8" --moe-partition 2>/dev/null | FileCheck %s --check-prefix=ES
// RUN: moe-opt %s --moe-plan-parallelism="gpus=64 gpus-per-host=8 ep=32 es=2 tp=2 dispatch=all-to-all min-slice=8" --moe-partition 2>/dev/null | FileCheck %s --check-prefix=EP32
// RUN: moe-opt %s --moe-plan-parallelism="gpus=4 ep=2 es=2 tp=4 dispatch=all-reduce min-slice=8" --moe-partition 2>/dev/null | FileCheck %s --check-prefix=AR
// RUN: moe-opt %s --moe-plan-parallelism="gpus=4 ep=2 es=2 tp=4 min-slice=8" 2>&1 >/dev/null | FileCheck %s --check-prefix=AUTO
// RUN: moe-opt %s --moe-partition | FileCheck %s --check-prefix=NOGRID

// 7 tokens over ep=2: padded to 8, 4 per rank; the padding row routes
// nowhere; capacity = ep * 4 tokens * min(k=2, 32 experts / 2) = 16 rows.
// EPES: shard.grid @moe_grid(shape = 1x2x2)
// EPES-LABEL: func.func @layer
// EPES-SAME: %{{.*}}: tensor<16x32xbf16> {moe.split = [array<i16>, array<i16>], moe.weight = "router"}
// EPES-SAME: %{{.*}}: tensor<16x16x32xbf16> {moe.split = [array<i16: 1>, array<i16>, array<i16: 2>], moe.weight = "w_up"}
// EPES-SAME: %{{.*}}: tensor<16x32x16xbf16> {moe.split = [array<i16: 1>, array<i16: 2>, array<i16>], moe.weight = "w_down"}
// EPES-SAME: %{{.*}}: tensor<16x32xbf16> {moe.split = [array<i16>, array<i16: 2>], moe.weight = "shared_up"}
// EPES-SAME: %{{.*}}: tensor<32x16xbf16> {moe.split = [array<i16: 2>, array<i16>], moe.weight = "shared_down"}
// EPES: tensor.pad {{.*}} high[1, 0]
// EPES: %[[X:.+]] = shard.all_slice %{{.*}} on @moe_grid grid_axes = [1] slice_axis = 0 : tensor<8x16xbf16> -> tensor<4x16xbf16>
// EPES: moe.router %[[X]]
// EPES: shard.process_multi_index on @moe_grid axes = [1]
// EPES: arith.cmpi ult
// EPES: %[[P:.+]], %[[OFF:.+]], %[[MAP:.+]] = moe.dispatch %[[X]]
// EPES: %[[R:.+]], %[[ROFF:.+]], %[[CNT:.+]] = moe.dispatch_exchange %[[P]] : tensor<8x16xbf16> offsets(%[[OFF]] : tensor<33xi32>) {grid = @moe_grid, grid_axes = array<i16: 1>, group_size = 2 : i64} -> tensor<16x16xbf16>, tensor<17xi32>, tensor<2x16xi32>
// EPES: %[[Y:.+]] = moe.experts %[[R]] : tensor<16x16xbf16> offsets(%[[ROFF]] : tensor<17xi32>) up(%{{.*}} : tensor<16x16x32xbf16>)
// EPES: %[[BACK:.+]] = moe.combine_exchange %[[Y]] : tensor<16x16xbf16> counts(%[[CNT]] : tensor<2x16xi32>) offsets(%[[OFF]] : tensor<33xi32>)
// EPES: moe.mlp %[[X]] : tensor<4x16xbf16> up(%{{.*}} : tensor<16x32xbf16>)
// EPES: %[[C:.+]] = moe.combine %[[BACK]]
// EPES: %[[SUM:.+]] = shard.all_reduce %[[C]] on @moe_grid grid_axes = [2] : tensor<4x16xbf16> -> tensor<4x16xbf16>
// EPES: %[[ALL:.+]] = shard.all_gather %[[SUM]] on @moe_grid grid_axes = [1] gather_axis = 0 : tensor<4x16xbf16> -> tensor<8x16xbf16>
// EPES: tensor.extract_slice %[[ALL]][0, 0] [7, 16] [1, 1]
// EPES-NOT: shard.shard
// EPES-NOT: shard.sharding

// Expert parallelism only: no all-reduce; the shared expert is replicated.
// EP: shard.grid @moe_grid(shape = 1x2x1)
// EP: moe.dispatch_exchange
// EP: moe.combine_exchange
// EP-NOT: shard.all_reduce
// EP: shard.all_gather

// Expert slicing only: every rank routes all tokens itself and runs the
// whole layer on its ffn slices (the fused GPU layer where it applies); no
// exchange, one all-reduce.
// ES: shard.grid @moe_grid(shape = 1x1x2)
// ES-NOT: shard.all_slice
// ES-NOT: moe.dispatch_exchange
// ES: %[[Y:.+]] = moe.layer %{{.*}} : tensor<7x16xbf16> {{.*}} up(%{{.*}} : tensor<32x16x32xbf16>)
// ES-NOT: expert_offset
// ES: shard.all_reduce %[[Y]] on @moe_grid grid_axes = [2]
// ES-NOT: shard.all_gather

// Expert parallelism with replicated tokens: each rank runs the layer on its
// 16 experts (those from its expert coordinate x 16) and the ffn slice of
// them and of the shared expert (tp = 4 GPUs); one all-reduce over both axes.
// AR: shard.grid @moe_grid(shape = 1x2x2)
// AR-LABEL: func.func @layer
// AR-SAME: %{{.*}}: tensor<16x16x32xbf16> {moe.split = [array<i16: 1>, array<i16>, array<i16: 2>], moe.weight = "w_up"}
// AR-SAME: %{{.*}}: tensor<16x16xbf16> {moe.split = [array<i16>, array<i16: 1, 2>], moe.weight = "shared_up"}
// AR-NOT: shard.all_slice
// AR: %[[C:.+]] = shard.process_multi_index on @moe_grid axes = [1]
// AR: %[[FIRST:.+]] = arith.muli %[[C]], %c16
// AR: %[[Y:.+]] = moe.layer %{{.*}} : tensor<7x16xbf16> router(%{{.*}} : tensor<16x32xbf16>) up(%{{.*}} : tensor<16x16x32xbf16>) {{.*}} expert_offset(%[[FIRST]])
// AR: shard.all_reduce %[[Y]] on @moe_grid grid_axes = [1, 2] : tensor<7x16xbf16> -> tensor<7x16xbf16>
// AR-NOT: moe.dispatch_exchange
// AR-NOT: shard.all_gather

// The planner picks the all-reduce for 7 tokens (one collective of 224
// bytes beats two exchanges and a gather), and says why.
// AUTO: remark: moe-plan-parallelism: dispatch by all-reduce (all-to-all and gathers {{.*}}, one all-reduce of the replica's tokens {{.*}})

// 64 GPUs (8 hosts): one expert per rank pair, 7 tokens over 32 ranks
// (1 each, 25 padding rows).
// EP32: shard.grid @moe_grid(shape = 1x32x2)
// EP32: shard.all_slice {{.*}} : tensor<32x16xbf16> -> tensor<1x16xbf16>
// EP32: moe.dispatch_exchange {{.*}} group_size = 32 : i64} -> tensor<32x16xbf16>, tensor<2xi32>, tensor<32x1xi32>
// EP32: shard.all_gather {{.*}} : tensor<1x16xbf16> -> tensor<32x16xbf16>

// Not planned: nothing changes.
// NOGRID-NOT: shard.
// NOGRID: moe.layer

func.func @layer(%x: tensor<7x16xbf16>, %r: tensor<16x32xbf16> {moe.weight = "router"},
                 %u: tensor<32x16x64xbf16> {moe.weight = "w_up"}, %g: tensor<32x16x64xbf16> {moe.weight = "w_gate"},
                 %d: tensor<32x64x16xbf16> {moe.weight = "w_down"},
                 %su: tensor<16x64xbf16> {moe.weight = "shared_up"}, %sd: tensor<64x16xbf16> {moe.weight = "shared_down"}) -> tensor<7x16xbf16> {
  %y = moe.layer %x : tensor<7x16xbf16> router(%r : tensor<16x32xbf16>) up(%u : tensor<32x16x64xbf16>) gate(%g : tensor<32x16x64xbf16>) down(%d : tensor<32x64x16xbf16>) shared_up(%su : tensor<16x64xbf16>) shared_down(%sd : tensor<64x16xbf16>) {activation = #moe.activation<silu>, top_k = 2 : i64} -> tensor<7x16xbf16>
  return %y : tensor<7x16xbf16>
}
