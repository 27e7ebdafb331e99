// moe.quant on a model entry's weights: "fp8:BO:BI" on a float matrix (or
// a stack of them) only.
func.func @f(%x: tensor<4x8xf32> {moe.input = "x"}, %u: tensor<8x16xf32> {moe.weight = "u", moe.transpose, moe.quant = "fp8:128"}, %d: tensor<16x8xf32> {moe.weight = "d"}) -> (tensor<4x8xf32> {moe.output = "y"}) {
  %y = moe.mlp %x : tensor<4x8xf32> up(%u : tensor<8x16xf32>) down(%d : tensor<16x8xf32>) {activation = #moe.activation<relu>} -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}
