// A Mixtral-shaped MoE layer at toy size: 8 experts, top-2 of softmax scores
// renormalised, SwiGLU experts; 16 tokens of hidden size 64, expert ffn 128.
//
// The argument attributes name the tensors the executable reads from its
// safetensors files.
//
//   moe-opt examples/mixtral_layer.mlir -moe-decompose-layer
//   moe-compile examples/mixtral_layer.mlir -o mixtral_layer
func.func @mixtral_layer(
    %x: tensor<16x64xbf16> {moe.input = "x"},
    %router: tensor<64x8xbf16> {moe.weight = "router"},
    %w_up: tensor<8x64x128xbf16> {moe.weight = "experts.w_up"},
    %w_gate: tensor<8x64x128xbf16> {moe.weight = "experts.w_gate"},
    %w_down: tensor<8x128x64xbf16> {moe.weight = "experts.w_down"})
    -> (tensor<16x64xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<16x64xbf16>
      router(%router : tensor<64x8xbf16>)
      up(%w_up : tensor<8x64x128xbf16>) gate(%w_gate : tensor<8x64x128xbf16>)
      down(%w_down : tensor<8x128x64xbf16>)
      {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64}
      -> tensor<16x64xbf16>
  return %y : tensor<16x64xbf16>
}
