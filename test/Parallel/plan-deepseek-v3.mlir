// Pinned plans for DeepSeek-V3's routed experts and shared expert: 58 MoE layers (2 moe.layer x 29), 256 SwiGLU experts of ffn 2048, top-8 with group-limited sigmoid routing, 1.31 TB in bf16.
// Latency: one token per step. Throughput: 16 tokens per GPU per step.
// 8 GPUs per host, 141 GB H200s (the defaults).
//
// RUN: not moe-opt %s --moe-plan-parallelism="gpus=1 layers-multiplier=29 objective=latency tokens=1" 2>&1 | FileCheck %s --check-prefix=LAT1
// RUN: not moe-opt %s --moe-plan-parallelism="gpus=2 layers-multiplier=29 objective=latency tokens=1" 2>&1 | FileCheck %s --check-prefix=LAT2
// RUN: not moe-opt %s --moe-plan-parallelism="gpus=8 layers-multiplier=29 objective=latency tokens=1" 2>&1 | FileCheck %s --check-prefix=LAT8
// RUN: moe-opt %s --moe-plan-parallelism="gpus=64 layers-multiplier=29 objective=latency tokens=1" 2>/dev/null | FileCheck %s --check-prefix=LAT64
// RUN: moe-opt %s --moe-plan-parallelism="gpus=256 layers-multiplier=29 objective=latency tokens=1" 2>/dev/null | FileCheck %s --check-prefix=LAT256

// RUN: not moe-opt %s --moe-plan-parallelism="gpus=1 layers-multiplier=29 objective=throughput tokens=16" 2>&1 | FileCheck %s --check-prefix=THR1
// RUN: not moe-opt %s --moe-plan-parallelism="gpus=2 layers-multiplier=29 objective=throughput tokens=16" 2>&1 | FileCheck %s --check-prefix=THR2
// RUN: not moe-opt %s --moe-plan-parallelism="gpus=8 layers-multiplier=29 objective=throughput tokens=16" 2>&1 | FileCheck %s --check-prefix=THR8
// RUN: moe-opt %s --moe-plan-parallelism="gpus=64 layers-multiplier=29 objective=throughput tokens=16" 2>/dev/null | FileCheck %s --check-prefix=THR64
// RUN: moe-opt %s --moe-plan-parallelism="gpus=256 layers-multiplier=29 objective=throughput tokens=16" 2>/dev/null | FileCheck %s --check-prefix=THR256

// LAT1: error: moe-plan-parallelism: the model needs 1.31 TB of weights (2 moe.layer x 29); at 141.00 GB per GPU (126.90 GB for weights) it needs at least 16 GPUs, got 1
// LAT2: error: moe-plan-parallelism: the model needs 1.31 TB of weights (2 moe.layer x 29); at 141.00 GB per GPU (126.90 GB for weights) it needs at least 16 GPUs, got 2
// LAT8: error: moe-plan-parallelism: the model needs 1.31 TB of weights (2 moe.layer x 29); at 141.00 GB per GPU (126.90 GB for weights) it needs at least 16 GPUs, got 8
// LAT64: shard.grid @moe_grid(shape = 4x1x16) {moe.axes = ["data", "expert", "tensor"]}
// LAT64: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// LAT64: shard.sharding @moe_grid split_axes = {{\[\[}}], [], [2]]
// LAT64: shard.sharding @moe_grid split_axes = {{\[\[}}], [2]]
// LAT64: shard.sharding @moe_grid split_axes = {{\[\[}}2]]
// LAT64: moe.plan = {dp = 4 : i64, ep = 1 : i64, es = 16 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 16 : i64, weight_bytes_per_gpu = 1418462208 : i64}
// LAT256: shard.grid @moe_grid(shape = 16x1x16) {moe.axes = ["data", "expert", "tensor"]}
// LAT256: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// LAT256: shard.sharding @moe_grid split_axes = {{\[\[}}], [], [2]]
// LAT256: shard.sharding @moe_grid split_axes = {{\[\[}}], [2]]
// LAT256: shard.sharding @moe_grid split_axes = {{\[\[}}2]]
// LAT256: moe.plan = {dp = 16 : i64, ep = 1 : i64, es = 16 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 16 : i64, weight_bytes_per_gpu = 1418462208 : i64}

// THR1: error: moe-plan-parallelism: the model needs 1.31 TB of weights (2 moe.layer x 29); at 141.00 GB per GPU (126.90 GB for weights) it needs at least 16 GPUs, got 1
// THR2: error: moe-plan-parallelism: the model needs 1.31 TB of weights (2 moe.layer x 29); at 141.00 GB per GPU (126.90 GB for weights) it needs at least 16 GPUs, got 2
// THR8: error: moe-plan-parallelism: the model needs 1.31 TB of weights (2 moe.layer x 29); at 141.00 GB per GPU (126.90 GB for weights) it needs at least 16 GPUs, got 8
// THR64: shard.grid @moe_grid(shape = 1x64x1) {moe.axes = ["data", "expert", "tensor"]}
// THR64: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// THR64: shard.sharding @moe_grid split_axes = {{\[\[}}1]]
// THR64: moe.plan = {dispatch = "all-to-all", dp = 1 : i64, ep = 64 : i64, es = 1 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 1 : i64, weight_bytes_per_gpu = 444072960 : i64}
// THR256: shard.grid @moe_grid(shape = 1x256x1) {moe.axes = ["data", "expert", "tensor"]}
// THR256: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// THR256: shard.sharding @moe_grid split_axes = {{\[\[}}1]]
// THR256: moe.plan = {dispatch = "all-to-all", dp = 1 : i64, ep = 256 : i64, es = 1 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 1 : i64, weight_bytes_per_gpu = 179831808 : i64}

func.func @deepseek_v3(%x: tensor<?x7168xbf16>,
    %router0: tensor<7168x256xbf16>,
    %bias0: tensor<256xf32>,
    %up0: tensor<256x7168x2048xbf16>,
    %gate0: tensor<256x7168x2048xbf16>,
    %down0: tensor<256x2048x7168xbf16>,
    %shared_up0: tensor<7168x2048xbf16>,
    %shared_gate0: tensor<7168x2048xbf16>,
    %shared_down0: tensor<2048x7168xbf16>,
    %router1: tensor<7168x256xbf16>,
    %bias1: tensor<256xf32>,
    %up1: tensor<256x7168x2048xbf16>,
    %gate1: tensor<256x7168x2048xbf16>,
    %down1: tensor<256x2048x7168xbf16>,
    %shared_up1: tensor<7168x2048xbf16>,
    %shared_gate1: tensor<7168x2048xbf16>,
    %shared_down1: tensor<2048x7168xbf16>) -> tensor<?x7168xbf16> {
  %y0 = moe.layer %x : tensor<?x7168xbf16> router(%router0 : tensor<7168x256xbf16>) router_bias(%bias0 : tensor<256xf32>) up(%up0 : tensor<256x7168x2048xbf16>) gate(%gate0 : tensor<256x7168x2048xbf16>) down(%down0 : tensor<256x2048x7168xbf16>) shared_up(%shared_up0 : tensor<7168x2048xbf16>) shared_gate(%shared_gate0 : tensor<7168x2048xbf16>) shared_down(%shared_down0 : tensor<2048x7168xbf16>) {activation = #moe.activation<silu>, n_group = 8 : i64, renormalize, scaling = 2.5 : f64, score_func = #moe.score_func<sigmoid>, topk_group = 4 : i64, top_k = 8 : i64} -> tensor<?x7168xbf16>
  %y1 = moe.layer %y0 : tensor<?x7168xbf16> router(%router1 : tensor<7168x256xbf16>) router_bias(%bias1 : tensor<256xf32>) up(%up1 : tensor<256x7168x2048xbf16>) gate(%gate1 : tensor<256x7168x2048xbf16>) down(%down1 : tensor<256x2048x7168xbf16>) shared_up(%shared_up1 : tensor<7168x2048xbf16>) shared_gate(%shared_gate1 : tensor<7168x2048xbf16>) shared_down(%shared_down1 : tensor<2048x7168xbf16>) {activation = #moe.activation<silu>, n_group = 8 : i64, renormalize, scaling = 2.5 : f64, score_func = #moe.score_func<sigmoid>, topk_group = 4 : i64, top_k = 8 : i64} -> tensor<?x7168xbf16>
  return %y1 : tensor<?x7168xbf16>
}
