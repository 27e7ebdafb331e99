// A Qwen2-MoE-shaped layer at toy size: 16 experts, top-4 of softmax scores
// without renormalisation, SwiGLU experts, and a shared expert whose output is
// scaled by sigmoid(x W_shared_gate).
func.func @qwen2_moe_layer(%x: tensor<8x64xf32>, %router: tensor<64x16xf32>,
                           %w_up: tensor<16x64x32xf32>,
                           %w_gate: tensor<16x64x32xf32>,
                           %w_down: tensor<16x32x64xf32>,
                           %s_up: tensor<64x128xf32>, %s_gate: tensor<64x128xf32>,
                           %s_down: tensor<128x64xf32>,
                           %s_coef: tensor<64x1xf32>) -> tensor<8x64xf32> {
  %y = moe.layer %x : tensor<8x64xf32>
      router(%router : tensor<64x16xf32>)
      up(%w_up : tensor<16x64x32xf32>) gate(%w_gate : tensor<16x64x32xf32>)
      down(%w_down : tensor<16x32x64xf32>)
      shared_up(%s_up : tensor<64x128xf32>)
      shared_gate(%s_gate : tensor<64x128xf32>)
      shared_down(%s_down : tensor<128x64xf32>)
      shared_coef(%s_coef : tensor<64x1xf32>)
      {activation = #moe.activation<silu>, top_k = 4 : i64}
      -> tensor<8x64xf32>
  return %y : tensor<8x64xf32>
}
