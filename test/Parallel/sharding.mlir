// The annotations, weight by weight, on a pyramid-residual MoE (PR-MoE:
// 32 then 64 GeLU experts, top-1, each layer beside a residual MLP mixed by
// mlp_coef), 16 layers of 4096 x 16384 experts. The output must verify and
// round-trip.
// RUN: moe-opt %s --moe-plan-parallelism="gpus=8 layers-multiplier=8" 2>/dev/null | moe-opt | FileCheck %s --check-prefix=AUTO
// RUN: moe-opt %s --moe-plan-parallelism="gpus=16 layers-multiplier=8 ep=2 es=8 tp=16" 2>/dev/null | FileCheck %s --check-prefix=BOTH
// RUN: not moe-opt %s --moe-plan-parallelism="gpus=1 layers-multiplier=8" 2>&1 | FileCheck %s --check-prefix=REFUSE

// One token, 8 GPUs: every expert and the residual MLP sliced eight ways
// over the tensor axis (the busiest GPU reads 1/8 of an expert and of the MLP).
// AUTO: shard.grid @moe_grid(shape = 1x1x8) {moe.axes = ["data", "expert", "tensor"]}
// AUTO-LABEL: func.func @pr_moe
// AUTO-SAME: (%[[X:.+]]: tensor<?x4096xbf16>, %[[R0:.+]]: tensor<4096x32xbf16>, %[[U0:.+]]: tensor<32x4096x16384xbf16>, %[[D0:.+]]: tensor<32x16384x4096xbf16>, %[[MU0:.+]]: tensor<4096x16384xbf16>, %[[MD0:.+]]: tensor<16384x4096xbf16>, %[[MC0:.+]]: tensor<4096x2xbf16>,
// AUTO: %[[REP:.+]] = shard.sharding @moe_grid split_axes = {{\[\[}}]] : !shard.sharding
// AUTO: %[[SR0:.+]] = shard.shard %[[R0]] to %[[REP]] : tensor<4096x32xbf16>
// AUTO: %[[UPS:.+]] = shard.sharding @moe_grid split_axes = {{\[\[}}], [], [2]] : !shard.sharding
// AUTO: %[[SU0:.+]] = shard.shard %[[U0]] to %[[UPS]] : tensor<32x4096x16384xbf16>
// AUTO: %[[DOWNS:.+]] = shard.sharding @moe_grid split_axes = {{\[\[}}], [2]] : !shard.sharding
// AUTO: %[[SD0:.+]] = shard.shard %[[D0]] to %[[DOWNS]] : tensor<32x16384x4096xbf16>
// AUTO: %[[SMU0:.+]] = shard.shard %[[MU0]] to %[[DOWNS]] : tensor<4096x16384xbf16>
// AUTO: %[[MDS:.+]] = shard.sharding @moe_grid split_axes = {{\[\[}}2]] : !shard.sharding
// AUTO: %[[SMD0:.+]] = shard.shard %[[MD0]] to %[[MDS]] : tensor<16384x4096xbf16>
// AUTO: %[[SMC0:.+]] = shard.shard %[[MC0]] to %[[REP]] : tensor<4096x2xbf16>
// AUTO: moe.layer %[[X]] : tensor<?x4096xbf16> router(%[[SR0]] : {{.*}}) up(%[[SU0]] : {{.*}}) down(%[[SD0]] : {{.*}}) mlp_up(%[[SMU0]] : {{.*}}) mlp_down(%[[SMD0]] : {{.*}}) mlp_coef(%[[SMC0]] : {{.*}})
// AUTO-SAME: moe.plan = {dp = 1 : i64, ep = 1 : i64, es = 8 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 8 : i64, weight_bytes_per_gpu = 1107574784 : i64}
// AUTO: moe.layer
// AUTO-SAME: moe.plan = {dp = 1 : i64, ep = 1 : i64, es = 8 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 8 : i64, weight_bytes_per_gpu = 2181578752 : i64}

// Pinned ep=2 es=8 tp=16: experts over the expert axis, their ffn over the
// tensor axis, the residual MLP's ffn over both axes.
// BOTH: shard.grid @moe_grid(shape = 1x2x8)
// BOTH: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// BOTH: shard.sharding @moe_grid split_axes = {{\[\[}}1], [], [2]]
// BOTH: shard.sharding @moe_grid split_axes = {{\[\[}}1], [2]]
// BOTH: shard.sharding @moe_grid split_axes = {{\[\[}}], [1, 2]]
// BOTH: shard.sharding @moe_grid split_axes = {{\[\[}}1, 2]]
// BOTH: moe.plan = {dispatch = "all-reduce", dp = 1 : i64, ep = 2 : i64, es = 8 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 16 : i64, weight_bytes_per_gpu = 553926656 : i64}

// REFUSE: error: moe-plan-parallelism: the model needs 210.46 GB of weights (2 moe.layer x 8); at 141.00 GB per GPU (126.90 GB for weights) it needs at least 2 GPUs, got 1

func.func @pr_moe(%x: tensor<?x4096xbf16>,
    %r0: tensor<4096x32xbf16>, %u0: tensor<32x4096x16384xbf16>, %d0: tensor<32x16384x4096xbf16>,
    %mu0: tensor<4096x16384xbf16>, %md0: tensor<16384x4096xbf16>, %mc0: tensor<4096x2xbf16>,
    %r1: tensor<4096x64xbf16>, %u1: tensor<64x4096x16384xbf16>, %d1: tensor<64x16384x4096xbf16>,
    %mu1: tensor<4096x16384xbf16>, %md1: tensor<16384x4096xbf16>, %mc1: tensor<4096x2xbf16>) -> tensor<?x4096xbf16> {
  %y0 = moe.layer %x : tensor<?x4096xbf16> router(%r0 : tensor<4096x32xbf16>) up(%u0 : tensor<32x4096x16384xbf16>) down(%d0 : tensor<32x16384x4096xbf16>) mlp_up(%mu0 : tensor<4096x16384xbf16>) mlp_down(%md0 : tensor<16384x4096xbf16>) mlp_coef(%mc0 : tensor<4096x2xbf16>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<?x4096xbf16>
  %y1 = moe.layer %y0 : tensor<?x4096xbf16> router(%r1 : tensor<4096x64xbf16>) up(%u1 : tensor<64x4096x16384xbf16>) down(%d1 : tensor<64x16384x4096xbf16>) mlp_up(%mu1 : tensor<4096x16384xbf16>) mlp_down(%md1 : tensor<16384x4096xbf16>) mlp_coef(%mc1 : tensor<4096x2xbf16>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<?x4096xbf16>
  return %y1 : tensor<?x4096xbf16>
}
