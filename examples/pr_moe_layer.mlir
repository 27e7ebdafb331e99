// A DeepSpeed-MoE PR-MoE layer at toy size: top-1 of 32 GeLU experts with a
// capacity factor of 1.0 (tokens over capacity are dropped), plus the dense
// residual MLP mixed in with c = softmax(x W_coef).
func.func @pr_moe_layer(%x: tensor<32x64xf32>, %router: tensor<64x32xf32>,
                        %w_up: tensor<32x64x256xf32>,
                        %w_down: tensor<32x256x64xf32>,
                        %m_up: tensor<64x256xf32>, %m_down: tensor<256x64xf32>,
                        %m_coef: tensor<64x2xf32>) -> tensor<32x64xf32> {
  %y = moe.layer %x : tensor<32x64xf32>
      router(%router : tensor<64x32xf32>)
      up(%w_up : tensor<32x64x256xf32>) down(%w_down : tensor<32x256x64xf32>)
      mlp_up(%m_up : tensor<64x256xf32>) mlp_down(%m_down : tensor<256x64xf32>)
      mlp_coef(%m_coef : tensor<64x2xf32>)
      {activation = #moe.activation<gelu>, top_k = 1 : i64,
       capacity_factor = 1.0, min_capacity = 4 : i64}
      -> tensor<32x64xf32>
  return %y : tensor<32x64xf32>
}
