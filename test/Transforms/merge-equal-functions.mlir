// RUN: moe-opt %s --allow-unregistered-dialect --moe-merge-equal-functions | FileCheck %s
// RUN: moe-opt %s --allow-unregistered-dialect --moe-cpu-outline-loops="min-nests=2" --moe-merge-equal-functions | FileCheck %s --check-prefix=NESTS

// Private functions that are equal but for their names (and the buffers
// they are called with, as two layers' loop nests) become the first of them;
// a function that differs in a constant, in an attribute, or that is public,
// external or used other than by a call stays.

// CHECK-LABEL: func.func private @scale(
// CHECK-NOT: func.func private @scale_again
// CHECK-LABEL: func.func private @scale_by_three(
// CHECK-LABEL: func.func private @scale_inline(
// CHECK-LABEL: func.func @scale_public(
// CHECK-LABEL: func.func private @scale_referenced(
// CHECK-LABEL: func.func private @declared(memref<8xf32>)
// CHECK-LABEL: func.func private @declared_too(memref<8xf32>)
// CHECK-LABEL: func.func @model
// CHECK-NEXT: call @scale(%arg0, %arg1)
// CHECK-NEXT: call @scale(%arg2, %arg3)
// CHECK-NEXT: call @scale_by_three(%arg1, %arg3)
// CHECK-NEXT: call @scale_inline(%arg1, %arg3)
// CHECK-NEXT: call @scale_public(%arg1, %arg3)
// CHECK-NEXT: call @scale_referenced(%arg1, %arg3)
// CHECK-NEXT: call @declared(%arg0)
// CHECK-NEXT: call @declared_too(%arg0)
// CHECK-NEXT: "test.use"() {ref = @scale_referenced}

// The outlined nests of @layers: nest0 and nest1 are one function.
// NESTS-LABEL: func.func private @layers.nest0
// NESTS-NOT: @layers.nest1(
// NESTS-LABEL: func.func private @layers.nest2
// NESTS-LABEL: func.func @layers
// NESTS: call @layers.nest0(%arg0, %arg1)
// NESTS-NEXT: call @layers.nest0(%arg2, %arg3)
// NESTS-NEXT: call @layers.nest2(%arg1, %arg3)

func.func private @scale(%a: memref<8xf32>, %b: memref<8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %two = arith.constant 2.0 : f32
  scf.for %i = %c0 to %c8 step %c1 {
    %x = memref.load %a[%i] : memref<8xf32>
    %y = arith.mulf %x, %two : f32
    memref.store %y, %b[%i] : memref<8xf32>
  }
  return
}
func.func private @scale_again(%c: memref<8xf32>, %d: memref<8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %two = arith.constant 2.0 : f32
  scf.for %j = %c0 to %c8 step %c1 {
    %x = memref.load %c[%j] : memref<8xf32>
    %y = arith.mulf %x, %two : f32
    memref.store %y, %d[%j] : memref<8xf32>
  }
  return
}
func.func private @scale_by_three(%a: memref<8xf32>, %b: memref<8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %two = arith.constant 3.0 : f32
  scf.for %i = %c0 to %c8 step %c1 {
    %x = memref.load %a[%i] : memref<8xf32>
    %y = arith.mulf %x, %two : f32
    memref.store %y, %b[%i] : memref<8xf32>
  }
  return
}
func.func private @scale_inline(%a: memref<8xf32>, %b: memref<8xf32>) attributes {passthrough = ["alwaysinline"]} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %two = arith.constant 2.0 : f32
  scf.for %i = %c0 to %c8 step %c1 {
    %x = memref.load %a[%i] : memref<8xf32>
    %y = arith.mulf %x, %two : f32
    memref.store %y, %b[%i] : memref<8xf32>
  }
  return
}
func.func @scale_public(%a: memref<8xf32>, %b: memref<8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %two = arith.constant 2.0 : f32
  scf.for %i = %c0 to %c8 step %c1 {
    %x = memref.load %a[%i] : memref<8xf32>
    %y = arith.mulf %x, %two : f32
    memref.store %y, %b[%i] : memref<8xf32>
  }
  return
}
func.func private @scale_referenced(%a: memref<8xf32>, %b: memref<8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %two = arith.constant 2.0 : f32
  scf.for %i = %c0 to %c8 step %c1 {
    %x = memref.load %a[%i] : memref<8xf32>
    %y = arith.mulf %x, %two : f32
    memref.store %y, %b[%i] : memref<8xf32>
  }
  return
}
func.func private @declared(memref<8xf32>)
func.func private @declared_too(memref<8xf32>)

func.func @model(%a: memref<8xf32>, %b: memref<8xf32>, %c: memref<8xf32>,
                 %d: memref<8xf32>) {
  call @scale(%a, %b) : (memref<8xf32>, memref<8xf32>) -> ()
  call @scale_again(%c, %d) : (memref<8xf32>, memref<8xf32>) -> ()
  call @scale_by_three(%b, %d) : (memref<8xf32>, memref<8xf32>) -> ()
  call @scale_inline(%b, %d) : (memref<8xf32>, memref<8xf32>) -> ()
  call @scale_public(%b, %d) : (memref<8xf32>, memref<8xf32>) -> ()
  call @scale_referenced(%b, %d) : (memref<8xf32>, memref<8xf32>) -> ()
  call @declared(%a) : (memref<8xf32>) -> ()
  call @declared_too(%a) : (memref<8xf32>) -> ()
  "test.use"() {ref = @scale_referenced} : () -> ()
  return
}

func.func @layers(%a: memref<8xf32>, %b: memref<8xf32>, %c: memref<8xf32>,
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
