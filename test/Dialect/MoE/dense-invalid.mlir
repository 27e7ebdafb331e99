// One case per message of the dense ops' verifiers.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @embedding_width(%ids: tensor<4xi32>, %e: tensor<10x8xf32>) {
  // expected-error @+1 {{'moe.embedding' op hidden size d mismatch: table has 8 but result has 16}}
  %h = moe.embedding %ids : tensor<4xi32> table(%e : tensor<10x8xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @embedding_tokens(%ids: tensor<4xi32>, %e: tensor<10x8xf32>) {
  // expected-error @+1 {{'moe.embedding' op token count T mismatch: ids has 4 but result has 5}}
  %h = moe.embedding %ids : tensor<4xi32> table(%e : tensor<10x8xf32>) -> tensor<5x8xf32>
  return
}

// -----

func.func @norm_width(%x: tensor<4x8xf32>, %w: tensor<16xf32>) {
  // expected-error @+1 {{'moe.rms_norm' op hidden size d mismatch: input has 8 but weight has 16}}
  %y = moe.rms_norm %x : tensor<4x8xf32> weight(%w : tensor<16xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @norm_epsilon(%x: tensor<4x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'moe.rms_norm' op epsilon must be positive, got 0}}
  %y = moe.rms_norm %x : tensor<4x8xf32> weight(%w : tensor<8xf32>) {epsilon = 0.0 : f64} -> tensor<4x8xf32>
  return
}

// -----

func.func @norm_result(%x: tensor<4x8xf32>, %w: tensor<8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op result type 'tensor<4x8xbf16>' must equal the input type 'tensor<4x8xf32>'}}
  %y = moe.layer_norm %x : tensor<4x8xf32> weight(%w : tensor<8xf32>) bias(%b : tensor<8xf32>) -> tensor<4x8xbf16>
  return
}

// -----

func.func @norm_bias(%x: tensor<4x8xf32>, %w: tensor<8xf32>, %b: tensor<8xbf16>) {
  // expected-error @+1 {{'moe.layer_norm' op bias element type 'bf16' differs from input's 'f32'}}
  %y = moe.layer_norm %x : tensor<4x8xf32> weight(%w : tensor<8xf32>) bias(%b : tensor<8xbf16>) -> tensor<4x8xf32>
  return
}
