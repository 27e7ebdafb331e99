// One case per message of the expert exchanges' verifiers.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @uneven(%p: tensor<32x64xbf16>, %off: tensor<9xi32>) {
  // expected-error @+1 {{'moe.dispatch_exchange' op the 8 experts do not split evenly over a group of 3}}
  %r, %roff, %cnt = moe.dispatch_exchange %p : tensor<32x64xbf16> offsets(%off : tensor<9xi32>) {grid = @g, grid_axes = array<i16: 1>, group_size = 3 : i64} -> tensor<64x64xbf16>, tensor<3xi32>, tensor<3x2xi32>
  return
}

// -----

func.func @no_axes(%p: tensor<32x64xbf16>, %off: tensor<9xi32>) {
  // expected-error @+1 {{'moe.dispatch_exchange' op grid_axes must name at least one grid axis}}
  %r, %roff, %cnt = moe.dispatch_exchange %p : tensor<32x64xbf16> offsets(%off : tensor<9xi32>) {grid = @g, grid_axes = array<i16>, group_size = 2 : i64} -> tensor<64x64xbf16>, tensor<5xi32>, tensor<2x4xi32>
  return
}

// -----

func.func @group(%p: tensor<32x64xbf16>, %off: tensor<9xi32>) {
  // expected-error @+1 {{'moe.dispatch_exchange' op group_size must be at least 1, got 0}}
  %r, %roff, %cnt = moe.dispatch_exchange %p : tensor<32x64xbf16> offsets(%off : tensor<9xi32>) {grid = @g, grid_axes = array<i16: 1>, group_size = 0 : i64} -> tensor<64x64xbf16>, tensor<5xi32>, tensor<2x4xi32>
  return
}

// -----

func.func @local_offsets(%p: tensor<32x64xbf16>, %off: tensor<9xi32>) {
  // expected-error @+1 {{'moe.dispatch_exchange' op local expert count mismatch: result_offsets has 9, expected 5}}
  %r, %roff, %cnt = moe.dispatch_exchange %p : tensor<32x64xbf16> offsets(%off : tensor<9xi32>) {grid = @g, grid_axes = array<i16: 1>, group_size = 2 : i64} -> tensor<64x64xbf16>, tensor<9xi32>, tensor<2x4xi32>
  return
}

// -----

func.func @counts(%p: tensor<32x64xbf16>, %off: tensor<9xi32>) {
  // expected-error @+1 {{'moe.dispatch_exchange' op group size mismatch: counts has 4, expected 2}}
  %r, %roff, %cnt = moe.dispatch_exchange %p : tensor<32x64xbf16> offsets(%off : tensor<9xi32>) {grid = @g, grid_axes = array<i16: 1>, group_size = 2 : i64} -> tensor<64x64xbf16>, tensor<5xi32>, tensor<4x2xi32>
  return
}

// -----

func.func @hidden(%p: tensor<32x64xbf16>, %off: tensor<9xi32>) {
  // expected-error @+1 {{'moe.dispatch_exchange' op hidden size d mismatch: input has 64 but result has 32}}
  %r, %roff, %cnt = moe.dispatch_exchange %p : tensor<32x64xbf16> offsets(%off : tensor<9xi32>) {grid = @g, grid_axes = array<i16: 1>, group_size = 2 : i64} -> tensor<64x32xbf16>, tensor<5xi32>, tensor<2x4xi32>
  return
}

// -----

func.func @combine_counts(%y: tensor<64x64xbf16>, %cnt: tensor<2x2xi32>, %off: tensor<9xi32>) {
  // expected-error @+1 {{'moe.combine_exchange' op local expert count mismatch: counts has 2, expected 4}}
  %b = moe.combine_exchange %y : tensor<64x64xbf16> counts(%cnt : tensor<2x2xi32>) offsets(%off : tensor<9xi32>) {grid = @g, grid_axes = array<i16: 1>, group_size = 2 : i64} -> tensor<32x64xbf16>
  return
}

// -----

func.func @combine_type(%y: tensor<64x64xbf16>, %cnt: tensor<2x4xi32>, %off: tensor<9xi32>) {
  // expected-error @+1 {{'moe.combine_exchange' op result element type 'f32' differs from input's 'bf16'}}
  %b = moe.combine_exchange %y : tensor<64x64xbf16> counts(%cnt : tensor<2x4xi32>) offsets(%off : tensor<9xi32>) {grid = @g, grid_axes = array<i16: 1>, group_size = 2 : i64} -> tensor<32x64xf32>
  return
}
