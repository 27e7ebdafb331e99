// A whole expert FFN (moe.experts, SwiGLU) on the GPU with the compiler's
// kernels: up and gate grouped GEMVs, the activation, the down GEMV, and the
// rounding to bf16. gpu-expert-ffn-test checks it against the moe.experts
// semantics of the C++ reference on fresh random inputs and times it.
//
// RUN: moe-opt %s -moe-gpu-add-expert-kernels -gpu-async-region -gpu-lower-to-nvvm-pipeline="cubin-chip=sm_90 cubin-features=+ptx81 cubin-format=isa" | FileCheck %s
// CHECK: gpu.binary @kernels
// CHECK-SAME: .entry grouped_gemv_bf16(
// CHECK-SAME: .entry expert_silu_gated(
// CHECK-SAME: .entry round_bf16(
// CHECK: gpu.launch_func {{.*}}@kernels::@grouped_gemv_bf16
// CHECK: gpu.launch_func {{.*}}@kernels::@expert_silu_gated
// CHECK: gpu.launch_func {{.*}}@kernels::@round_bf16
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @grouped_gemv_bf16(%x: memref<?x?xbf16>, %offsets: memref<?xi32>, %w: memref<?x?x?xbf16>,
                                %h: memref<?x?xf32>, %kchunk: index) kernel attributes {moe.generate} {
      gpu.return
    }
    gpu.func @expert_silu_gated(%h: memref<?x?xf32>, %g: memref<?x?xf32>, %a: memref<?x?xbf16>) kernel attributes {moe.generate} {
      gpu.return
    }
    gpu.func @round_bf16(%y: memref<?x?xf32>, %out: memref<?x?xbf16>) kernel attributes {moe.generate} {
      gpu.return
    }
  }

  // kchunk for a reduction of size k over `splits` blocks, a multiple of 4.
  func.func private @kchunk(%k: index, %splits: index) -> index {
    %c4 = arith.constant 4 : index
    %q = arith.ceildivui %k, %splits : index
    %q4 = arith.ceildivui %q, %c4 : index
    %r = arith.muli %q4, %c4 : index
    return %r : index
  }

  // Grid x for a GEMV with m output columns (8 per thread, 256 threads).
  func.func private @colblocks(%m: index) -> index {
    %c2048 = arith.constant 2048 : index
    %r = arith.ceildivui %m, %c2048 : index
    return %r : index
  }

  // All buffers on the device; h, g, y are f32 scratch, out the result.
  func.func @ffn_host(%x: memref<?x?xbf16>, %off: memref<?xi32>, %wu: memref<?x?x?xbf16>,
                      %wg: memref<?x?x?xbf16>, %wd: memref<?x?x?xbf16>, %h: memref<?x?xf32>,
                      %g: memref<?x?xf32>, %a: memref<?x?xbf16>, %y: memref<?x?xf32>,
                      %out: memref<?x?xbf16>, %splits: index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c256 = arith.constant 256 : index
    %zero = arith.constant 0.0 : f32
    %E = memref.dim %wu, %c0 : memref<?x?x?xbf16>
    %d = memref.dim %wu, %c1 : memref<?x?x?xbf16>
    %f = memref.dim %wu, %c2 : memref<?x?x?xbf16>
    %n = memref.dim %x, %c0 : memref<?x?xbf16>
    gpu.memset %h, %zero : memref<?x?xf32>, f32
    gpu.memset %g, %zero : memref<?x?xf32>, f32
    gpu.memset %y, %zero : memref<?x?xf32>, f32
    %kd = func.call @kchunk(%d, %splits) : (index, index) -> index
    %kf = func.call @kchunk(%f, %splits) : (index, index) -> index
    %bf = func.call @colblocks(%f) : (index) -> index
    %bd = func.call @colblocks(%d) : (index) -> index
    gpu.launch_func @kernels::@grouped_gemv_bf16 blocks in (%bf, %splits, %E) threads in (%c256, %c1, %c1)
      args(%x : memref<?x?xbf16>, %off : memref<?xi32>, %wu : memref<?x?x?xbf16>, %h : memref<?x?xf32>, %kd : index)
    gpu.launch_func @kernels::@grouped_gemv_bf16 blocks in (%bf, %splits, %E) threads in (%c256, %c1, %c1)
      args(%x : memref<?x?xbf16>, %off : memref<?xi32>, %wg : memref<?x?x?xbf16>, %g : memref<?x?xf32>, %kd : index)
    %nf = arith.muli %n, %f : index
    %ba = arith.ceildivui %nf, %c256 : index
    gpu.launch_func @kernels::@expert_silu_gated blocks in (%ba, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%h : memref<?x?xf32>, %g : memref<?x?xf32>, %a : memref<?x?xbf16>)
    gpu.launch_func @kernels::@grouped_gemv_bf16 blocks in (%bd, %splits, %E) threads in (%c256, %c1, %c1)
      args(%a : memref<?x?xbf16>, %off : memref<?xi32>, %wd : memref<?x?x?xbf16>, %y : memref<?x?xf32>, %kf : index)
    %nd = arith.muli %n, %d : index
    %bo = arith.ceildivui %nd, %c256 : index
    gpu.launch_func @kernels::@round_bf16 blocks in (%bo, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%y : memref<?x?xf32>, %out : memref<?x?xbf16>)
    return
  }
}
