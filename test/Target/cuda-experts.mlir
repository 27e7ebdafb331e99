// moe-compile --target=cuda on a layer the fused GPU path does not take
// (capacity drops by score): the layer is decomposed, its bf16 expert FFN runs on
// the GPU (weights marked device-weight in the signature, kernels embedded
// as a cubin, launches through the runtime's mgpu* ABI), routing with its
// drops, dispatch and combine on the CPU.
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --emit=mlir | FileCheck %s --check-prefix=MLIR
// RUN: moe-compile %s --target=cuda --emit=llvm | FileCheck %s --check-prefix=LLVM
// RUN: moe-opt %s -convert-moe-layer-to-gpu-call -moe-decompose-layer -convert-moe-experts-to-gpu-call | FileCheck %s --check-prefix=CALL
// RUN: moe-compile %s --target=cuda --gpu-report --emit=mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT
// Routing on the host: no CUDA graph for its steps.
// REPORT: remark: a call of the model does host work (buffer 'router' is on the host): its steps run without a CUDA graph

// CALL-NOT: __moe_gpu_layer
// CALL: func.func private @__moe_gpu_experts_0(tensor<32x64xbf16> {bufferization.access = "read"}, tensor<9xi32> {bufferization.access = "read"}, tensor<8x64x128xbf16> {bufferization.access = "read"}, tensor<8x64x128xbf16> {bufferization.access = "read"}, tensor<8x128x64xbf16> {bufferization.access = "read"}) -> tensor<32x64xbf16> attributes {moe.gpu_experts = #moe.activation<silu>, moe.gpu_experts_gated}
// CALL: moe.router
// CALL: moe.dispatch
// CALL: call @__moe_gpu_experts_0(
// CALL-NOT: moe.experts
// CALL: moe.combine

// MLIR: llvm.func @__moe_gpu_experts_0(
// MLIR-DAG: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@grouped_gemv_bf16
// MLIR-DAG: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@expert_silu_gated
// MLIR-DAG: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_kernels::@round_bf16
// MLIR: gpu.binary @moe_kernels
// MLIR: llvm.mlir.global external constant @moe_model_signature("input x BF16 16x64\0Aweight router BF16 64x8\0Adevice-weight w_up BF16 8x64x128\0Adevice-weight w_gate BF16 8x64x128\0Adevice-weight w_down BF16 8x128x64\0Aoutput y BF16 16x64\0A\00")

// LLVM: call void @mgpuLaunchKernel(
// LLVM: call ptr @mgpuModuleLoad(
func.func @layer(%x: tensor<16x64xbf16> {moe.input = "x"}, %router: tensor<64x8xbf16> {moe.weight = "router"},
                 %w_up: tensor<8x64x128xbf16> {moe.weight = "w_up"}, %w_gate: tensor<8x64x128xbf16> {moe.weight = "w_gate"},
                 %w_down: tensor<8x128x64xbf16> {moe.weight = "w_down"}) -> (tensor<16x64xbf16> {moe.output = "y"}) {
  %y = moe.layer %x : tensor<16x64xbf16> router(%router : tensor<64x8xbf16>) up(%w_up : tensor<8x64x128xbf16>) gate(%w_gate : tensor<8x64x128xbf16>) down(%w_down : tensor<8x128x64xbf16>) {activation = #moe.activation<silu>, capacity_factor = 1.0 : f64, drop_policy = #moe.drop_policy<score>, renormalize, top_k = 2 : i64} -> tensor<16x64xbf16>
  return %y : tensor<16x64xbf16>
}
