"""Runs on the GPU machine, under Nsight Compute: one compiled MoE layer
(make-compiled-layers.py's DIR/SHAPE-tTOKENS.so) on fresh random inputs,
twice (the first run loads the kernels), so that
    ncu --kernel-name regex:moe_ ... python3 profile_layer.py SHAPE TOKENS DIR
times each of the layer's kernels without the PyTorch baselines'.
Exits non-zero if the layer's output is off the f32 reference (2e-2)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
from gpu_moe_baselines import compiled_layer, rel_error  # noqa: E402

name, tokens, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
compiled = compiled_layer(d, name, tokens)
layer = compiled.layer
compiled()
out = compiled().clone()
torch.cuda.synchronize()
ref, _ = layer.reference(layer.route_f32)
err = rel_error(out, ref)
print(f"{name} T={tokens}: relative error {err:.2e}")
sys.exit(0 if err < 2e-2 else 1)
