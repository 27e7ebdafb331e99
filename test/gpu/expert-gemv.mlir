// The memory-bound expert path, measured before it is generated: rows [R, d]
// of one expert times its weights [d, f] (bf16), each thread owning 8
// adjacent columns (one 16-byte vector load per weight row), the d dimension
// split across blocks so that enough loads are in flight, partial sums added
// in f32 with global atomics. gpu-expert-gemv-test times it on the GPU
// against the copy-bandwidth floor; here CI checks the PTX.
//
// RUN: moe-opt %s -gpu-async-region -gpu-lower-to-nvvm-pipeline="cubin-chip=sm_90 cubin-features=+ptx80 cubin-format=isa" | FileCheck %s
// CHECK: gpu.binary @kernels
// 16-byte weight loads and f32 atomic adds:
// CHECK-SAME: ld.global.v4.b32
// CHECK-SAME: atom.global.add.f32
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @gemv(%x: memref<?x?xbf16>, %w: memref<?x?xbf16>, %h: memref<?x?xf32>,
                   %rows: index, %kchunk: index) kernel {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c8 = arith.constant 8 : index
      %d = memref.dim %w, %c0 : memref<?x?xbf16>
      %f = memref.dim %w, %c1 : memref<?x?xbf16>
      %bx = gpu.block_id x
      %by = gpu.block_id y
      %bdim = gpu.block_dim x
      %tid = gpu.thread_id x
      %t0 = arith.muli %bx, %bdim : index
      %t = arith.addi %t0, %tid : index
      %j = arith.muli %t, %c8 : index
      %k0 = arith.muli %by, %kchunk : index
      %k1u = arith.addi %k0, %kchunk : index
      %k1 = arith.minui %k1u, %d : index
      %inside = arith.cmpi ult, %j, %f : index
      scf.if %inside {
        %zero = arith.constant dense<0.0> : vector<8xf32>
        scf.for %r = %c0 to %rows step %c1 {
          %acc = scf.for %i = %k0 to %k1 step %c1 iter_args(%a = %zero) -> (vector<8xf32>) {
            %wv = vector.load %w[%i, %j] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
            %wf = arith.extf %wv : vector<8xbf16> to vector<8xf32>
            %xs = memref.load %x[%r, %i] : memref<?x?xbf16>
            %xf = arith.extf %xs : bf16 to f32
            %xb = vector.broadcast %xf : f32 to vector<8xf32>
            %n = vector.fma %xb, %wf, %a : vector<8xf32>
            scf.yield %n : vector<8xf32>
          }
          scf.for %l = %c0 to %c8 step %c1 {
            %v = vector.extract %acc[%l] : f32 from vector<8xf32>
            %col = arith.addi %j, %l : index
            %old = memref.atomic_rmw addf %v, %h[%r, %col] : (f32, memref<?x?xf32>) -> f32
          }
        }
      }
      gpu.return
    }
  }

  // Device buffers in, `iterations` launches, out; the host times it.
  func.func @gemv_host(%x: memref<?x?xbf16>, %w: memref<?x?xbf16>, %h: memref<?x?xf32>,
                       %rows: index, %splits: index, %threads: index, %iterations: index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %d = memref.dim %w, %c0 : memref<?x?xbf16>
    %f = memref.dim %w, %c1 : memref<?x?xbf16>
    %cols = arith.ceildivui %f, %c8 : index
    %bx = arith.ceildivui %cols, %threads : index
    %kchunk = arith.ceildivui %d, %splits : index
    scf.for %it = %c0 to %iterations step %c1 {
      gpu.launch_func @kernels::@gemv blocks in (%bx, %splits, %c1) threads in (%threads, %c1, %c1)
        args(%x : memref<?x?xbf16>, %w : memref<?x?xbf16>, %h : memref<?x?xf32>, %rows : index, %kchunk : index)
    }
    return
  }
}
