// A kernel with both static shared memory (a workgroup attribution) and
// dynamic shared memory: after convert-gpu-to-nvvm the dynamic one is an
// external zero-length global (CUDA's `extern __shared__`, placed after the
// static buffers), not an internal one that ptxas would place among them.
// Other shared globals keep their linkage; PTX declares it `.extern`.
// RUN: moe-opt %s --pass-pipeline="builtin.module(gpu.module(convert-gpu-to-nvvm,moe-gpu-extern-dynamic-shared))" | FileCheck %s
// RUN: moe-opt %s --pass-pipeline="builtin.module(gpu.module(convert-gpu-to-nvvm))" | FileCheck %s --check-prefix=UPSTREAM

// CHECK: llvm.mlir.global external @__dynamic_shmem__0() {addr_space = 3 : i32, alignment = 16 : i64} : !llvm.array<0 x i8>
// CHECK: llvm.mlir.global internal @__wg_both_0()
// CHECK-SAME: !llvm.array<64 x f32>
// UPSTREAM: llvm.mlir.global internal @__dynamic_shmem__0()

gpu.module @kernels {
  gpu.func @both(%v: f32) workgroup(%stat: memref<64xf32, #gpu.address_space<workgroup>>) kernel {
    %c0 = arith.constant 0 : index
    %dyn = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
    %ring = memref.view %dyn[%c0][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<16xf32, #gpu.address_space<workgroup>>
    memref.store %v, %ring[%c0] : memref<16xf32, #gpu.address_space<workgroup>>
    memref.store %v, %stat[%c0] : memref<64xf32, #gpu.address_space<workgroup>>
    gpu.return
  }
}
