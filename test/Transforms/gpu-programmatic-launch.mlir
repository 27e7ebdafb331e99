// Every kernel opens with the grid dependency wait, then lets the next grid
// launch; device functions that are not kernels are left alone, and a
// second run adds nothing.
// RUN: moe-opt %s -moe-gpu-programmatic-launch -moe-gpu-programmatic-launch | FileCheck %s

module attributes {gpu.container_module} {
  gpu.module @k {
    // CHECK-LABEL: gpu.func @kernel
    // CHECK-NEXT: nvvm.griddepcontrol wait
    // CHECK-NEXT: nvvm.griddepcontrol launch_dependents
    // CHECK-NEXT: arith.constant
    // CHECK-NEXT: memref.load
    gpu.func @kernel(%a: memref<4xf32>) kernel {
      %c0 = arith.constant 0 : index
      %v = memref.load %a[%c0] : memref<4xf32>
      memref.store %v, %a[%c0] : memref<4xf32>
      gpu.return
    }
    // CHECK-LABEL: gpu.func @device_function
    // CHECK-NOT: griddepcontrol
    // CHECK: gpu.return
    gpu.func @device_function() {
      gpu.return
    }
  }
}
