// RUN: moe-opt %s --moe-cpu-outline-loops="min-nests=2" | FileCheck %s
// RUN: moe-opt %s --moe-cpu-outline-loops | FileCheck %s --check-prefix=FEW
// RUN: moe-opt %s --moe-cpu-outline-loops="min-nests=2 merge=false" | FileCheck %s --check-prefix=APART

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

// Nests that are equal but for the memrefs they take (two layers' nests)
// become one function called twice; a nest with another constant stays
// apart (merge=false keeps all three).

// CHECK-LABEL: func.func private @twin.nest0
// CHECK-SAME: (%{{.*}}: memref<8xf32>, %{{.*}}: memref<8xf32>)
// CHECK: arith.constant 2.0
// CHECK: arith.addf
// CHECK-NOT: @twin.nest1
// CHECK-LABEL: func.func private @twin.nest2
// CHECK: arith.constant 3.0
// CHECK-LABEL: func.func @twin
// CHECK: call @twin.nest0(%arg0, %arg1)
// CHECK-NEXT: call @twin.nest0(%arg2, %arg3)
// CHECK-NEXT: call @twin.nest2(%arg1, %arg3)
// CHECK-NEXT: return

// APART: func.func private @twin.nest0
// APART: func.func private @twin.nest1
// APART: func.func private @twin.nest2
// APART-LABEL: func.func @twin
// APART: call @twin.nest0(%arg0, %arg1)
// APART-NEXT: call @twin.nest1(%arg2, %arg3)
// APART-NEXT: call @twin.nest2(%arg1, %arg3)
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

func.func @twin(%a: memref<8xf32>, %b: memref<8xf32>, %c: memref<8xf32>,
                %d: memref<8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %two = arith.constant 2.0 : f32
  %three = arith.constant 3.0 : f32
  scf.for %i = %c0 to %c8 step %c1 {
    %x = memref.load %a[%i] : memref<8xf32>
    %y = arith.addf %x, %two : f32
    memref.store %y, %b[%i] : memref<8xf32>
  }
  scf.for %i = %c0 to %c8 step %c1 {
    %x = memref.load %c[%i] : memref<8xf32>
    %y = arith.addf %x, %two : f32
    memref.store %y, %d[%i] : memref<8xf32>
  }
  scf.for %i = %c0 to %c8 step %c1 {
    %x = memref.load %b[%i] : memref<8xf32>
    %y = arith.addf %x, %three : f32
    memref.store %y, %d[%i] : memref<8xf32>
  }
  return
}
