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
        // Four rows at a time share each weight load; rows past the end
        // read row r0 again and are not stored.
        %zero = arith.constant dense<0.0> : vector<8xf32>
        %c4 = arith.constant 4 : index
        %c2 = arith.constant 2 : index
        %c3 = arith.constant 3 : index
        scf.for %r0 = %c0 to %rows step %c4 {
          %r1 = arith.addi %r0, %c1 : index
          %r2 = arith.addi %r0, %c2 : index
          %r3 = arith.addi %r0, %c3 : index
          %v1 = arith.cmpi ult, %r1, %rows : index
          %v2 = arith.cmpi ult, %r2, %rows : index
          %v3 = arith.cmpi ult, %r3, %rows : index
          %s1 = arith.select %v1, %r1, %r0 : index
          %s2 = arith.select %v2, %r2, %r0 : index
          %s3 = arith.select %v3, %r3, %r0 : index
          %acc:4 = scf.for %i = %k0 to %k1 step %c1
              iter_args(%a0 = %zero, %a1 = %zero, %a2 = %zero, %a3 = %zero)
              -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
            %wv = vector.load %w[%i, %j] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
            %wf = arith.extf %wv : vector<8xbf16> to vector<8xf32>
            %x0 = memref.load %x[%r0, %i] : memref<?x?xbf16>
            %x1 = memref.load %x[%s1, %i] : memref<?x?xbf16>
            %x2 = memref.load %x[%s2, %i] : memref<?x?xbf16>
            %x3 = memref.load %x[%s3, %i] : memref<?x?xbf16>
            %f0 = arith.extf %x0 : bf16 to f32
            %f1 = arith.extf %x1 : bf16 to f32
            %f2 = arith.extf %x2 : bf16 to f32
            %f3 = arith.extf %x3 : bf16 to f32
            %b0 = vector.broadcast %f0 : f32 to vector<8xf32>
            %b1 = vector.broadcast %f1 : f32 to vector<8xf32>
            %b2 = vector.broadcast %f2 : f32 to vector<8xf32>
            %b3 = vector.broadcast %f3 : f32 to vector<8xf32>
            %n0 = vector.fma %b0, %wf, %a0 : vector<8xf32>
            %n1 = vector.fma %b1, %wf, %a1 : vector<8xf32>
            %n2 = vector.fma %b2, %wf, %a2 : vector<8xf32>
            %n3 = vector.fma %b3, %wf, %a3 : vector<8xf32>
            scf.yield %n0, %n1, %n2, %n3 : vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>
          }
          scf.for %q = %c0 to %c4 step %c1 {
            %rq = arith.addi %r0, %q : index
            %valid = arith.cmpi ult, %rq, %rows : index
            scf.if %valid {
              %is1 = arith.cmpi eq, %q, %c1 : index
              %is2 = arith.cmpi eq, %q, %c2 : index
              %is3 = arith.cmpi eq, %q, %c3 : index
              %p01 = arith.select %is1, %acc#1, %acc#0 : vector<8xf32>
              %p2 = arith.select %is2, %acc#2, %p01 : vector<8xf32>
              %vec = arith.select %is3, %acc#3, %p2 : vector<8xf32>
              scf.for %l = %c0 to %c8 step %c1 {
                %v = vector.extract %vec[%l] : f32 from vector<8xf32>
                %col = arith.addi %j, %l : index
                %old = memref.atomic_rmw addf %v, %h[%rq, %col] : (f32, memref<?x?xf32>) -> f32
              }
            }
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
    // No more threads per block than columns (in warps of 32).
    %c32 = arith.constant 32 : index
    %warps = arith.ceildivui %cols, %c32 : index
    %colThreads = arith.muli %warps, %c32 : index
    %tpb = arith.minui %threads, %colThreads : index
    %bx = arith.ceildivui %cols, %tpb : index
    %kchunk = arith.ceildivui %d, %splits : index
    scf.for %it = %c0 to %iterations step %c1 {
      gpu.launch_func @kernels::@gemv blocks in (%bx, %splits, %c1) threads in (%tpb, %c1, %c1)
        args(%x : memref<?x?xbf16>, %w : memref<?x?xbf16>, %h : memref<?x?xf32>, %rows : index, %kchunk : index)
    }
    return
  }
}
