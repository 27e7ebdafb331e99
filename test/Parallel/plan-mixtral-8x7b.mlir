// Pinned plans for Mixtral 8x7B: 32 layers (2 moe.layer x 16), 8 SwiGLU experts, top-2.
// Latency: one token per step. Throughput: 16 tokens per GPU per step.
// 8 GPUs per host, 141 GB H200s (the defaults).
//
// RUN: moe-opt %s --moe-plan-parallelism="gpus=1 layers-multiplier=16 objective=latency tokens=1" 2>/dev/null | FileCheck %s --check-prefix=LAT1
// RUN: moe-opt %s --moe-plan-parallelism="gpus=2 layers-multiplier=16 objective=latency tokens=1" 2>/dev/null | FileCheck %s --check-prefix=LAT2
// RUN: moe-opt %s --moe-plan-parallelism="gpus=8 layers-multiplier=16 objective=latency tokens=1" 2>/dev/null | FileCheck %s --check-prefix=LAT8
// RUN: moe-opt %s --moe-plan-parallelism="gpus=64 layers-multiplier=16 objective=latency tokens=1" 2>/dev/null | FileCheck %s --check-prefix=LAT64
// RUN: moe-opt %s --moe-plan-parallelism="gpus=256 layers-multiplier=16 objective=latency tokens=1" 2>/dev/null | FileCheck %s --check-prefix=LAT256

// RUN: moe-opt %s --moe-plan-parallelism="gpus=1 layers-multiplier=16 objective=throughput tokens=16" 2>/dev/null | FileCheck %s --check-prefix=THR1
// RUN: moe-opt %s --moe-plan-parallelism="gpus=2 layers-multiplier=16 objective=throughput tokens=16" 2>/dev/null | FileCheck %s --check-prefix=THR2
// RUN: moe-opt %s --moe-plan-parallelism="gpus=8 layers-multiplier=16 objective=throughput tokens=16" 2>/dev/null | FileCheck %s --check-prefix=THR8
// RUN: moe-opt %s --moe-plan-parallelism="gpus=64 layers-multiplier=16 objective=throughput tokens=16" 2>/dev/null | FileCheck %s --check-prefix=THR64
// RUN: moe-opt %s --moe-plan-parallelism="gpus=256 layers-multiplier=16 objective=throughput tokens=16" 2>/dev/null | FileCheck %s --check-prefix=THR256

// LAT1: shard.grid @moe_grid(shape = 1x1x1) {moe.axes = ["data", "expert", "tensor"]}
// LAT1: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// LAT1: moe.plan = {dp = 1 : i64, ep = 1 : i64, es = 1 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 1 : i64, weight_bytes_per_gpu = 2818637824 : i64}
// LAT2: shard.grid @moe_grid(shape = 1x1x2) {moe.axes = ["data", "expert", "tensor"]}
// LAT2: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// LAT2: shard.sharding @moe_grid split_axes = {{\[\[}}], [], [2]]
// LAT2: shard.sharding @moe_grid split_axes = {{\[\[}}], [2]]
// LAT2: moe.plan = {dp = 1 : i64, ep = 1 : i64, es = 2 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 1 : i64, weight_bytes_per_gpu = 1409351680 : i64}
// LAT8: shard.grid @moe_grid(shape = 1x1x8) {moe.axes = ["data", "expert", "tensor"]}
// LAT8: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// LAT8: shard.sharding @moe_grid split_axes = {{\[\[}}], [], [2]]
// LAT8: shard.sharding @moe_grid split_axes = {{\[\[}}], [2]]
// LAT8: moe.plan = {dp = 1 : i64, ep = 1 : i64, es = 8 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 1 : i64, weight_bytes_per_gpu = 352387072 : i64}
// LAT64: shard.grid @moe_grid(shape = 8x1x8) {moe.axes = ["data", "expert", "tensor"]}
// LAT64: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// LAT64: shard.sharding @moe_grid split_axes = {{\[\[}}], [], [2]]
// LAT64: shard.sharding @moe_grid split_axes = {{\[\[}}], [2]]
// LAT64: moe.plan = {dp = 8 : i64, ep = 1 : i64, es = 8 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 1 : i64, weight_bytes_per_gpu = 352387072 : i64}
// LAT256: shard.grid @moe_grid(shape = 32x1x8) {moe.axes = ["data", "expert", "tensor"]}
// LAT256: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// LAT256: shard.sharding @moe_grid split_axes = {{\[\[}}], [], [2]]
// LAT256: shard.sharding @moe_grid split_axes = {{\[\[}}], [2]]
// LAT256: moe.plan = {dp = 32 : i64, ep = 1 : i64, es = 8 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 1 : i64, weight_bytes_per_gpu = 352387072 : i64}

// THR1: shard.grid @moe_grid(shape = 1x1x1) {moe.axes = ["data", "expert", "tensor"]}
// THR1: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// THR1: moe.plan = {dp = 1 : i64, ep = 1 : i64, es = 1 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 1 : i64, weight_bytes_per_gpu = 2818637824 : i64}
// THR2: shard.grid @moe_grid(shape = 1x1x2) {moe.axes = ["data", "expert", "tensor"]}
// THR2: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// THR2: shard.sharding @moe_grid split_axes = {{\[\[}}], [], [2]]
// THR2: shard.sharding @moe_grid split_axes = {{\[\[}}], [2]]
// THR2: moe.plan = {dp = 1 : i64, ep = 1 : i64, es = 2 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 1 : i64, weight_bytes_per_gpu = 1409351680 : i64}
// THR8: shard.grid @moe_grid(shape = 1x1x8) {moe.axes = ["data", "expert", "tensor"]}
// THR8: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// THR8: shard.sharding @moe_grid split_axes = {{\[\[}}], [], [2]]
// THR8: shard.sharding @moe_grid split_axes = {{\[\[}}], [2]]
// THR8: moe.plan = {dp = 1 : i64, ep = 1 : i64, es = 8 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 1 : i64, weight_bytes_per_gpu = 352387072 : i64}
// THR64: shard.grid @moe_grid(shape = 8x1x8) {moe.axes = ["data", "expert", "tensor"]}
// THR64: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// THR64: shard.sharding @moe_grid split_axes = {{\[\[}}], [], [2]]
// THR64: shard.sharding @moe_grid split_axes = {{\[\[}}], [2]]
// THR64: moe.plan = {dp = 8 : i64, ep = 1 : i64, es = 8 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 1 : i64, weight_bytes_per_gpu = 352387072 : i64}
// THR256: shard.grid @moe_grid(shape = 32x1x8) {moe.axes = ["data", "expert", "tensor"]}
// THR256: shard.sharding @moe_grid split_axes = {{\[\[}}]]
// THR256: shard.sharding @moe_grid split_axes = {{\[\[}}], [], [2]]
// THR256: shard.sharding @moe_grid split_axes = {{\[\[}}], [2]]
// THR256: moe.plan = {dp = 32 : i64, ep = 1 : i64, es = 8 : i64, grid = @moe_grid, step_ns = {{[0-9]+}} : i64, tp = 1 : i64, weight_bytes_per_gpu = 352387072 : i64}

func.func @mixtral_8x7b(%x: tensor<?x4096xbf16>,
    %router0: tensor<4096x8xbf16>,
    %up0: tensor<8x4096x14336xbf16>,
    %gate0: tensor<8x4096x14336xbf16>,
    %down0: tensor<8x14336x4096xbf16>,
    %router1: tensor<4096x8xbf16>,
    %up1: tensor<8x4096x14336xbf16>,
    %gate1: tensor<8x4096x14336xbf16>,
    %down1: tensor<8x14336x4096xbf16>) -> tensor<?x4096xbf16> {
  %y0 = moe.layer %x : tensor<?x4096xbf16> router(%router0 : tensor<4096x8xbf16>) up(%up0 : tensor<8x4096x14336xbf16>) gate(%gate0 : tensor<8x4096x14336xbf16>) down(%down0 : tensor<8x14336x4096xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64} -> tensor<?x4096xbf16>
  %y1 = moe.layer %y0 : tensor<?x4096xbf16> router(%router1 : tensor<4096x8xbf16>) up(%up1 : tensor<8x4096x14336xbf16>) gate(%gate1 : tensor<8x4096x14336xbf16>) down(%down1 : tensor<8x14336x4096xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64} -> tensor<?x4096xbf16>
  return %y1 : tensor<?x4096xbf16>
}
