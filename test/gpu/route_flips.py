"""GPU machine, with hf_compare.py: the float32 forward of a DeepSeek-V3
checkpoint with chosen routing decisions flipped, to tell a bf16 run that
took the other side of a near-tie in the routing from a wrong one.

DeepSeek-V3's router (sigmoid scores plus a correction bias, the best
`topk_group` of `n_group` groups by the sum of their two best scores, then
the top k experts of those groups) is recomputed here from the router's
input, so that any token's expert set can be replaced; its weights are the
chosen experts' sigmoid scores, renormalised where `norm_topk_prob`, times
`routed_scaling_factor`. `flips()` lists the decisions whose float32
margin is under a bound (the last chosen group against the first left out;
the k-th expert against the (k+1)-th within the chosen groups), and
`forward()` runs the model with some of them taken the other way. Where the
transformers version's router does not return (indices, weights), or the
recomputed routing does not reproduce the unforced forward, `Unsupported`
says so (hf_compare.py then keeps its verdict)."""
import torch


class Unsupported(Exception):
    pass


def routers(model):
    """(name, module) of DeepSeek-V3's top-k routers."""
    if model.config.model_type != "deepseek_v3":
        return []
    return [(n, m) for n, m in model.named_modules()
            if type(m).__name__.endswith("TopkRouter")]


def route(cfg, mod, h, experts=None):
    """The router's (indices, weights) for hidden rows h ([T, hidden]) in
    float32; `experts` {token: [expert, ...]} replaces those tokens' sets."""
    s = torch.nn.functional.linear(h.float(), mod.weight.float()).sigmoid()
    bias = getattr(mod, "e_score_correction_bias", None)
    c = s + (bias.float() if bias is not None else 0)
    idx = choose(cfg, c)
    for t, e in (experts or {}).items():
        idx[t] = torch.tensor(e, device=idx.device, dtype=idx.dtype)
    w = s.gather(1, idx)
    if cfg.norm_topk_prob:
        w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
    return idx, w * cfg.routed_scaling_factor


def choose(cfg, c, groups=None):
    """Top-k experts of selection scores c [T, E] within the best groups
    (or the given group indices [T, topk_group])."""
    T, E = c.shape
    G = cfg.n_group
    if groups is None:
        gs = c.view(T, G, E // G).topk(2, dim=-1).values.sum(dim=-1)
        groups = gs.topk(cfg.topk_group, dim=-1, sorted=False).indices
    mask = torch.zeros(T, G, device=c.device).scatter_(1, groups, 1)
    mask = mask.unsqueeze(-1).expand(T, G, E // G).reshape(T, E).bool()
    return c.masked_fill(~mask, 0.0).topk(cfg.num_experts_per_tok, dim=-1,
                                           sorted=False).indices


def _force(model, experts):
    """Forward hooks replacing each router's (indices, weights) by the
    recomputed routing with `experts` {router name: {token: set}}."""
    cfg = model.config
    hooks = []
    for name, mod in routers(model):
        def hook(mod, args, output, name=name):
            outs = output if isinstance(output, tuple) else (output,)
            pos = [i for i, o in enumerate(outs)
                   if torch.is_tensor(o) and not o.is_floating_point()]
            if len(pos) != 1:
                raise Unsupported(f"{type(mod).__name__} returns no index tensor")
            i = pos[0]
            wpos = [j for j, o in enumerate(outs) if torch.is_tensor(o) and
                    o.is_floating_point() and o.shape == outs[i].shape]
            if len(wpos) != 1:
                raise Unsupported(f"{type(mod).__name__} returns no weights of "
                                  "the indices' shape")
            h = args[0].reshape(-1, mod.weight.shape[1])
            idx, w = route(cfg, mod, h, experts.get(name))
            new = list(outs)
            new[i] = idx.reshape(outs[i].shape).to(outs[i].dtype)
            new[wpos[0]] = w.reshape(outs[i].shape).to(outs[wpos[0]].dtype)
            return tuple(new) if isinstance(output, tuple) else new[0]
        hooks.append(mod.register_forward_hook(hook))
    return hooks


def forward(model, ids, experts):
    """Logits [T, vocab] of `model` (float32) on ids [1, T] with the routing
    recomputed and `experts` forced."""
    hooks = _force(model, experts)
    try:
        with torch.no_grad():
            return model(ids).logits[0].float()
    finally:
        for h in hooks:
            h.remove()


def flips(model, ids, bound):
    """The routing decisions of `model` on ids whose float32 margin is under
    `bound`, smallest first: (margin, router name, token, kind, the other
    side's expert set)."""
    cfg = model.config
    found = []
    hooks = []
    for name, mod in routers(model):
        def hook(mod, args, output, name=name):
            h = args[0].reshape(-1, mod.weight.shape[1]).float()
            s = torch.nn.functional.linear(h, mod.weight.float()).sigmoid()
            bias = getattr(mod, "e_score_correction_bias", None)
            c = s + (bias.float() if bias is not None else 0)
            T, E = c.shape
            G, k = cfg.n_group, cfg.num_experts_per_tok
            gs = c.view(T, G, E // G).topk(2, dim=-1).values.sum(dim=-1)
            order = gs.sort(dim=-1, descending=True).indices
            idx = choose(cfg, c)
            for t in range(T):
                if cfg.topk_group < G:
                    # The last chosen group against the first left out.
                    o = order[t]
                    m = (gs[t, o[cfg.topk_group - 1]] - gs[t, o[cfg.topk_group]]).item()
                    if m < bound:
                        g = torch.cat([o[:cfg.topk_group - 1], o[cfg.topk_group:cfg.topk_group + 1]])
                        alt = choose(cfg, c[t:t + 1], g.unsqueeze(0))[0]
                        found.append((m, name, t, "group", sorted(alt.tolist())))
                # The k-th expert against the (k+1)-th within the groups.
                mask = torch.zeros(E, dtype=torch.bool, device=c.device)
                for g in order[t, :cfg.topk_group].tolist():
                    mask[g * (E // G):(g + 1) * (E // G)] = True
                v, i = c[t].masked_fill(~mask, float("-inf")).sort(descending=True)
                if k < int(mask.sum()):
                    m = (v[k - 1] - v[k]).item()
                    if m < bound:
                        alt = i[:k].clone()
                        alt[k - 1] = i[k]
                        found.append((m, name, t, "expert", sorted(alt.tolist())))
            del idx
        hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(ids)
    finally:
        for h in hooks:
            h.remove()
    return sorted(found, key=lambda f: f[0])


def explain(model, ids, first, ours, scale, tol, bound=4e-3, most=6):
    """Whether logits `ours` (rows from `first` of the sequence ids) are
    within tol * scale of the float32 forward with one (or two) of the
    routing decisions under `bound` flipped. Returns (flip description or
    None, lines of the search)."""
    base = forward(model, ids, {})[first:first + ours.shape[0]].cpu()
    plain = model_logits(model, ids)[first:first + ours.shape[0]].cpu()
    if (base - plain).abs().max().item() > 1e-5 * scale:
        raise Unsupported("the recomputed routing does not reproduce the "
                          "model's own forward (%.2e of the scale)" %
                          ((base - plain).abs().max().item() / scale))
    cands = flips(model, ids, bound)[:most]
    lines = [f"routing decisions with a float32 margin under {bound:.0e}: {len(cands)}"]
    tries = [[c] for c in cands] + [[a, b] for n, a in enumerate(cands[:3])
                                   for b in cands[n + 1:3] if (a[1], a[2]) != (b[1], b[2])]
    for combo in tries:
        experts = {}
        for _, name, t, _, alt in combo:
            experts.setdefault(name, {})[t] = alt
        ref = forward(model, ids, experts)[first:first + ours.shape[0]].cpu()
        err = (ours - ref).abs().max().item() / scale
        what = "; ".join(f"{name} token {t} {kind} margin {m:.1e} -> experts {alt}"
                         for m, name, t, kind, alt in combo)
        lines.append(f"  {what}: ours {err:.2e} from that forward")
        if err <= tol:
            return what, lines
    return None, lines


def model_logits(model, ids):
    with torch.no_grad():
        return model(ids).logits[0].float()
