// The convergence check refuses collectives under thread-dependent control
// flow: a shuffle needs control uniform over the warp, a barrier over the
// block. (The first case is the one-token routing that hung an H200.)
// RUN: moe-opt %s -split-input-file -moe-gpu-check-convergence -verify-diagnostics -o /dev/null

module attributes {gpu.container_module} {
  gpu.module @k {
    gpu.func @shuffle_in_lane_branch(%v: f32, %out: memref<32xf32>) kernel {
      %tid = gpu.thread_id x
      %c32 = arith.constant 32 : index
      %c4 = arith.constant 4 : index
      %lane = arith.remui %tid, %c32 : index
      // expected-note @+2 {{the value}}
      // expected-note @+2 {{the 'scf.if' whose condition or bound depends on the thread id}}
      %few = arith.cmpi ult, %lane, %c4 : index
      scf.if %few {
        %c1 = arith.constant 1 : i32
        %w = arith.constant 32 : i32
        // expected-error @+1 {{'gpu.shuffle' in kernel 'shuffle_in_lane_branch' runs under control flow that differs between the threads of a warp}}
        %s, %ok = gpu.shuffle idx %v, %c1, %w : f32
        memref.store %s, %out[%lane] : memref<32xf32>
      }
      gpu.return
    }
  }
}

// -----

// A shuffle in a branch taken by whole warps (the thread id over 32) and in
// a loop whose bounds are the same in every thread is fine; so is a barrier
// in a loop over a block-uniform count.
module attributes {gpu.container_module} {
  gpu.module @k {
    gpu.func @warp_uniform(%v: f32, %n: index, %out: memref<32xf32>) kernel {
      %tid = gpu.thread_id x
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c32 = arith.constant 32 : index
      %warp = arith.divui %tid, %c32 : index
      %first = arith.cmpi eq, %warp, %c0 : index
      %c1i = arith.constant 1 : i32
      %w = arith.constant 32 : i32
      %c16i = arith.constant 16 : i32
      scf.if %first {
        %s, %ok = gpu.shuffle xor %v, %c1i, %w : f32
        %lane = arith.remui %tid, %c32 : index
        memref.store %s, %out[%lane] : memref<32xf32>
      }
      %r = scf.for %i = %warp to %n step %c1 iter_args(%acc = %v) -> (f32) {
        %s, %ok = gpu.shuffle xor %acc, %c16i, %w : f32
        scf.yield %s : f32
      }
      scf.for %i = %c0 to %n step %c1 {
        gpu.barrier
      }
      gpu.return
    }
  }
}

// -----

// A barrier needs every thread of the block: a warp's branch is not enough.
module attributes {gpu.container_module} {
  gpu.module @k {
    gpu.func @barrier_in_warp_branch(%out: memref<1xi32>) kernel {
      %tid = gpu.thread_id x
      %c0 = arith.constant 0 : index
      %c32 = arith.constant 32 : index
      %warp = arith.divui %tid, %c32 : index
      // expected-note @+1 {{the value}}
      %first = arith.cmpi eq, %warp, %c0 : index
      // expected-note @+1 {{the 'scf.if' whose condition or bound depends on the thread id}}
      scf.if %first {
        // expected-error @+1 {{'gpu.barrier' in kernel 'barrier_in_warp_branch' runs under control flow that differs between the threads of a block}}
        gpu.barrier
      }
      gpu.return
    }
  }
}

// -----

// A loop's bound read back from an atomic differs between threads.
module attributes {gpu.container_module} {
  gpu.module @k {
    gpu.func @barrier_in_atomic_loop(%count: memref<1xi32>) kernel {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %one = arith.constant 1 : i32
      %old = memref.atomic_rmw addi %one, %count[%c0] : (i32, memref<1xi32>) -> i32
      // expected-note @+1 {{the value}}
      %n = arith.index_cast %old : i32 to index
      // expected-note @+1 {{the 'scf.for' whose condition or bound depends on the thread id}}
      scf.for %i = %c0 to %n step %c1 {
        // expected-error @+1 {{'gpu.barrier' in kernel 'barrier_in_atomic_loop'}}
        gpu.barrier
      }
      gpu.return
    }
  }
}

// -----

// The thread id against a multiple of 32 splits the block between whole
// warps (the wgmma kernels' MMA warpgroups against the producer): a shuffle
// there is fine; against any other constant it splits a warp.
module attributes {gpu.container_module} {
  gpu.module @k {
    gpu.func @warpgroup_branch(%v: f32, %out: memref<32xf32>) kernel {
      %tid = gpu.thread_id x
      %c32 = arith.constant 32 : index
      %c256 = arith.constant 256 : index
      %c1i = arith.constant 1 : i32
      %w = arith.constant 32 : i32
      %lane = arith.remui %tid, %c32 : index
      %mma = arith.cmpi ult, %tid, %c256 : index
      scf.if %mma {
        %s, %ok = gpu.shuffle xor %v, %c1i, %w : f32
        memref.store %s, %out[%lane] : memref<32xf32>
      }
      gpu.return
    }
    gpu.func @split_warp_branch(%v: f32, %out: memref<32xf32>) kernel {
      %tid = gpu.thread_id x
      %c32 = arith.constant 32 : index
      %c40 = arith.constant 40 : index
      %c1i = arith.constant 1 : i32
      %w = arith.constant 32 : i32
      %lane = arith.remui %tid, %c32 : index
      // expected-note @+1 {{the value}}
      %few = arith.cmpi ult, %tid, %c40 : index
      // expected-note @+1 {{the 'scf.if' whose condition or bound depends on the thread id}}
      scf.if %few {
        // expected-error @+1 {{'gpu.shuffle' in kernel 'split_warp_branch' runs under control flow that differs between the threads of a warp}}
        %s, %ok = gpu.shuffle xor %v, %c1i, %w : f32
        memref.store %s, %out[%lane] : memref<32xf32>
      }
      gpu.return
    }
  }
}
