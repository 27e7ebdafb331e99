// `report` prints the plan table to stdout: the chosen grid, the layers with
// their weights per GPU and step estimate, and the best candidates.
// RUN: moe-opt %s --moe-plan-parallelism="gpus=64 layers-multiplier=29 report" -o /dev/null 2>/dev/null | FileCheck %s

// DeepSeek-V3's MoE layers (58) for one token on 64 GPUs in 8 hosts: four
// replicas, each slicing every expert over 16 GPUs (two hosts) and summing
// with one all-reduce, beat expert parallelism's two all-to-alls per layer.
// CHECK:      moe-plan-parallelism: 64 GPUs (8 per host), 141.00 GB per GPU (126.90 GB for weights), objective latency, tokens per step: 1 per replica
// CHECK-NEXT: model: 2 moe.layer x 29 = 58 layers, 1.31 TB of weights
// CHECK-NEXT: plan: dp=4 ep=1 es=16 tp=16 on @moe_grid(shape = 4x1x16) [data, expert, tensor]
// CHECK-NEXT:  layer  experts  top-k  hidden     ffn  dense-ffn  weights/GPU     compute      memory        comm        step
// CHECK-NEXT:      0      256      8    7168    2048       2048      1.42 GB      0.1 us     12.4 us     45.2 us     57.6 us
// CHECK-NEXT:      1      256      8    7168    2048       2048      1.42 GB      0.1 us     12.4 us     45.2 us     57.6 us
// CHECK-NEXT:  model                                                82.27 GB      4.1 us    717.8 us   2620.6 us   3338.4 us
// CHECK-NEXT: replica batch: 1 tokens; throughput: 1198 tokens/s over 4 replicas
// CHECK-NEXT: candidates that fit and partition (best 6 of 19):
// CHECK-NEXT:   rank   dp   ep   es   tp  weights/GPU        step     tokens/s
// CHECK-NEXT:      1    4    1   16   16     82.27 GB   3338.4 us         1198
// CHECK-NEXT:      2    4    2    8   16     82.27 GB   3500.8 us         1143

func.func @deepseek_v3(%x: tensor<?x7168xbf16>,
    %router0: tensor<7168x256xbf16>, %bias0: tensor<256xf32>,
    %up0: tensor<256x7168x2048xbf16>, %gate0: tensor<256x7168x2048xbf16>, %down0: tensor<256x2048x7168xbf16>,
    %shared_up0: tensor<7168x2048xbf16>, %shared_gate0: tensor<7168x2048xbf16>, %shared_down0: tensor<2048x7168xbf16>,
    %router1: tensor<7168x256xbf16>, %bias1: tensor<256xf32>,
    %up1: tensor<256x7168x2048xbf16>, %gate1: tensor<256x7168x2048xbf16>, %down1: tensor<256x2048x7168xbf16>,
    %shared_up1: tensor<7168x2048xbf16>, %shared_gate1: tensor<7168x2048xbf16>, %shared_down1: tensor<2048x7168xbf16>) -> tensor<?x7168xbf16> {
  %y0 = moe.layer %x : tensor<?x7168xbf16> router(%router0 : tensor<7168x256xbf16>) router_bias(%bias0 : tensor<256xf32>) up(%up0 : tensor<256x7168x2048xbf16>) gate(%gate0 : tensor<256x7168x2048xbf16>) down(%down0 : tensor<256x2048x7168xbf16>) shared_up(%shared_up0 : tensor<7168x2048xbf16>) shared_gate(%shared_gate0 : tensor<7168x2048xbf16>) shared_down(%shared_down0 : tensor<2048x7168xbf16>) {activation = #moe.activation<silu>, n_group = 8 : i64, renormalize, scaling = 2.5 : f64, score_func = #moe.score_func<sigmoid>, topk_group = 4 : i64, top_k = 8 : i64} -> tensor<?x7168xbf16>
  %y1 = moe.layer %y0 : tensor<?x7168xbf16> router(%router1 : tensor<7168x256xbf16>) router_bias(%bias1 : tensor<256xf32>) up(%up1 : tensor<256x7168x2048xbf16>) gate(%gate1 : tensor<256x7168x2048xbf16>) down(%down1 : tensor<256x2048x7168xbf16>) shared_up(%shared_up1 : tensor<7168x2048xbf16>) shared_gate(%shared_gate1 : tensor<7168x2048xbf16>) shared_down(%shared_down1 : tensor<2048x7168xbf16>) {activation = #moe.activation<silu>, n_group = 8 : i64, renormalize, scaling = 2.5 : f64, score_func = #moe.score_func<sigmoid>, topk_group = 4 : i64, top_k = 8 : i64} -> tensor<?x7168xbf16>
  return %y1 : tensor<?x7168xbf16>
}
