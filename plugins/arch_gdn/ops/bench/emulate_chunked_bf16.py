# Emulates the chunked CUDA kernels' arithmetic (rule_chunked_phases.cuh: bf16 operands at the same points, fp32
# accumulation, the blocked UT inverse, u rounded to bf16 as in the split path) against the recurrence in fp64 for one
# head (dk = dv = 128), with the gate ranges of gdn_checks.h; prints the errors behind the tests' tolerance.
# Usage: python emulate_chunked_bf16.py [tokens] [seed]   (needs torch)
import torch, math, sys
torch.manual_seed(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
L = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
D = 128; C = 64
bf = lambda x: x.to(torch.bfloat16).to(torch.float32)
q = torch.randn(L, D); q /= q.norm(dim=1, keepdim=True)
k = torch.randn(L, D); k /= k.norm(dim=1, keepdim=True)
v = torch.rand(L, D) * 4 - 2
A = torch.empty(1).uniform_(0.02, 16).item(); dt = torch.empty(1).uniform_(-7, -2).item()
x = torch.randn(L) * 1.5 + dt
g = -A * torch.nn.functional.softplus(x)
beta = torch.sigmoid(torch.randn(L) * 2)
S0 = torch.randn(D, D) * 0.5  # [dk, dv]
scale = D ** -0.5
# reference recurrence (fp64)
S = S0.double().clone(); oref = torch.zeros(L, D, dtype=torch.float64)
for t in range(L):
    S *= math.exp(g[t].item())
    kv = S.T @ k[t].double()
    d = (v[t].double() - kv) * beta[t].item()
    S += torch.outer(k[t].double(), d)
    oref[t] = S.T @ q[t].double() * scale
# emulated kernel
H = S0.clone(); o = torch.zeros(L, D)
for c0 in range(0, L, C):
    n = min(C, L - c0)
    gg = torch.zeros(C); gg[:n] = g[c0:c0+n]; bb = torch.zeros(C); bb[:n] = beta[c0:c0+n]
    gc = torch.cumsum(gg, 0); glast = gc[n-1]
    Q = torch.zeros(C, D); K = torch.zeros(C, D); V = torch.zeros(C, D)
    Q[:n] = q[c0:c0+n]; K[:n] = k[c0:c0+n]; V[:n] = v[c0:c0+n]
    e = torch.exp(gc)
    Qb, Kb = bf(Q), bf(K)
    QD = bf(Q * e[:, None] * scale); KBG = bf(K * bb[:, None] * e[:, None]); KD = bf(K * torch.exp(glast - gc)[:, None])
    VB = bf(V * bb[:, None])
    decay = torch.exp(gc[:, None] - gc[None, :])
    KK = Kb @ Kb.T; QK = Qb @ Kb.T
    Am = torch.tril(bb[:, None] * KK * decay, -1)
    Aqk = bf(torch.tril(QK * decay * scale))
    # blocked inverse
    T = torch.zeros(C, C)
    for b in range(4):
        s = 16*b
        for i in range(16):
            for j in range(16):
                if i == j: T[s+i, s+j] = 1
                elif i > j: T[s+i, s+j] = -sum(Am[s+i, s+m] * T[s+m, s+j] for m in range(j, i))
    for dd in range(1, 4):
        for bj in range(4 - dd):
            bi = bj + dd
            X = sum(Am[16*bi:16*bi+16, 16*mb:16*mb+16] @ T[16*mb:16*mb+16, 16*bj:16*bj+16] for mb in range(bj, bi))
            T[16*bi:16*bi+16, 16*bj:16*bj+16] = -T[16*bi:16*bi+16, 16*bi:16*bi+16] @ X
    Tex = torch.linalg.inv(torch.eye(C) + Am)
    assert (T - Tex).abs().max() < 1e-3 * max(1, Tex.abs().max()), (T - Tex).abs().max()
    Tb = bf(T)
    WN = bf(-(Tb @ KBG))
    u = bf(Tb @ VB)
    Hb = bf(H)
    VN = bf(u + WN @ Hb)
    oc = QD @ Hb + Aqk @ VN
    o[c0:c0+n] = oc[:n]
    H = math.exp(glast) * H + KD.T @ VN
md = (o.double() - oref).abs().max().item(); mr = oref.abs().max().item()
sd = (H.double() - S).abs().max().item(); sr = S.abs().max().item()
# tolerance: |d| <= 2e-2 max|ref| + 2e-2 |ref|
ok_o = ((o.double() - oref).abs() <= 2e-2 * mr + 2e-2 * oref.abs()).all().item()
ok_s = ((H.double() - S).abs() <= 2e-2 * sr + 2e-2 * S.abs()).all().item()
print(f"L {L} A {A:.2f}: o max|d|/max|ref| {md/mr:.2e}, state {sd/sr:.2e}, pass {ok_o and ok_s}")
