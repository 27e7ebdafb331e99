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
    # DeepSeek-V3's whole MoE layer: the routed experts of "deepseek-v3",
    # one shared expert, and its routing (ROUTING below).
    "deepseek-v3-layer": (256, 8, 7168, 2048, "silu", True, 2048, False),
}

# Routing other than softmax top-k with renormalisation: DeepSeek-V3's
# sigmoid scores, a bias [E] added for the selection only, 8 groups scored
# by their best two experts of which the best 4 are eligible, the k weights
# renormalised and scaled by 2.5.
ROUTING = {
    "deepseek-v3-layer": dict(sigmoid=True, bias=True, groups=(8, 4),
                              top2=True, scaling=2.5),
}


def shape(name):
    """(E, k, d, f, activation, gated, shared ffn or 0, shared coef)."""
    if name in SHAPES:
        return SHAPES[name] + (0, False)
    return SHARED_SHAPES[name]
