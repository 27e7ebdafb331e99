"""Pieces the plain-Python references share: random parameters, the
rotary embedding and causal attention of one head with transformers'
rounding points, and greedy generation that writes the expected tokens and
logits."""
import math
import os
import random
import sys

from safetensors_util import f32, write


class NearTie(Exception):
    """The reference's greedy choice at some step was within the tie gap of
    the runner-up: the compiled model's (equally valid) rounding could pick
    the other token there, so this random model cannot test generation."""


def seed_of(arg, retry):
    """The model's seed: `arg` (a command-line seed) plus `retry`, or a
    fresh random one."""
    return int(arg) + retry if arg is not None else random.randrange(1 << 30)


def tie_gap(bf16):
    """The lead the reference's greedy token needs over the runner-up (as a
    fraction of the logits' scale): the bf16 comparison tolerance (2e-2)
    for bf16 models, whose logits the compiled model may round differently
    within it; 1e-3 for f32 ones."""
    return 2e-2 if bf16 else 1e-3


def retry_near_ties(main, tries=100):
    """Calls main(retry) for retry = 0, 1, ... while it raises NearTie (a
    fresh model each time), at most `tries` times."""
    for retry in range(tries):
        try:
            return main(retry)
        except NearTie as e:
            print(f"near tie ({e}); another model", file=sys.stderr)
    sys.exit(f"{tries} random models in a row had near ties")


def attend(q, key, value, last, dv, scale, elt):
    """One query head `q` over cache rows 0..last: scores (q k, f32
    accumulation) rounded to `elt`, times `scale` rounded; softmax in f32,
    rounded; p v rounded. `key(j, d)` and `value(j, d)` read row j."""
    scores = []
    for j in range(last + 1):
        acc = 0.0
        for d in range(len(q)):
            acc = f32(acc + f32(q[d] * key(j, d)))
        scores.append(elt(f32(elt(acc) * scale)))
    m = max(scores)
    es = [f32(math.exp(f32(s - m))) for s in scores]
    total = 0.0
    for e in es:
        total = f32(total + e)
    p = [elt(f32(e / total)) for e in es]
    res = []
    for d in range(dv):
        acc = 0.0
        for j in range(last + 1):
            acc = f32(acc + f32(p[j] * value(j, d)))
        res.append(elt(acc))
    return res


def attend_cached(q, k, v, cache, heads, kv_heads, hd, p, elt):
    """Appends this position's keys `k` and values `v` [kv_heads*hd] to
    `cache` (keys, values), then attends every query head of `q` [heads*hd]
    (key/value head h // (heads // kv_heads)) to rows 0..p; returns the heads'
    outputs side by side."""
    keys, values = cache
    keys.append(k)
    values.append(v)
    out = []
    scale = f32(1.0 / math.sqrt(hd))
    for h in range(heads):
        kvh = h // (heads // kv_heads)
        out += attend(q[h * hd:(h + 1) * hd],
                      lambda j, d: keys[j][kvh * hd + d],
                      lambda j, d: values[j][kvh * hd + d], p, hd, scale, elt)
    return out


def greedy_generate(step, prompt, new, vocab, out, tie_gap=0.0):
    """Runs the prompt through `step(token, position)` (which returns the
    logits), then `new` greedy tokens (ties to the lower id); writes
    OUT/expected.txt ("generated: ...") and OUT/expected-logits.safetensors
    (the logits each token was drawn from, f32). Raises NearTie where the
    best logit leads the runner-up by less than `tie_gap` times the largest
    logit magnitude (at least 1)."""
    tokens = list(prompt)
    generated, drawn = [], []
    logits = None
    for p, t in enumerate(prompt):
        logits = step(t, p)
    for i in range(new):
        drawn += logits
        nxt = max(range(vocab), key=lambda v: (logits[v], -v))
        runner_up = max(logits[v] for v in range(vocab) if v != nxt)
        scale = max(1.0, max(abs(x) for x in logits))
        if logits[nxt] - runner_up < tie_gap * scale:
            raise NearTie(f"token {i}: {logits[nxt]:.5g} against {runner_up:.5g}")
        generated.append(nxt)
        tokens.append(nxt)
        if i + 1 < new:
            logits = step(nxt, len(tokens) - 1)
    with open(os.path.join(out, "expected.txt"), "w") as f:
        f.write("generated: " + ",".join(map(str, generated)) + "\n")
    write(os.path.join(out, "expected-logits.safetensors"),
          {"logits": ("F32", [new, vocab], drawn)})


def param_maker(W, rnd, elt):
    """param(name, shape, scale=0.2, mean=0.0) adds Gaussian values rounded
    to `elt` to W[name] = (shape, values)."""
    def param(name, shape, scale=0.2, mean=0.0):
        n = 1
        for d in shape:
            n *= d
        W[name] = (shape, [elt(mean + rnd.gauss(0, scale)) for _ in range(n)])
    return param


def yarn(dim, base, factor, original, beta_fast=32.0, beta_slow=1.0,
         mscale=0.0, mscale_all_dim=0.0):
    """YaRN's scaled RoPE for `dim` rotated dimensions: the inverse
    frequency of each pair (f32), the factor on cos and sin, and the
    softmax mscale (DeepSeek multiplies its softmax scale by its square).
    Frequencies blend from extrapolated (pairs that rotate fast) to
    interpolated (divided by `factor`) over a linear ramp between the
    correction dimensions of beta_fast and beta_slow rotations."""
    def get_mscale(scale, m=1.0):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    def correction(rotations):
        return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(correction(beta_fast)), 0)
    high = min(math.ceil(correction(beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    inv = []
    for j in range(dim // 2):
        pos_freq = f32(f32(base) ** f32(f32(2.0 * j) / dim))
        ramp = min(max(f32(f32(j - low) / f32(high - low)), 0.0), 1.0)
        extra = f32(1.0 - ramp)
        inter = f32(1.0 / f32(factor * pos_freq))
        inv.append(f32(f32(inter * f32(1.0 - extra)) + f32(f32(1.0 / pos_freq) * extra)))
    if mscale and mscale_all_dim:
        attention = get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)
    else:
        attention = get_mscale(factor)
    softmax = get_mscale(factor, mscale_all_dim) if mscale_all_dim else 1.0
    return inv, attention, softmax


def rope(vec, p, theta, interleaved, elt, inv_freq=None, attention=1.0):
    """The rotate_half rotary embedding of `vec` (one head's rotary part) at
    position p: cos and sin rounded to `elt`, every product and sum rounded.
    `interleaved` pairs (2j, 2j+1): de-interleaved first, as transformers'
    apply_rotary_pos_emb_interleave does. Scaled RoPE gives its own
    `inv_freq` per pair and multiplies cos and sin by `attention` (f32)
    before rounding."""
    r = len(vec)
    half = r // 2
    if interleaved:
        vec = [vec[2 * i] for i in range(half)] + [vec[2 * i + 1] for i in range(half)]
    res = []
    for i in range(r):
        j = i % half
        if inv_freq is None:
            inv = f32(1.0 / f32(theta ** f32(f32(2.0 * j) / r)))
        else:
            inv = inv_freq[j]
        ang = f32(float(p) * inv)
        c, s = f32(math.cos(ang)), f32(math.sin(ang))
        if attention != 1.0:
            c, s = f32(c * f32(attention)), f32(s * f32(attention))
        c, s = elt(c), elt(s)
        other = vec[i + half if i < half else i - half]
        rot = -other if i < half else other
        res.append(elt(f32(elt(f32(vec[i] * c)) + elt(f32(rot * s)))))
    return res


def rms_norm(x, g, eps, elt):
    """RMSNorm of `x` with weight `g` as transformers rounds it: the mean
    square in f32 (in order), x * rsqrt rounded to `elt`, times g rounded."""
    ss = 0.0
    for v in x:
        ss = f32(ss + f32(v * v))
    inv = f32(1.0 / math.sqrt(f32(f32(ss * f32(1.0 / len(x))) + f32(eps))))
    return [elt(f32(g[i] * elt(f32(x[i] * inv)))) for i in range(len(x))]


def linear_rows(m, x, rows, in_n, elt, round_out=True):
    """x [in] times the rows `rows` of an [out, in] weight `m` (flat), f32
    accumulation in order; each result rounded to `elt` (or left in f32)."""
    y = []
    for o in rows:
        acc = 0.0
        for i in range(in_n):
            acc = f32(acc + f32(x[i] * m[o * in_n + i]))
        y.append(elt(acc) if round_out else acc)
    return y


def matmul(a, w, rows, inner, cols, elt):
    """a [rows, inner] times w [inner, cols] (both flat, row-major), f32
    accumulation in order, each result rounded to `elt`."""
    res = []
    for r in range(rows):
        for c in range(cols):
            acc = 0.0
            for i in range(inner):
                acc = f32(acc + f32(a[r * inner + i] * w[i * cols + c]))
            res.append(elt(acc))
    return res
