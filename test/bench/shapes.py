"""The standard MoE layer shapes of ../shared/DESIGN.md, shared by the
benchmark scripts: experts, top-k, hidden, expert ffn, activation, gated."""
SHAPES = {
    "ds-moe-128": (128, 1, 2048, 8192, "gelu", False),
    "mixtral-8x7b": (8, 2, 4096, 14336, "silu", True),
    "qwen3-30b-a3b": (128, 8, 2048, 768, "silu", True),
    "deepseek-v3": (256, 8, 7168, 2048, "silu", True),
    "olmoe-1b-7b": (64, 8, 2048, 1024, "silu", True),
}

# Layers with shared experts (outside DESIGN.md's five; measured apart):
# the routed shape as above, then the shared FFN's width and whether its
# output is scaled by sigmoid(x shared_coef) (Qwen2-MoE's shared-expert
# gate). Qwen2-57B-A14B: 64 experts, top-8, hidden 3584, expert ffn 2560,
# one shared expert of 20480 with the gate; DeepSeek-V2-Lite: 64 experts,
# top-6, hidden 2048, expert ffn 1408, two shared experts (2816), no gate.
SHARED_SHAPES = {
    "qwen2-57b-a14b": (64, 8, 3584, 2560, "silu", True, 20480, True),
    "deepseek-v2-lite": (64, 6, 2048, 1408, "silu", True, 2816, False),
}


def shape(name):
    """(E, k, d, f, activation, gated, shared ffn or 0, shared coef)."""
    if name in SHAPES:
        return SHAPES[name] + (0, False)
    return SHARED_SHAPES[name]
