// Two MoE layers chained on the GPU: the activation between them is a
// device buffer (gpu.alloc), handed from one fused layer to the next with
// no copy through the host; the model's input and output are device
// buffers of the signature.
// REQUIRES: ptxas
// RUN: moe-compile %s --target=cuda --emit=mlir -o %t.mlir --mlir-print-ir-after=moe-materialize-gpu-experts --mlir-disable-threading 2> %t.ir
// RUN: FileCheck %s < %t.ir
// RUN: FileCheck %s --check-prefix=SIG < %t.mlir

// CHECK: IR Dump After MoEMaterializeGpuExperts
// CHECK: IR Dump After MoEMaterializeGpuExperts
// CHECK: func.func @two_layers(
// CHECK-NEXT: %[[H:.*]] = gpu.alloc () : memref<4x64xbf16>
// CHECK-NEXT: call @__moe_gpu_layer_0(%arg0, %arg1, %arg2, %arg3, %arg4, %[[H]])
// CHECK-NEXT: call @__moe_gpu_layer_1(%[[H]], %arg1, %arg2, %arg3, %arg4, %arg5)
// CHECK-NEXT: gpu.dealloc %[[H]]
// CHECK-NEXT: return
// SIG: device-input x BF16 4x64
// SIG: device-output y BF16 4x64
func.func @two_layers(%x: tensor<4x64xbf16> {moe.input = "x"},
                      %router: tensor<64x8xbf16> {moe.weight = "router"},
                      %up: tensor<8x64x64xbf16> {moe.weight = "up"},
                      %gate: tensor<8x64x64xbf16> {moe.weight = "gate"},
                      %down: tensor<8x64x64xbf16> {moe.weight = "down"})
    -> (tensor<4x64xbf16> {moe.output = "y"}) {
  %h = moe.layer %x : tensor<4x64xbf16> router(%router : tensor<64x8xbf16>) up(%up : tensor<8x64x64xbf16>) gate(%gate : tensor<8x64x64xbf16>) down(%down : tensor<8x64x64xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64} -> tensor<4x64xbf16>
  %y = moe.layer %h : tensor<4x64xbf16> router(%router : tensor<64x8xbf16>) up(%up : tensor<8x64x64xbf16>) gate(%gate : tensor<8x64x64xbf16>) down(%down : tensor<8x64x64xbf16>) {activation = #moe.activation<silu>, renormalize, top_k = 2 : i64} -> tensor<4x64xbf16>
  return %y : tensor<4x64xbf16>
}
