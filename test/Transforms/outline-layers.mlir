// RUN: moe-opt %s --split-input-file --moe-outline-layers | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-outline-layers --moe-merge-equal-functions | FileCheck %s --check-prefix=MERGED

// Two alike layers, each a run of operations named after it, between an
// embedding and a head that belong to no layer. Each layer becomes a
// function named after it, taking what it uses from above (the constant
// without a layer between its operations is cloned in) and returning what
// the rest uses; merged, both layers call one function.

// CHECK-LABEL: func.func private @model.layers.0(
// CHECK-SAME: %[[A:.*]]: tensor<4xf32>, %[[B:.*]]: tensor<4xf32>) -> tensor<4xf32>
// CHECK: %[[C:.*]] = arith.constant dense<2.0
// CHECK: %[[M:.*]] = arith.mulf %[[A]], %[[B]]
// CHECK: %[[S:.*]] = arith.addf %[[M]], %[[C]]
// CHECK: return %[[S]]
// CHECK-LABEL: func.func private @model.layers.1(
// CHECK-LABEL: func.func @model(
// CHECK-SAME: %[[X:.*]]: tensor<4xf32>, %[[W0:.*]]: tensor<4xf32>, %[[W1:.*]]: tensor<4xf32>
// CHECK: %[[E:.*]] = arith.negf %[[X]]
// CHECK: %[[L0:.*]] = call @model.layers.0(%[[E]], %[[W0]])
// CHECK: %[[L1:.*]] = call @model.layers.1(%[[L0]], %[[W1]])
// CHECK: %[[H:.*]] = arith.negf %[[L1]]
// CHECK: return %[[H]]

// MERGED-NOT: @model.layers.1(
// MERGED-LABEL: func.func @model(
// MERGED: call @model.layers.0(
// MERGED: call @model.layers.0(
func.func @model(%x: tensor<4xf32>, %w0: tensor<4xf32>, %w1: tensor<4xf32>) -> tensor<4xf32> {
  %e = arith.negf %x : tensor<4xf32> loc("model.embed_tokens")
  %m0 = arith.mulf %e, %w0 : tensor<4xf32> loc("model.layers.0.mlp")
  %c0 = arith.constant dense<2.0> : tensor<4xf32> loc(unknown)
  %s0 = arith.addf %m0, %c0 : tensor<4xf32> loc("model.layers.0.post")
  %m1 = arith.mulf %s0, %w1 : tensor<4xf32> loc("model.layers.1.mlp")
  %c1 = arith.constant dense<2.0> : tensor<4xf32> loc(unknown)
  %s1 = arith.addf %m1, %c1 : tensor<4xf32> loc("model.layers.1.post")
  %h = arith.negf %s1 : tensor<4xf32> loc("lm_head")
  return %h : tensor<4xf32>
}

// -----

// A layer's value used after the next layer (a residual) is a result of
// its function; a value used only inside is not. Two layers of different
// operations stay two functions when merged.

// CHECK-LABEL: func.func private @model.layers.0(
// CHECK-SAME: -> (tensor<4xf32>, tensor<4xf32>)
// CHECK-LABEL: func.func private @model.layers.1(
// CHECK-SAME: -> tensor<4xf32>
// CHECK-LABEL: func.func @residual(
// CHECK: %[[R0:.*]]:2 = call @model.layers.0(
// CHECK: %[[R1:.*]] = call @model.layers.1(%[[R0]]#1)
// CHECK: arith.addf %[[R1]], %[[R0]]#0

// MERGED-LABEL: func.func @residual(
// MERGED: call @model.layers.0(
// MERGED: call @model.layers.1(
func.func @residual(%x: tensor<4xf32>) -> tensor<4xf32> {
  %a = arith.negf %x : tensor<4xf32> loc("model.layers.0.a")
  %b = arith.mulf %a, %a : tensor<4xf32> loc("model.layers.0.b")
  %c = arith.addf %b, %a : tensor<4xf32> loc("model.layers.0.c")
  %d = arith.negf %c : tensor<4xf32> loc("model.layers.1.a")
  %r = arith.addf %d, %b : tensor<4xf32> loc("residual")
  return %r : tensor<4xf32>
}

// -----

// One layer (under min-layers = 2), or none: nothing moves.

// CHECK-NOT: func.func private
// CHECK-LABEL: func.func @one_layer(
// CHECK-NEXT: arith.negf
// CHECK-NEXT: arith.negf
// CHECK-NEXT: return
func.func @one_layer(%x: tensor<4xf32>) -> tensor<4xf32> {
  %a = arith.negf %x : tensor<4xf32> loc("model.layers.0.a")
  %b = arith.negf %a : tensor<4xf32> loc("lm_head")
  return %b : tensor<4xf32>
}

// -----

// An operation of no layer between two of one layer's ends its run: the
// layer's operations after it are a second function (`<layer>.1`).

// CHECK-LABEL: func.func private @model.layers.0(
// CHECK-LABEL: func.func private @model.layers.0.1(
// CHECK-LABEL: func.func private @model.layers.1(
// CHECK-LABEL: func.func @split(
// CHECK: call @model.layers.0(
// CHECK: arith.negf
// CHECK: call @model.layers.0.1(
// CHECK: call @model.layers.1(
func.func @split(%x: tensor<4xf32>) -> tensor<4xf32> {
  %a = arith.negf %x : tensor<4xf32> loc("model.layers.0.a")
  %b = arith.negf %a : tensor<4xf32> loc("elsewhere")
  %c = arith.negf %b : tensor<4xf32> loc("model.layers.0.b")
  %d = arith.negf %c : tensor<4xf32> loc("model.layers.1.a")
  return %d : tensor<4xf32>
}

// -----

// A layer whose input or output has a dynamic shape stays where it is (the
// CPU code passes buffers as bare pointers); the others move.

// CHECK-LABEL: func.func private @model.layers.1(
// CHECK-NOT: func.func private
// CHECK-LABEL: func.func @dynamic(
// CHECK-NEXT: arith.negf
// CHECK-NEXT: tensor.cast
// CHECK-NEXT: call @model.layers.1(
// CHECK-NEXT: tensor.cast
// CHECK-NEXT: arith.negf
func.func @dynamic(%x: tensor<?xf32>) -> tensor<?xf32> {
  %a = arith.negf %x : tensor<?xf32> loc("model.layers.0.a")
  %s = tensor.cast %a : tensor<?xf32> to tensor<4xf32> loc("elsewhere")
  %b = arith.negf %s : tensor<4xf32> loc("model.layers.1.a")
  %d = tensor.cast %b : tensor<4xf32> to tensor<?xf32> loc("elsewhere")
  %c = arith.negf %d : tensor<?xf32> loc("model.layers.2.a")
  return %c : tensor<?xf32>
}

// -----

// A layer that hands a buffer to the rest stays (a stack buffer would not
// outlive its function); one that only uses buffers inside moves.

// CHECK-LABEL: func.func private @model.layers.1(
// CHECK-NOT: func.func private
// CHECK-LABEL: func.func @buffers(
// CHECK-NEXT: memref.alloca
// CHECK-NEXT: memref.store
// CHECK-NEXT: call @model.layers.1(
func.func @buffers(%x: f32, %i: index) -> f32 {
  %a = memref.alloca() : memref<4xf32> loc("model.layers.0.a")
  memref.store %x, %a[%i] : memref<4xf32> loc("model.layers.0.b")
  %b = memref.alloca() : memref<4xf32> loc("model.layers.1.a")
  %v = memref.load %a[%i] : memref<4xf32> loc("model.layers.1.b")
  memref.store %v, %b[%i] : memref<4xf32> loc("model.layers.1.c")
  %w = memref.load %b[%i] : memref<4xf32> loc("model.layers.1.d")
  return %w : f32
}
