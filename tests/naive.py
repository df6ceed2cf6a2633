"""A deliberately naive, loop-based re-statement of docs/paper-model.md section 2, used only by the
tests as an independent formula: per head, per step, per slot, with the cell law
evaluated element by element on the decayed deviation (no polynomial expansion)."""
import math

import numpy as np

# docs/paper-model.md: the 10 coefficients C_ij, i = 0..3 outer, j = 0..3-i inner
C = (0.17393044, 0.15653739, 0.14088365, 0.12679529, 5.51975209, 4.96777688, 4.4709992,
     -1.44776001, -1.30298401, 46.05483778)


def law(y, kind):
    if kind == "linear":
        return 19.3 * y
    total, idx = 0.0, 0
    for i in range(4):
        for j in range(4 - i):
            total = total + C[idx] * y ** i * 0.9 ** j
            idx += 1
    return total


def qz(x, lo, hi, n):
    step = (hi - lo) / (n - 1)
    return step * np.round(x / step)


def naive_head(q, k, v, *, kind="cubic", M=1024, a=64, period_ns=800.0, tau_ns=5e6,
               sc=None, q_levels=16, kv_levels=8, out_levels=32, dev=None):
    """q, k, v [T, d] -> (S [T, M], phi [T, M], sub [T, M//a, d], out [T, d]) for one head.

    dev: device non-idealities given as arrays (all optional): 'write_k', 'write_v' [T, d]
    volts added to token t's stored values; 'gain_k', 'gain_v' [M, d] current factor of each
    cell; 'inv_tau_k', 'inv_tau_v' [M, d] tau / tau of each cell; 'read_s' [T, M] and
    'read_a' [T, M//a, d] factors of each read."""
    dev = dev or {}
    one = lambda name, *idx: dev[name][idx] if name in dev else 1.0  # noqa: E731
    sc = sc or {}
    aq, bq = sc.get("a_q", 1.0), sc.get("b_q", 0.0)
    ak, bk = sc.get("a_k", 1.0), sc.get("b_k", 0.45)
    av, bv = sc.get("a_v", 1.0), sc.get("b_v", 0.45)
    ao, bo = sc.get("a_out", 1.0), sc.get("b_out", 0.0)
    T, d = q.shape
    qq = qz(np.clip(aq * q + bq, 0, 1), 0, 1, q_levels)
    kk = qz(np.clip(ak * k + bk, 0, 0.9), 0, 0.9, kv_levels) - 0.45
    vv = qz(np.clip(av * v + bv, 0, 0.9), 0, 0.9, kv_levels) - 0.45
    kk = kk + dev.get("write_k", 0.0)
    vv = vv + dev.get("write_v", 0.0)
    S = np.zeros((T, M)); phi = np.zeros((T, M)); sub = np.zeros((T, M // a, d)); out = np.zeros((T, d))
    for t in range(T):
        acc = np.zeros((M // a, d))
        for u in range(max(0, t - M + 1), t + 1):
            slot = u % M
            dec = math.exp(-(t - u) * period_ns / tau_ns)
            s = sum(qq[t, i] * law(kk[u, i] * dec ** one("inv_tau_k", slot, i), kind) * one("gain_k", slot, i)
                    for i in range(d))
            s *= one("read_s", t, slot)
            S[t, slot] = s
            p = min(max(s / 80.0, 0.0), 1.0)
            phi[t, slot] = p
            for i in range(d):
                acc[slot // a, i] += p * law(vv[u, i] * dec ** one("inv_tau_v", slot, i), kind) * one("gain_v", slot, i)
        if "read_a" in dev:
            acc = acc * dev["read_a"][t]
        sub[t] = qz(np.clip(acc / 40.0, -1, 1), -1, 1, out_levels)
        out[t] = ao * sub[t].sum(axis=0) + bo
    return S, phi, sub, out


def naive_gpt_logits(p, ids, *, layers, heads, d_head, attention="cubic", period_ns=260.0, tau_ns=5e6, M=256, a=64):
    """Logits [T, vocab] of the chip GPT (gcsim/chipmodel/model.py's architecture: pre-norm
    blocks, tanh GELU, LM head tied to the embedding) for one window ids [T] from an empty
    state, token by token and head by head in float64, with the attention of naive_head
    ('softmax': causal softmax, scale 1/sqrt(d)). p: the parameter dict, scalers [L, H]."""
    P = {k: np.asarray(v, np.float64) for k, v in p.items()}
    T, C = len(ids), heads * d_head

    def ln(x, w, b):
        mu = sum(x) / len(x)
        var = sum((xi - mu) ** 2 for xi in x) / len(x)
        return np.array([(xi - mu) / math.sqrt(var + 1e-5) for xi in x]) * w + b

    def gelu(x):
        return np.array([0.5 * xi * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (xi + 0.044715 * xi ** 3))) for xi in x])

    xs = [P["wte"][ids[t]] + P["wpe"][t] for t in range(T)]
    for l in range(layers):
        qkv = [ln(x, P[f"h{l}.ln1_w"], P[f"h{l}.ln1_b"]) @ P[f"h{l}.w_qkv"] for x in xs]
        att = np.zeros((T, C))
        for h in range(heads):
            cols = [slice(j * C + h * d_head, j * C + (h + 1) * d_head) for j in range(3)]
            q, k, v = (np.array([r[c] for r in qkv]) for c in cols)
            if attention == "softmax":
                for t in range(T):
                    s = np.array([q[t] @ k[u] / math.sqrt(d_head) for u in range(t + 1)])
                    w = np.exp(s - s.max())
                    att[t, h * d_head:(h + 1) * d_head] = (w / w.sum()) @ v[:t + 1]
            else:
                sc = {key: float(P[key][l, h]) for key in ("a_q", "b_q", "a_k", "b_k", "a_v", "b_v", "a_out", "b_out")}
                att[:, h * d_head:(h + 1) * d_head] = naive_head(q, k, v, kind=attention, M=M, a=a, period_ns=period_ns,
                                                                 tau_ns=tau_ns, sc=sc)[3]
        xs = [x + att[t] @ P[f"h{l}.w_o"] for t, x in enumerate(xs)]
        xs = [x + gelu(ln(x, P[f"h{l}.ln2_w"], P[f"h{l}.ln2_b"]) @ P[f"h{l}.w_fc"]) @ P[f"h{l}.w_mlp"] for x in xs]
    return np.array([ln(x, P["lnf_w"], P["lnf_b"]) @ P["wte"].T for x in xs])
