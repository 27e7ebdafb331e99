// RUN: moe-opt %s --moe-gpu-helper-stubs | FileCheck %s --check-prefix=STUB
// RUN: moe-opt %s --moe-gpu-helper-stubs --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" --moe-gpu-helper-stubs=strip | FileCheck %s

// Before bufferization each GPU helper declaration gets a body returning new
// tensors (the analysis then knows its results alias none of its arguments);
// after it, the stub bodies go and the helpers are declarations on memrefs
// again. A function that is not a GPU helper, or a helper with a result that
// is not a tensor of static shape, stays a declaration.

// STUB-LABEL: func.func private @other(tensor<4xf32>) -> tensor<4xf32>
// STUB-LABEL: func.func private @dyn(tensor<?xf32>
// STUB-SAME: -> tensor<?xf32>
// STUB-SAME: moe.gpu_dense = "add"
// STUB-NOT: {
// STUB-LABEL: func.func private @norm(%{{.*}}: tensor<4xbf16> {bufferization.access = "read"}, %{{.*}}: tensor<4xbf16> {bufferization.access = "read"}) -> (tensor<4xbf16>, tensor<2x4xbf16>)
// STUB-SAME: moe.gpu_dense = "rms_norm"
// STUB-NEXT: %[[A:.*]] = bufferization.alloc_tensor() : tensor<4xbf16>
// STUB-NEXT: %[[B:.*]] = bufferization.alloc_tensor() : tensor<2x4xbf16>
// STUB-NEXT: return %[[A]], %[[B]]

// CHECK-LABEL: func.func private @norm(memref<4xbf16> {bufferization.access = "read"}, memref<4xbf16> {bufferization.access = "read"}) -> (memref<4xbf16>, memref<2x4xbf16>)
// CHECK-SAME: moe.gpu_dense = "rms_norm"
// CHECK-NOT: {
// CHECK-LABEL: func.func @model
// CHECK: %[[X:.*]]:2 = call @norm(%arg0, %arg1)
// CHECK: %[[Y:.*]]:2 = call @norm(%[[X]]#0, %arg1)
// CHECK-NOT: memref.copy
// CHECK: return %[[Y]]#0, %[[X]]#1
func.func private @other(tensor<4xf32>) -> tensor<4xf32>
func.func private @dyn(tensor<?xf32> {bufferization.access = "read"}) -> tensor<?xf32> attributes {moe.gpu_dense = "add"}
func.func private @norm(tensor<4xbf16> {bufferization.access = "read"}, tensor<4xbf16> {bufferization.access = "read"}) -> (tensor<4xbf16>, tensor<2x4xbf16>) attributes {moe.gpu_dense = "rms_norm"}
func.func @model(%x: tensor<4xbf16>, %w: tensor<4xbf16>) -> (tensor<4xbf16>, tensor<2x4xbf16>) {
  %a:2 = call @norm(%x, %w) : (tensor<4xbf16>, tensor<4xbf16>) -> (tensor<4xbf16>, tensor<2x4xbf16>)
  %b:2 = call @norm(%a#0, %w) : (tensor<4xbf16>, tensor<4xbf16>) -> (tensor<4xbf16>, tensor<2x4xbf16>)
  return %b#0, %a#1 : tensor<4xbf16>, tensor<2x4xbf16>
}

