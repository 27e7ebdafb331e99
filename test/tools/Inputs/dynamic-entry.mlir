func.func @f(%x: tensor<?x8xf32>, %u: tensor<8x16xf32>, %d: tensor<16x8xf32>) -> tensor<?x8xf32> {
  %y = moe.mlp %x : tensor<?x8xf32> up(%u : tensor<8x16xf32>) down(%d : tensor<16x8xf32>) {activation = #moe.activation<relu>} -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
