// The expert exchanges round-trip, and their verifiers name what is wrong.
// RUN: moe-opt %s --split-input-file | moe-opt --split-input-file | FileCheck %s
// RUN: moe-opt %s --split-input-file --mlir-print-op-generic | moe-opt | FileCheck %s

// CHECK-LABEL: func.func @exchange
// CHECK: %{{.*}}, %{{.*}}, %[[CNT:.+]] = moe.dispatch_exchange %{{.*}} : tensor<32x64xbf16> offsets(%{{.*}} : tensor<9xi32>) {grid = @moe_grid, grid_axes = array<i16: 1>, group_size = 2 : i64} -> tensor<64x64xbf16>, tensor<5xi32>, tensor<2x4xi32>
// CHECK: moe.combine_exchange %{{.*}} : tensor<64x64xbf16> counts(%[[CNT]] : tensor<2x4xi32>) offsets(%{{.*}} : tensor<9xi32>) {grid = @moe_grid, grid_axes = array<i16: 1>, group_size = 2 : i64} -> tensor<32x64xbf16>
func.func @exchange(%p: tensor<32x64xbf16>, %off: tensor<9xi32>) -> tensor<32x64xbf16> {
  %r, %roff, %cnt = moe.dispatch_exchange %p : tensor<32x64xbf16> offsets(%off : tensor<9xi32>) {grid = @moe_grid, grid_axes = array<i16: 1>, group_size = 2 : i64} -> tensor<64x64xbf16>, tensor<5xi32>, tensor<2x4xi32>
  %back = moe.combine_exchange %r : tensor<64x64xbf16> counts(%cnt : tensor<2x4xi32>) offsets(%off : tensor<9xi32>) {grid = @moe_grid, grid_axes = array<i16: 1>, group_size = 2 : i64} -> tensor<32x64xbf16>
  return %back : tensor<32x64xbf16>
}
