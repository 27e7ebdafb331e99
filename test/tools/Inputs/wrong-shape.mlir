func.func @f(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>) -> tensor<16x64xf32> {
  %p, %o, %m = moe.dispatch %x : tensor<16x64xf32>, %ids : tensor<16x2xi32> {num_experts = 8 : i64} -> tensor<16x64xf32>, tensor<9xi32>, tensor<16x2xi32>
  return %p : tensor<16x64xf32>
}
