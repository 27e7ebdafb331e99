"""The standard MoE layer shapes of ../shared/DESIGN.md, shared by the
benchmark scripts: experts, top-k, hidden, expert ffn, activation, gated."""
SHAPES = {
    "ds-moe-128": (128, 1, 2048, 8192, "gelu", False),
    "mixtral-8x7b": (8, 2, 4096, 14336, "silu", True),
    "qwen3-30b-a3b": (128, 8, 2048, 768, "silu", True),
    "deepseek-v3": (256, 8, 7168, 2048, "silu", True),
    "olmoe-1b-7b": (64, 8, 2048, 1024, "silu", True),
}
