// The collectives of a per-rank program become moert_comm calls on the
// buffers of their operands and fresh result buffers.
// RUN: moe-opt %s --convert-moe-comm-to-runtime | FileCheck %s

// CHECK-NOT: shard.grid
// CHECK: module attributes {moe.grid = array<i64: 1, 2, 2>}
// CHECK-DAG: func.func private @moert_comm_group_rank(i64) -> i64
// CHECK-DAG: func.func private @moert_comm_dispatch(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64)
// CHECK-DAG: func.func private @moert_comm_combine(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64)
// CHECK-DAG: func.func private @moert_comm_all_reduce(i64, i64, i64, i64, i64)
// CHECK-DAG: func.func private @moert_comm_all_gather(i64, i64, i64, i64, i64)
// CHECK-LABEL: func.func @rank
// The slice: this rank's coordinate on axis 1 (mask 2) times 4 rows.
// CHECK: %[[MASK:.+]] = arith.constant 2 : i64
// CHECK: %[[R:.+]] = call @moert_comm_group_rank(%[[MASK]])
// CHECK: %[[RI:.+]] = arith.index_cast %[[R]] : i64 to index
// CHECK: %[[OFF:.+]] = arith.muli %[[RI]], %c4
// CHECK: tensor.extract_slice %{{.*}}[%[[OFF]], 0] [4, 16] [1, 1] : tensor<8x16xbf16> to tensor<4x16xbf16>
// Dispatch: rows of 32 bytes, 8 experts, capacity 16 rows, 2 ranks.
// CHECK: bufferization.to_buffer %{{.*}} read_only : tensor<8x16xbf16> to memref<8x16xbf16>
// CHECK: memref.alloc() : memref<16x16xbf16>
// CHECK: memref.alloc() : memref<5xi32>
// CHECK: memref.alloc() : memref<2x4xi32>
// CHECK: call @moert_comm_dispatch(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %c32_i64, %c8_i64, %c16_i64, %c2_i64{{.*}}, %c2_i64{{.*}})
// CHECK: bufferization.to_tensor %{{.*}} restrict writable : memref<16x16xbf16> to tensor<16x16xbf16>
// CHECK: call @moert_comm_combine
// All-reduce of 64 bf16 (code 2) over axis 2 (mask 4).
// CHECK: call @moert_comm_all_reduce(%{{.*}}, %{{.*}}, %c64_i64, %c2_i64{{.*}}, %c4_i64)
// All-gather of 128 bytes from each of 2 ranks over axis 1.
// CHECK: call @moert_comm_all_gather(%{{.*}}, %{{.*}}, %c128_i64, %c2_i64{{.*}}, %c2_i64{{.*}})
// CHECK-NOT: shard.

shard.grid @moe_grid(shape = 1x2x2)
func.func @rank(%x: tensor<8x16xbf16>, %p: tensor<8x16xbf16>, %off: tensor<9xi32>) -> tensor<8x16xbf16> {
  %s = shard.all_slice %x on @moe_grid grid_axes = [1] slice_axis = 0 : tensor<8x16xbf16> -> tensor<4x16xbf16>
  %r, %roff, %cnt = moe.dispatch_exchange %p : tensor<8x16xbf16> offsets(%off : tensor<9xi32>) {grid = @moe_grid, grid_axes = array<i16: 1>, group_size = 2 : i64} -> tensor<16x16xbf16>, tensor<5xi32>, tensor<2x4xi32>
  %back = moe.combine_exchange %r : tensor<16x16xbf16> counts(%cnt : tensor<2x4xi32>) offsets(%off : tensor<9xi32>) {grid = @moe_grid, grid_axes = array<i16: 1>, group_size = 2 : i64} -> tensor<8x16xbf16>
  %sum = shard.all_reduce %s on @moe_grid grid_axes = [2] : tensor<4x16xbf16> -> tensor<4x16xbf16>
  %all = shard.all_gather %sum on @moe_grid grid_axes = [1] gather_axis = 0 : tensor<4x16xbf16> -> tensor<8x16xbf16>
  return %all : tensor<8x16xbf16>
}
