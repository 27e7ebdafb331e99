func.func @f(%x: tensor<4x8xf32> {moe.input = "x"}, %u: tensor<8x16xf32> {moe.weight = "x"}, %d: tensor<16x8xf32>) -> tensor<4x8xf32> {
  %y = moe.mlp %x : tensor<4x8xf32> up(%u : tensor<8x16xf32>) down(%d : tensor<16x8xf32>) {activation = #moe.activation<relu>} -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}
