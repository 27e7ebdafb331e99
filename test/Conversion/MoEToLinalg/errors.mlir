// RUN: moe-opt %s -convert-moe-to-linalg -verify-diagnostics -split-input-file

func.func @layer_not_decomposed(%x: tensor<8x64xf32>, %wr: tensor<64x4xf32>, %wu: tensor<4x64x128xf32>, %wd: tensor<4x128x64xf32>) -> tensor<8x64xf32> {
  // expected-error @+1 {{'moe.layer' op must be decomposed before the lowering (run -moe-decompose-layer first)}}
  %y = moe.layer %x : tensor<8x64xf32> router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x64x128xf32>) down(%wd : tensor<4x128x64xf32>) {activation = #moe.activation<gelu>, top_k = 1 : i64} -> tensor<8x64xf32>
  return %y : tensor<8x64xf32>
}
