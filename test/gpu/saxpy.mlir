// GPU toolchain and runtime smoke test: a kernel compiled here to an sm_90
// cubin by MLIR's gpu-module-to-binary (ptxas from /usr/local/cuda), host
// code lowered by gpu-to-llvm to mgpu* calls, which libmoert implements over
// the CUDA driver loaded at run time. Built into gpu-saxpy-test by CMake; on
// a machine without a GPU only the PTX is checked.
//
// RUN: moe-opt %s -gpu-async-region -gpu-lower-to-nvvm-pipeline="cubin-chip=sm_90 cubin-features=+ptx81 cubin-format=isa" | FileCheck %s
// CHECK: gpu.binary @kernels
// CHECK-SAME: .target sm_90
// CHECK-SAME: .visible .entry saxpy(
// CHECK-SAME: ld.global.b32
// CHECK-SAME: mul.rn.f32
// CHECK-SAME: add.rn.f32
// CHECK-SAME: st.global.b32
// CHECK: llvm.func @saxpy_host
// CHECK: gpu.launch_func <%{{.*}} : !llvm.ptr> @kernels::@saxpy
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @saxpy(%a: f32, %x: memref<?xf32>, %y: memref<?xf32>, %n: index) kernel {
      %bid = gpu.block_id x
      %bdim = gpu.block_dim x
      %tid = gpu.thread_id x
      %t = arith.muli %bid, %bdim : index
      %i = arith.addi %t, %tid : index
      %in = arith.cmpi ult, %i, %n : index
      scf.if %in {
        %xv = memref.load %x[%i] : memref<?xf32>
        %yv = memref.load %y[%i] : memref<?xf32>
        %p = arith.mulf %a, %xv : f32
        %s = arith.addf %p, %yv : f32
        memref.store %s, %y[%i] : memref<?xf32>
      }
      gpu.return
    }
  }
  // y = a * x + y on the GPU, with `threads` threads per block.
  func.func @saxpy_host(%a: f32, %hx: memref<?xf32>, %hy: memref<?xf32>, %threads: index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %n = memref.dim %hx, %c0 : memref<?xf32>
    %dx = gpu.alloc (%n) : memref<?xf32>
    %dy = gpu.alloc (%n) : memref<?xf32>
    gpu.memcpy %dx, %hx : memref<?xf32>, memref<?xf32>
    gpu.memcpy %dy, %hy : memref<?xf32>, memref<?xf32>
    %nb = arith.ceildivui %n, %threads : index
    gpu.launch_func @kernels::@saxpy blocks in (%nb, %c1, %c1) threads in (%threads, %c1, %c1) args(%a : f32, %dx : memref<?xf32>, %dy : memref<?xf32>, %n : index)
    gpu.memcpy %hy, %dy : memref<?xf32>, memref<?xf32>
    gpu.dealloc %dx : memref<?xf32>
    gpu.dealloc %dy : memref<?xf32>
    return
  }
}
