// Every kernel opens with the grid dependency wait (the next grid launches
// as its blocks exit); device functions that are not kernels are left
// alone, and a second run adds nothing. With early=true, a kernel also lets
// the next grid launch right after the wait when it has more than one wave
// of blocks (more than the SMs hold at 2048 threads each).
// RUN: moe-opt %s -moe-gpu-programmatic-launch=early=true -moe-gpu-programmatic-launch=early=true | FileCheck %s
// RUN: moe-opt %s -moe-gpu-programmatic-launch -moe-gpu-programmatic-launch | FileCheck %s --check-prefix=LATE
// LATE-LABEL: gpu.func @kernel
// LATE-NEXT: nvvm.griddepcontrol wait
// LATE-NOT: griddepcontrol
// LATE: gpu.return

module attributes {gpu.container_module} {
  gpu.module @k {
    // CHECK-LABEL: gpu.func @kernel
    // CHECK-NEXT: nvvm.griddepcontrol wait
    // CHECK-NEXT: %[[X:.*]] = gpu.grid_dim x
    // CHECK-NEXT: %[[Y:.*]] = gpu.grid_dim y
    // CHECK-NEXT: %[[XY:.*]] = arith.muli %[[X]], %[[Y]]
    // CHECK-NEXT: %[[Z:.*]] = gpu.grid_dim z
    // CHECK-NEXT: %[[N:.*]] = arith.muli %[[XY]], %[[Z]]
    // CHECK-NEXT: %[[TX:.*]] = gpu.block_dim x
    // CHECK-NEXT: %[[TY:.*]] = gpu.block_dim y
    // CHECK-NEXT: %[[TXY:.*]] = arith.muli %[[TX]], %[[TY]]
    // CHECK-NEXT: %[[TZ:.*]] = gpu.block_dim z
    // CHECK-NEXT: %[[T:.*]] = arith.muli %[[TXY]], %[[TZ]]
    // CHECK-NEXT: %[[SMS:.*]] = nvvm.read.ptx.sreg.nsmid
    // CHECK-NEXT: %[[S:.*]] = arith.index_castui %[[SMS]]
    // CHECK-NEXT: %[[MAX:.*]] = arith.constant 2048 : index
    // CHECK-NEXT: %[[PER:.*]] = arith.divui %[[MAX]], %[[T]]
    // CHECK-NEXT: %[[LIMIT:.*]] = arith.muli %[[S]], %[[PER]]
    // CHECK-NEXT: %[[MANY:.*]] = arith.cmpi ugt, %[[N]], %[[LIMIT]]
    // CHECK-NEXT: scf.if %[[MANY]] {
    // CHECK-NEXT: nvvm.griddepcontrol launch_dependents
    // CHECK-NEXT: }
    // CHECK-NEXT: arith.constant 0
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
