// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-gpu-helper-stubs=strip -o /dev/null

// Only a bufferized stub (allocations and their return) is dropped.
// expected-error @below {{GPU helper has a body that is not a bufferized stub}}
func.func private @helper(%x: memref<4xf32>) -> memref<4xf32> attributes {moe.gpu_dense = "add"} {
  return %x : memref<4xf32>
}

// -----

// expected-error @below {{GPU helper has a body that is not a bufferized stub}}
func.func private @layer(%x: memref<4xf32>) -> memref<4xf32> attributes {moe.gpu_layer = {}} {
  %a = memref.alloc() : memref<4xf32>
  memref.copy %x, %a : memref<4xf32> to memref<4xf32>
  return %a : memref<4xf32>
}
