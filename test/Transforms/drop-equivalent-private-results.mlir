// RUN: moe-opt %s --allow-unregistered-dialect --moe-drop-equivalent-private-results | FileCheck %s

// A private function's memref results that are its arguments (directly or
// through a cast) go; its calls use their operands (cast back where the
// types differ). A result that is a new buffer stays, and so do a public
// function's results.

// CHECK-LABEL: func.func private @layer(
// CHECK-SAME: %[[X:.*]]: memref<4xf32>, %[[C:.*]]: memref<4xf32>) -> memref<4xf32>
// CHECK: return %{{.*}} : memref<4xf32>
func.func private @layer(%x: memref<4xf32>, %cache: memref<4xf32>) -> (memref<4xf32>, memref<4xf32>, memref<?xf32>) {
  %y = memref.alloc() : memref<4xf32>
  memref.copy %x, %y : memref<4xf32> to memref<4xf32>
  memref.copy %x, %cache : memref<4xf32> to memref<4xf32>
  %cast = memref.cast %cache : memref<4xf32> to memref<?xf32>
  return %y, %cache, %cast : memref<4xf32>, memref<4xf32>, memref<?xf32>
}

// CHECK-LABEL: func.func @model(
// CHECK-SAME: %[[X:.*]]: memref<4xf32>, %[[C:.*]]: memref<4xf32>) -> (memref<4xf32>, memref<4xf32>)
// CHECK: %[[Y:.*]] = call @layer(%[[X]], %[[C]]) : (memref<4xf32>, memref<4xf32>) -> memref<4xf32>
// CHECK: %[[CAST:.*]] = memref.cast %[[C]] : memref<4xf32> to memref<?xf32>
// CHECK: "test.use"(%[[CAST]])
// CHECK: return %[[Y]], %[[C]]
func.func @model(%x: memref<4xf32>, %cache: memref<4xf32>) -> (memref<4xf32>, memref<4xf32>) {
  %y, %c, %cast = call @layer(%x, %cache) : (memref<4xf32>, memref<4xf32>) -> (memref<4xf32>, memref<4xf32>, memref<?xf32>)
  "test.use"(%cast) : (memref<?xf32>) -> ()
  return %y, %c : memref<4xf32>, memref<4xf32>
}
