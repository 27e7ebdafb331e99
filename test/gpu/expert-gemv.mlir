// The memory-bound expert path, measured before it is generated: rows [R, d]
// of one expert times its weights [d, f] (bf16), each thread owning 8
// adjacent columns (one 16-byte vector load per weight row), the d dimension
// split across blocks so that enough loads are in flight, partial sums added
// in f32 with global atomics. gpu-expert-gemv-test times it on the GPU
// against the copy-bandwidth floor; here CI checks the PTX.
//
// RUN: moe-opt %s -gpu-async-region -gpu-lower-to-nvvm-pipeline="cubin-chip=sm_90 cubin-features=+ptx81 cubin-format=isa" | FileCheck %s
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
          // d is unrolled by 4 (kchunk is a multiple of 4): four independent
          // 16-byte loads are in flight before the first multiply.
          %acc:4 = scf.for %i = %k0 to %k1 step %c4
              iter_args(%a0 = %zero, %a1 = %zero, %a2 = %zero, %a3 = %zero)
              -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
            %i0 = arith.addi %i, %c0 : index
            %i1 = arith.addi %i, %c1 : index
            %i2 = arith.addi %i, %c2 : index
            %i3 = arith.addi %i, %c3 : index
            %wv0 = vector.load %w[%i0, %j] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
            %wv1 = vector.load %w[%i1, %j] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
            %wv2 = vector.load %w[%i2, %j] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
            %wv3 = vector.load %w[%i3, %j] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
            %wf0 = arith.extf %wv0 : vector<8xbf16> to vector<8xf32>
            %x00 = memref.load %x[%r0, %i0] : memref<?x?xbf16>
            %f00 = arith.extf %x00 : bf16 to f32
            %b00 = vector.broadcast %f00 : f32 to vector<8xf32>
            %n00 = vector.fma %b00, %wf0, %a0 : vector<8xf32>
            %x01 = memref.load %x[%s1, %i0] : memref<?x?xbf16>
            %f01 = arith.extf %x01 : bf16 to f32
            %b01 = vector.broadcast %f01 : f32 to vector<8xf32>
            %n01 = vector.fma %b01, %wf0, %a1 : vector<8xf32>
            %x02 = memref.load %x[%s2, %i0] : memref<?x?xbf16>
            %f02 = arith.extf %x02 : bf16 to f32
            %b02 = vector.broadcast %f02 : f32 to vector<8xf32>
            %n02 = vector.fma %b02, %wf0, %a2 : vector<8xf32>
            %x03 = memref.load %x[%s3, %i0] : memref<?x?xbf16>
            %f03 = arith.extf %x03 : bf16 to f32
            %b03 = vector.broadcast %f03 : f32 to vector<8xf32>
            %n03 = vector.fma %b03, %wf0, %a3 : vector<8xf32>
            %wf1 = arith.extf %wv1 : vector<8xbf16> to vector<8xf32>
            %x10 = memref.load %x[%r0, %i1] : memref<?x?xbf16>
            %f10 = arith.extf %x10 : bf16 to f32
            %b10 = vector.broadcast %f10 : f32 to vector<8xf32>
            %n10 = vector.fma %b10, %wf1, %n00 : vector<8xf32>
            %x11 = memref.load %x[%s1, %i1] : memref<?x?xbf16>
            %f11 = arith.extf %x11 : bf16 to f32
            %b11 = vector.broadcast %f11 : f32 to vector<8xf32>
            %n11 = vector.fma %b11, %wf1, %n01 : vector<8xf32>
            %x12 = memref.load %x[%s2, %i1] : memref<?x?xbf16>
            %f12 = arith.extf %x12 : bf16 to f32
            %b12 = vector.broadcast %f12 : f32 to vector<8xf32>
            %n12 = vector.fma %b12, %wf1, %n02 : vector<8xf32>
            %x13 = memref.load %x[%s3, %i1] : memref<?x?xbf16>
            %f13 = arith.extf %x13 : bf16 to f32
            %b13 = vector.broadcast %f13 : f32 to vector<8xf32>
            %n13 = vector.fma %b13, %wf1, %n03 : vector<8xf32>
            %wf2 = arith.extf %wv2 : vector<8xbf16> to vector<8xf32>
            %x20 = memref.load %x[%r0, %i2] : memref<?x?xbf16>
            %f20 = arith.extf %x20 : bf16 to f32
            %b20 = vector.broadcast %f20 : f32 to vector<8xf32>
            %n20 = vector.fma %b20, %wf2, %n10 : vector<8xf32>
            %x21 = memref.load %x[%s1, %i2] : memref<?x?xbf16>
            %f21 = arith.extf %x21 : bf16 to f32
            %b21 = vector.broadcast %f21 : f32 to vector<8xf32>
            %n21 = vector.fma %b21, %wf2, %n11 : vector<8xf32>
            %x22 = memref.load %x[%s2, %i2] : memref<?x?xbf16>
            %f22 = arith.extf %x22 : bf16 to f32
            %b22 = vector.broadcast %f22 : f32 to vector<8xf32>
            %n22 = vector.fma %b22, %wf2, %n12 : vector<8xf32>
            %x23 = memref.load %x[%s3, %i2] : memref<?x?xbf16>
            %f23 = arith.extf %x23 : bf16 to f32
            %b23 = vector.broadcast %f23 : f32 to vector<8xf32>
            %n23 = vector.fma %b23, %wf2, %n13 : vector<8xf32>
            %wf3 = arith.extf %wv3 : vector<8xbf16> to vector<8xf32>
            %x30 = memref.load %x[%r0, %i3] : memref<?x?xbf16>
            %f30 = arith.extf %x30 : bf16 to f32
            %b30 = vector.broadcast %f30 : f32 to vector<8xf32>
            %n30 = vector.fma %b30, %wf3, %n20 : vector<8xf32>
            %x31 = memref.load %x[%s1, %i3] : memref<?x?xbf16>
            %f31 = arith.extf %x31 : bf16 to f32
            %b31 = vector.broadcast %f31 : f32 to vector<8xf32>
            %n31 = vector.fma %b31, %wf3, %n21 : vector<8xf32>
            %x32 = memref.load %x[%s2, %i3] : memref<?x?xbf16>
            %f32 = arith.extf %x32 : bf16 to f32
            %b32 = vector.broadcast %f32 : f32 to vector<8xf32>
            %n32 = vector.fma %b32, %wf3, %n22 : vector<8xf32>
            %x33 = memref.load %x[%s3, %i3] : memref<?x?xbf16>
            %f33 = arith.extf %x33 : bf16 to f32
            %b33 = vector.broadcast %f33 : f32 to vector<8xf32>
            %n33 = vector.fma %b33, %wf3, %n23 : vector<8xf32>
            scf.yield %n30, %n31, %n32, %n33 : vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>
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
    // A multiple of 4 (the kernel unrolls d by 4; d itself is one).
    %c4h = arith.constant 4 : index
    %kq = arith.ceildivui %d, %splits : index
    %kq4 = arith.ceildivui %kq, %c4h : index
    %kchunk = arith.muli %kq4, %c4h : index
    scf.for %it = %c0 to %iterations step %c1 {
      gpu.launch_func @kernels::@gemv blocks in (%bx, %splits, %c1) threads in (%tpb, %c1, %c1)
        args(%x : memref<?x?xbf16>, %w : memref<?x?xbf16>, %h : memref<?x?xf32>, %rows : index, %kchunk : index)
    }
    return
  }
}
