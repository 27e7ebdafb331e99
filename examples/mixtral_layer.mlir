// A Mixtral-shaped MoE layer at toy size: 8 experts, top-2 of softmax scores
// renormalised, SwiGLU experts; 16 tokens of hidden size 64, expert ffn 128.
//
//   moe-opt examples/mixtral_layer.mlir -moe-decompose-layer
func.func @mixtral_layer(%x: tensor<16x64xbf16>, %router: tensor<64x8xbf16>,
                         %w_up: tensor<8x64x128xbf16>,
                         %w_gate: tensor<8x64x128xbf16>,
                         %w_down: tensor<8x128x64xbf16>) -> tensor<16x64xbf16> {
  %y = moe.layer %x : tensor<16x64xbf16>
      router(%router : tensor<64x8xbf16>)
      up(%w_up : tensor<8x64x128xbf16>) gate(%w_gate : tensor<8x64x128xbf16>)
      down(%w_down : tensor<8x128x64xbf16>)
      {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64}
      -> tensor<16x64xbf16>
  return %y : tensor<16x64xbf16>
}
