// Options the planner refuses, and modules it cannot plan.
// RUN: not moe-opt %s --moe-plan-parallelism="gpus=0" 2>&1 | FileCheck %s --check-prefix=GPUS
// RUN: not moe-opt %s --moe-plan-parallelism="gpus-per-host=0" 2>&1 | FileCheck %s --check-prefix=PERHOST
// RUN: not moe-opt %s --moe-plan-parallelism="gpus=12" 2>&1 | FileCheck %s --check-prefix=HOSTS
// RUN: not moe-opt %s --moe-plan-parallelism="memory-gb=0" 2>&1 | FileCheck %s --check-prefix=MEMORY
// RUN: not moe-opt %s --moe-plan-parallelism="memory-reserve=1" 2>&1 | FileCheck %s --check-prefix=RESERVE
// RUN: not moe-opt %s --moe-plan-parallelism="nvlink-gb-s=0" 2>&1 | FileCheck %s --check-prefix=BANDWIDTH
// RUN: not moe-opt %s --moe-plan-parallelism="inter-host-latency-us=-1" 2>&1 | FileCheck %s --check-prefix=LATENCY
// RUN: not moe-opt %s --moe-plan-parallelism="tokens=0" 2>&1 | FileCheck %s --check-prefix=TOKENS
// RUN: not moe-opt %s --moe-plan-parallelism="min-slice=0" 2>&1 | FileCheck %s --check-prefix=SLICE
// RUN: not moe-opt %s --moe-plan-parallelism="layers-multiplier=0" 2>&1 | FileCheck %s --check-prefix=LAYERS
// RUN: not moe-opt %s --moe-plan-parallelism="objective=fast" 2>&1 | FileCheck %s --check-prefix=OBJECTIVE
// RUN: not moe-opt %s --moe-plan-parallelism="gpus=8 ep=3" 2>&1 | FileCheck %s --check-prefix=PINNED
// RUN: not moe-opt %s --moe-plan-parallelism="gpus=1 memory-gb=0.002" 2>&1 | FileCheck %s --check-prefix=SMALL
// RUN: moe-opt %s --moe-plan-parallelism="gpus=2" 2>/dev/null | not moe-opt --moe-plan-parallelism="gpus=2" 2>&1 | FileCheck %s --check-prefix=TWICE

// GPUS: error: moe-plan-parallelism: gpus must be at least 1, got 0
// PERHOST: error: moe-plan-parallelism: gpus-per-host must be at least 1, got 0
// HOSTS: error: moe-plan-parallelism: gpus (12) must fill whole hosts of 8 GPUs
// MEMORY: error: moe-plan-parallelism: memory-gb must be positive
// RESERVE: error: moe-plan-parallelism: memory-reserve must be in [0, 1)
// BANDWIDTH: error: moe-plan-parallelism: bandwidths and tflops must be positive
// LATENCY: error: moe-plan-parallelism: latencies must not be negative
// TOKENS: error: moe-plan-parallelism: tokens must be at least 1, got 0
// SLICE: error: moe-plan-parallelism: min-slice must be at least 1, got 0
// LAYERS: error: moe-plan-parallelism: layers-multiplier must be at least 1, got 0
// OBJECTIVE: error: moe-plan-parallelism: objective must be 'latency' or 'throughput', got 'fast'
// PINNED: error: moe-plan-parallelism: no layout of 8 GPUs has dp=0 ep=3 es=0 tp=0
// SMALL: error: moe-plan-parallelism: the model needs 2.36 MB of weights (1 moe.layer x 1); at 2.00 MB per GPU (1.80 MB for weights) it needs at least 2 GPUs, got 1
// TWICE: error: moe-plan-parallelism: the module already has a @moe_grid; it has been planned before

func.func @small(%x: tensor<?x64xbf16>, %r: tensor<64x8xbf16>, %u: tensor<8x64x768xbf16>,
                 %g: tensor<8x64x768xbf16>, %d: tensor<8x768x64xbf16>) -> tensor<?x64xbf16> {
  %y = moe.layer %x : tensor<?x64xbf16> router(%r : tensor<64x8xbf16>) up(%u : tensor<8x64x768xbf16>) gate(%g : tensor<8x64x768xbf16>) down(%d : tensor<8x768x64xbf16>) {activation = #moe.activation<silu>, top_k = 2 : i64} -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

