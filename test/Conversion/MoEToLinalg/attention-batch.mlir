// RUN: moe-opt %s --convert-moe-to-linalg | FileCheck %s

// The sequences of a batched attention step are one scf.for over the
// batch, the caches and the output carried through it: the lowered code
// (and the time to compile it) does not grow with the batch. Each
// iteration reads its sequence's position, its rows (offset by the loop's
// index) and its cache rows, and puts them back at the same offsets.

// CHECK-LABEL: func.func @batched
// CHECK: %[[N:.*]] = arith.constant 3 : index
// CHECK: %[[R:.*]]:3 = scf.for %[[S:.*]] = %{{.*}} to %[[N]] step %{{.*}} iter_args(%[[K:.*]] = %arg5, %[[V:.*]] = %arg6, %[[O:.*]] = %{{.*}}) -> (tensor<24x2x4xbf16>, tensor<24x2x4xbf16>, tensor<3x16xbf16>)
// CHECK: %[[CR:.*]] = arith.muli %[[S]], %c8 : index
// CHECK: tensor.extract %arg7[%[[S]]] : tensor<3xi32>
// CHECK: tensor.extract_slice %[[K]][%[[CR]], 0, 0] [8, 2, 4]
// CHECK: math.exp
// CHECK: math.exp
// CHECK-NOT: math.exp
// CHECK: tensor.insert_slice %{{.*}} into %[[K]][%[[CR]], 0, 0] [8, 2, 4]
// CHECK: tensor.insert_slice %{{.*}} into %[[V]][%[[CR]], 0, 0] [8, 2, 4]
// CHECK: tensor.insert_slice %{{.*}} into %[[O]][%[[S]], 0] [1, 16]
// CHECK: scf.yield
// CHECK-NOT: math.exp
// CHECK: return %{{.*}}, %[[R]]#0, %[[R]]#1
func.func @batched(%x: tensor<3x16xbf16>, %wq: tensor<16x16xbf16>, %wk: tensor<16x8xbf16>, %wv: tensor<16x8xbf16>, %wo: tensor<16x16xbf16>, %kc: tensor<24x2x4xbf16>, %vc: tensor<24x2x4xbf16>, %pos: tensor<3xi32>) -> (tensor<3x16xbf16>, tensor<24x2x4xbf16>, tensor<24x2x4xbf16>) {
  %y, %k, %v = moe.attention %x : tensor<3x16xbf16> q(%wq : tensor<16x16xbf16>) k(%wk : tensor<16x8xbf16>) v(%wv : tensor<16x8xbf16>) o(%wo : tensor<16x16xbf16>) cache(%kc : tensor<24x2x4xbf16>, %vc : tensor<24x2x4xbf16>) position(%pos : tensor<3xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64, rope_theta = 1.0e6 : f64} -> tensor<3x16xbf16>, tensor<24x2x4xbf16>, tensor<24x2x4xbf16>
  return %y, %k, %v : tensor<3x16xbf16>, tensor<24x2x4xbf16>, tensor<24x2x4xbf16>
}

// One sequence: no loop, the caches whole.
// CHECK-LABEL: func.func @single
// CHECK-NOT: scf.for
// CHECK: tensor.extract %arg7[%{{.*}}] : tensor<1xi32>
// CHECK: math.exp
// CHECK: math.exp
// CHECK-NOT: math.exp
// CHECK-NOT: scf.for
// CHECK: return
func.func @single(%x: tensor<2x16xbf16>, %wq: tensor<16x16xbf16>, %wk: tensor<16x8xbf16>, %wv: tensor<16x8xbf16>, %wo: tensor<16x16xbf16>, %kc: tensor<8x2x4xbf16>, %vc: tensor<8x2x4xbf16>, %pos: tensor<1xi32>) -> (tensor<2x16xbf16>, tensor<8x2x4xbf16>, tensor<8x2x4xbf16>) {
  %y, %k, %v = moe.attention %x : tensor<2x16xbf16> q(%wq : tensor<16x16xbf16>) k(%wk : tensor<16x8xbf16>) v(%wv : tensor<16x8xbf16>) o(%wo : tensor<16x16xbf16>) cache(%kc : tensor<8x2x4xbf16>, %vc : tensor<8x2x4xbf16>) position(%pos : tensor<1xi32>) {num_heads = 4 : i64, num_kv_heads = 2 : i64, rope_theta = 1.0e6 : f64} -> tensor<2x16xbf16>, tensor<8x2x4xbf16>, tensor<8x2x4xbf16>
  return %y, %k, %v : tensor<2x16xbf16>, tensor<8x2x4xbf16>, tensor<8x2x4xbf16>
}

// Latent attention of 2 sequences of 3 rows.
// CHECK-LABEL: func.func @mla
// CHECK: scf.for %[[S:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %arg8, %{{.*}} = %arg9, %{{.*}} = %{{.*}}) -> (tensor<16x2x6xbf16>, tensor<16x2x4xbf16>, tensor<6x8xbf16>)
// CHECK: tensor.extract %arg10[%[[S]]] : tensor<2xi32>
// CHECK: math.exp
// CHECK: math.exp
// CHECK-NOT: math.exp
// CHECK: scf.yield
// CHECK-NOT: math.exp
// CHECK: return
func.func @mla(%x: tensor<6x16xbf16>, %qa: tensor<16x12xbf16>, %qan: tensor<12xbf16>, %qb: tensor<12x12xbf16>, %kva: tensor<16x10xbf16>, %kvan: tensor<8xbf16>, %kvb: tensor<8x16xbf16>, %wo: tensor<8x16xbf16>, %kc: tensor<16x2x6xbf16>, %vc: tensor<16x2x4xbf16>, %pos: tensor<2xi32>) -> (tensor<6x16xbf16>, tensor<16x2x6xbf16>, tensor<16x2x4xbf16>) {
  %y, %k, %v = moe.mla_attention %x : tensor<6x16xbf16> q_a(%qa : tensor<16x12xbf16>) q_a_norm(%qan : tensor<12xbf16>) q_b(%qb : tensor<12x12xbf16>) kv_a(%kva : tensor<16x10xbf16>) kv_a_norm(%kvan : tensor<8xbf16>) kv_b(%kvb : tensor<8x16xbf16>) o(%wo : tensor<8x16xbf16>) cache(%kc : tensor<16x2x6xbf16>, %vc : tensor<16x2x4xbf16>) position(%pos : tensor<2xi32>) {num_heads = 2 : i64, nope_dim = 4 : i64, rope_dim = 2 : i64, v_dim = 4 : i64, interleaved} -> tensor<6x16xbf16>, tensor<16x2x6xbf16>, tensor<16x2x4xbf16>
  return %y, %k, %v : tensor<6x16xbf16>, tensor<16x2x6xbf16>, tensor<16x2x4xbf16>
}

// Cross attention of 2 sequences over their encoder memories.
// CHECK-LABEL: func.func @cross
// CHECK: scf.for %[[S:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %{{.*}}) -> (tensor<2x32xbf16>)
// CHECK: tensor.extract %arg5[%[[S]]] : tensor<2xi32>
// CHECK: tensor.extract_slice %arg3[%{{.*}}, 0, 0] [8, 4, 8]
// CHECK: math.exp
// CHECK: math.exp
// CHECK-NOT: math.exp
// CHECK: scf.yield
// CHECK-NOT: math.exp
// CHECK: return
func.func @cross(%x: tensor<2x32xbf16>, %wq: tensor<32x32xbf16>, %wo: tensor<32x32xbf16>, %k: tensor<16x4x8xbf16>, %v: tensor<16x4x8xbf16>, %len: tensor<2xi32>) -> tensor<2x32xbf16> {
  %y = moe.cross_attention %x : tensor<2x32xbf16> q(%wq : tensor<32x32xbf16>) o(%wo : tensor<32x32xbf16>) memory(%k : tensor<16x4x8xbf16>, %v : tensor<16x4x8xbf16>) length(%len : tensor<2xi32>) {num_heads = 4 : i64} -> tensor<2x32xbf16>
  return %y : tensor<2x32xbf16>
}
