func.func @f(%x: tensor<4x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>) {
  %i, %w = moe.router %x : tensor<4x8xf32> {top_k = 2 : i64, renormalise} -> tensor<4x2xi32>, tensor<4x2xf32>
  return %i, %w : tensor<4x2xi32>, tensor<4x2xf32>
}
