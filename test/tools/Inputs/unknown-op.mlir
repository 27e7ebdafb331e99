func.func @f(%x: tensor<4x8xf32>) {
  %y = moe.route %x : tensor<4x8xf32>
  return
}
