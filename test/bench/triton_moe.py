"""Baseline (c) of gpu_moe_baselines.py: the fused-MoE form of vLLM and
SGLang (their Triton `fused_moe`), written here in Triton, tuned per point.

The algorithm is theirs, the code this project's (neither is installed on
the GPU machine; PyTorch and Triton are):
  1. align: the k experts of every token sorted by expert, each expert's
     pairs padded to a multiple of the block's rows (pair ids, one expert id
     per block of rows, the padded count) -- torch operations with no host
     synchronization, so the whole layer captures as a CUDA graph;
  2. one grouped GEMM kernel over all experts, launched twice: x [T, d]
     (each pair's row gathered from its token) times the experts' gate and
     up matrices side by side (w13 [E, 2f, d], K contiguous: the layout
     vLLM loads checkpoints into), bf16 out [T k, 2f]; then the activation
     [T k, f] (silu(gate) * up in one Triton kernel; torch's activation on a
     layer without gate); then the down matrices (w2 [E, d, f]) with each
     pair's routing weight multiplied in the epilogue, bf16 out [T k, d];
  3. the k rows of every token summed (vLLM's moe_sum: a torch sum).
The routing (router GEMM, softmax, top-k, renormalisation) is the same torch
code as the other two baselines'.

Tuning: vLLM ships block sizes tuned per GPU, shape and token count; here
every point times the same 18 configurations (block rows, columns, K,
grouping, warps, stages: CONFIGS, vLLM's two defaults among them) as CUDA
graphs, L2 cold, and keeps the fastest, which is then timed eager and as
a CUDA graph like the other baselines. The weights in vLLM's layout are a
copy made for the point and freed after it (not timed). Decoding steps
(several layers in one graph) are not timed with this baseline: their
copies of DeepSeek-V3's weights would not fit beside the originals.
"""
import torch
import triton
import triton.language as tl


@triton.jit(do_not_specialize=["rows_total", "pairs"])
def _expert_gemm(a_ptr, b_ptr, c_ptr, scale_ptr, pair_ptr, block_expert_ptr,
                 used_ptr, N, K, rows_total, pairs,
                 stride_am, stride_ak, stride_be, stride_bn, stride_bk,
                 stride_cm, stride_cn,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                 BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
                 PAIRS_PER_ROW: tl.constexpr, SCALE: tl.constexpr):
    """c[p] = a[p / PAIRS_PER_ROW] b[expert of p] (times scale[p]) for the
    pairs p of the aligned blocks; blocks of rows grouped GROUP_M at a time
    over the column blocks (the weight blocks of one expert stay in L2)."""
    pid = tl.program_id(0)
    row_blocks = tl.cdiv(rows_total, BLOCK_M)
    col_blocks = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * col_blocks
    first = (pid // per_group) * GROUP_M
    in_group = min(row_blocks - first, GROUP_M)
    bm = first + (pid % per_group) % in_group
    bn = (pid % per_group) // in_group
    if bm * BLOCK_M >= tl.load(used_ptr):
        return
    pair = tl.load(pair_ptr + bm * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    live = pair < pairs
    expert = tl.load(block_expert_ptr + bm).to(tl.int64)
    cols = (bn * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)) % N
    ks = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + (pair // PAIRS_PER_ROW)[:, None] * stride_am + ks[None, :] * stride_ak
    b_ptrs = b_ptr + expert * stride_be + cols[None, :] * stride_bn + ks[:, None] * stride_bk
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for step in range(0, tl.cdiv(K, BLOCK_K)):
        left = K - step * BLOCK_K
        a = tl.load(a_ptrs, mask=live[:, None] & (ks[None, :] < left), other=0.0)
        b = tl.load(b_ptrs, mask=ks[:, None] < left, other=0.0)
        acc += tl.dot(a, b)
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk
    if SCALE:
        acc = acc * tl.load(scale_ptr + pair, mask=live, other=0.0)[:, None]
    out_cols = bn * BLOCK_N + tl.arange(0, BLOCK_N)
    tl.store(c_ptr + pair[:, None] * stride_cm + out_cols[None, :] * stride_cn,
             acc.to(c_ptr.dtype.element_ty),
             mask=live[:, None] & (out_cols[None, :] < N))


@triton.jit
def _silu_and_mul(h_ptr, out_ptr, f, BLOCK: tl.constexpr):
    """out [R, f] = silu(h[:, :f]) * h[:, f:] (h [R, 2f]), f32 math."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    live = cols < f
    g = tl.load(h_ptr + row * 2 * f + cols, mask=live, other=0.0).to(tl.float32)
    u = tl.load(h_ptr + row * 2 * f + f + cols, mask=live, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * f + cols, (g * tl.sigmoid(g) * u).to(out_ptr.dtype.element_ty),
             mask=live)


# (BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages): vLLM's two
# defaults (no tuned file: 16-row blocks where tokens <= experts, else 64)
# first, then forms of the ones its tuning files hold for Hopper.
CONFIGS = [(16, 32, 64, 1, 4, 3), (64, 64, 32, 8, 4, 3),
           (16, 64, 128, 1, 4, 4), (16, 128, 128, 1, 4, 3), (16, 64, 256, 1, 4, 3),
           (16, 256, 64, 1, 4, 4), (32, 64, 128, 1, 4, 4), (32, 128, 64, 1, 4, 4),
           (64, 128, 64, 1, 4, 4), (64, 128, 64, 16, 4, 4), (64, 256, 64, 1, 8, 3),
           (64, 256, 64, 16, 8, 4), (128, 128, 64, 1, 8, 4), (128, 128, 64, 16, 8, 4),
           (128, 128, 128, 1, 8, 3), (128, 256, 64, 1, 8, 3), (128, 256, 64, 16, 8, 3),
           (256, 128, 64, 1, 8, 3)]


class FusedMoE:
    """The layer's MoE in vLLM's fused form; call(config) runs it."""

    def __init__(self, layer):
        self.layer = layer
        E, d, f = layer.E, layer.d, layer.f
        mats = [layer.w_gate, layer.w_up] if layer.gated else [layer.w_up]
        self.w13 = torch.empty(E, len(mats) * f, d, dtype=layer.w_up.dtype,
                               device=layer.w_up.device)  # [E, 2f or f, d]
        for i, m in enumerate(mats):
            self.w13[:, i * f:(i + 1) * f].copy_(m.transpose(1, 2))
        self.w2 = layer.w_down.transpose(1, 2).contiguous()  # [E, d, f]
        self.config = None

    def align(self, ids, block_m):
        """(pair ids [L] (T k where padding), expert of every block [L /
        block_m], padded count [1], L) for ids [T, k]."""
        E = self.layer.E
        flat = ids.reshape(-1)
        n = flat.numel()
        dev = flat.device
        counts = torch.zeros(E, dtype=torch.int64, device=dev)
        counts.scatter_add_(0, flat, torch.ones_like(flat))
        padded = (counts + block_m - 1) // block_m * block_m
        ends = torch.cumsum(padded, 0)
        order = torch.argsort(flat, stable=True)
        expert = flat[order]
        first = torch.cumsum(counts, 0) - counts
        where = (ends - padded)[expert] + torch.arange(n, device=dev) - first[expert]
        length = n + E * (block_m - 1)
        pair_ids = torch.full((length,), n, dtype=torch.int32, device=dev)
        pair_ids[where] = order.to(torch.int32)
        starts = torch.arange(0, length, block_m, device=dev)
        block_expert = torch.searchsorted(ends, starts, right=True).clamp_(max=E - 1).to(torch.int32)
        return pair_ids, block_expert, ends[-1:].to(torch.int32), length

    def gemm(self, a, b, c, scale, aligned, pairs_per_row, config):
        bm, bn, bk, gm, warps, stages = config
        pair_ids, block_expert, used, length = aligned
        rows_total = length
        tokens = self.layer.x.shape[0]
        if tokens < bm:  # vLLM: at most T k experts, so T k blocks
            rows_total = min(length, tokens * self.layer.k * bm)
        N, K = b.shape[1], b.shape[2]
        grid = (triton.cdiv(rows_total, bm) * triton.cdiv(N, bn),)
        _expert_gemm[grid](a, b, c, scale if scale is not None else c, pair_ids,
                           block_expert, used, N, K, rows_total, tokens * self.layer.k,
                           a.stride(0), a.stride(1), b.stride(0), b.stride(1), b.stride(2),
                           c.stride(0), c.stride(1),
                           BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=gm,
                           PAIRS_PER_ROW=pairs_per_row, SCALE=scale is not None,
                           num_warps=warps, num_stages=stages)

    def __call__(self, config=None):
        config = config or self.config
        layer = self.layer
        x, k, f = layer.x, layer.k, layer.f
        T = x.shape[0]
        w, ids = layer.route(x)
        aligned = self.align(ids, config[0])
        h = torch.empty(T * k, self.w13.shape[1], dtype=x.dtype, device=x.device)
        self.gemm(x, self.w13, h, None, aligned, k, config)
        if layer.gated and layer.act == "silu":
            a = torch.empty(T * k, f, dtype=x.dtype, device=x.device)
            _silu_and_mul[(T * k, triton.cdiv(f, 1024))](h, a, f, BLOCK=1024)
        else:
            act = torch.nn.functional.gelu if layer.act == "gelu" else torch.nn.functional.silu
            a = act(h[:, :f]) * h[:, f:] if layer.gated else act(h)
        y = torch.empty(T * k, layer.d, dtype=x.dtype, device=x.device)
        self.gemm(a, self.w2, y, w.reshape(-1).float().contiguous(), aligned, 1, config)
        out = y.view(T, k, layer.d).sum(1)
        if layer.shared:
            out = (out.float() + layer.shared_out(x)).to(x.dtype)
        return out

    def tune(self, time_ms, graphed):
        """Times every configuration as a CUDA graph (`graphed(fn)`, timed
        by `time_ms(fn, warmup, repeat)`: eagerly, the launches of the
        routing's torch operations would hide the kernels at few tokens),
        keeps the fastest; returns {config: ms} (a configuration that does
        not compile, e.g. out of shared memory, is left out)."""
        times = {}
        for config in CONFIGS:
            try:
                times[config] = time_ms(graphed(lambda c=config: self(c)), warmup=2, repeat=7)
            except Exception as e:  # noqa: BLE001 (Triton's compile errors)
                torch.cuda.synchronize()
                print("    fused config %s left out: %s" % (config, str(e).splitlines()[0][:80]),
                      flush=True)
        if not times:
            raise RuntimeError("no fused-MoE configuration compiled")
        self.config = min(times, key=times.get)
        return times
