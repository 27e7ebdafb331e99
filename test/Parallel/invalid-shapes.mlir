// Weights need static shapes: the planner counts their bytes.
// RUN: moe-opt %s --moe-plan-parallelism -verify-diagnostics -o /dev/null

func.func @dynamic(%x: tensor<?x64xbf16>, %r: tensor<64x8xbf16>, %u: tensor<?x64x768xbf16>,
                   %d: tensor<?x768x64xbf16>) -> tensor<?x64xbf16> {
  // expected-error@+1 {{moe-plan-parallelism needs a static shape for the expert weights, got 'tensor<?x64x768xbf16>'}}
  %y = moe.layer %x : tensor<?x64xbf16> router(%r : tensor<64x8xbf16>) up(%u : tensor<?x64x768xbf16>) down(%d : tensor<?x768x64xbf16>) {activation = #moe.activation<silu>, top_k = 2 : i64} -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}
