func.func @mlp(%x: tensor<4x8xf32> {moe.input = "tokens"}, %u: tensor<8x16xf32> {moe.weight = "up"}, %d: tensor<16x8xf32> {moe.weight = "down"}) -> (tensor<4x8xf32> {moe.output = "y"}) {
  %y = moe.mlp %x : tensor<4x8xf32> up(%u : tensor<8x16xf32>) down(%d : tensor<16x8xf32>) {activation = #moe.activation<relu>} -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}
