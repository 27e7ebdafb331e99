// RUN: moe-opt %s --moe-cpu-outline-loops="min-nests=2" | FileCheck %s
// RUN: moe-opt %s --moe-cpu-outline-loops | FileCheck %s --check-prefix=FEW

// A function of at least min-nests top-level loop nests: each nest moves
// into a private (internal) noinline function taking what it uses from
// above (results returned, constants cloned in); a nest over a subview at a
// dynamic offset (no bare pointer) stays. A function of fewer nests keeps
// them.

// CHECK-LABEL: func.func private @model.nest0
// CHECK-SAME: (%[[A:.*]]: memref<8xf32>, %[[B:.*]]: memref<8xf32>)
// CHECK-SAME: attributes {llvm.linkage = #llvm.linkage<internal>, passthrough = ["noinline"]}
// CHECK: %[[TWO:.*]] = arith.constant 2.0
// CHECK: scf.for
// CHECK: arith.mulf %{{.*}}, %[[TWO]]
// CHECK: memref.store %{{.*}}, %[[B]]
// CHECK-LABEL: func.func private @model.nest1
// CHECK-SAME: (%{{.*}}: memref<8xf32>) -> f32
// CHECK: %[[S:.*]] = scf.for
// CHECK: return %[[S]] : f32
// CHECK-NOT: @model.nest2
// CHECK-LABEL: func.func @model
// CHECK: call @model.nest0(%arg0, %arg1) : (memref<8xf32>, memref<8xf32>) -> ()
// CHECK: %[[SUM:.*]] = call @model.nest1(%arg1) : (memref<8xf32>) -> f32
// CHECK: %[[VIEW:.*]] = memref.subview
// CHECK: scf.for
// CHECK: memref.store %[[SUM]], %[[VIEW]]
// CHECK: return %[[SUM]]
// CHECK-LABEL: func.func @small
// CHECK-NOT: call
// CHECK: scf.for

// FEW-NOT: nest
func.func @model(%a: memref<8xf32>, %b: memref<8xf32>, %n: index) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %two = arith.constant 2.0 : f32
  %zero = arith.constant 0.0 : f32
  scf.for %i = %c0 to %c8 step %c1 {
    %x = memref.load %a[%i] : memref<8xf32>
    %y = arith.mulf %x, %two : f32
    memref.store %y, %b[%i] : memref<8xf32>
  }
  %sum = scf.for %i = %c0 to %c8 step %c1 iter_args(%acc = %zero) -> (f32) {
    %x = memref.load %b[%i] : memref<8xf32>
    %s = arith.addf %acc, %x : f32
    scf.yield %s : f32
  }
  %view = memref.subview %a[%n] [4] [1] : memref<8xf32> to memref<4xf32, strided<[1], offset: ?>>
  scf.for %i = %c0 to %c1 step %c1 {
    memref.store %sum, %view[%i] : memref<4xf32, strided<[1], offset: ?>>
  }
  return %sum : f32
}

func.func @small(%a: memref<8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f32
  scf.for %i = %c0 to %c8 step %c1 {
    memref.store %zero, %a[%i] : memref<8xf32>
  }
  return
}
