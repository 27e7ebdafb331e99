// The whole CPU pipeline reaches the LLVM dialect: no moe, tensor, memref,
// linalg or scf op is left; the public function takes bare pointers with the
// result as a trailing out-parameter, and calls its loop nests, each a
// function of its own (moe-cpu-outline-loops).
// RUN: moe-opt %s -moe-cpu-pipeline | FileCheck %s
// RUN: moe-opt %s -moe-cpu-pipeline | FileCheck %s --check-prefix=NONE
// RUN: moe-opt %s -moe-cpu-pipeline | moe-translate --mlir-to-llvmir | FileCheck %s --check-prefix=LLVMIR

// NONE-NOT: moe.
// NONE-NOT: linalg.
// NONE-NOT: memref.
// NONE-NOT: scf.
// NONE-NOT: tensor.

// CHECK: llvm.func internal @qwen2_like.nest{{[0-9]+}}({{.*}}) attributes {passthrough = ["noinline"]
// CHECK: llvm.intr.exp
// CHECK-LABEL: llvm.func @qwen2_like(
// CHECK-SAME: %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr)
// CHECK: llvm.call @qwen2_like.nest
// CHECK: llvm.return
// LLVMIR: define internal void @qwen2_like.nest{{[0-9]+}}({{.*}}) #[[NOINLINE:[0-9]+]]
// LLVMIR: call float @llvm.exp.f32
// LLVMIR: define void @qwen2_like(ptr {{.*}}, ptr {{.*}}, ptr {{.*}}, ptr {{.*}}, ptr {{.*}}, ptr {{.*}}, ptr {{.*}}, ptr {{.*}})
// LLVMIR: call void @qwen2_like.nest
// LLVMIR: attributes #[[NOINLINE]] = { noinline }
func.func @qwen2_like(%x: tensor<4x16xbf16>, %wr: tensor<16x8xbf16>, %wu: tensor<8x16x32xbf16>, %wg: tensor<8x16x32xbf16>, %wd: tensor<8x32x16xbf16>, %su: tensor<16x32xbf16>, %sd: tensor<32x16xbf16>) -> tensor<4x16xbf16> {
  %y = moe.layer %x : tensor<4x16xbf16> router(%wr : tensor<16x8xbf16>) up(%wu : tensor<8x16x32xbf16>) gate(%wg : tensor<8x16x32xbf16>) down(%wd : tensor<8x32x16xbf16>) shared_up(%su : tensor<16x32xbf16>) shared_down(%sd : tensor<32x16xbf16>) {activation = #moe.activation<silu>, top_k = 2 : i64} -> tensor<4x16xbf16>
  return %y : tensor<4x16xbf16>
}
