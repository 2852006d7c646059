#!/usr/bin/env python3
"""An independent fp32 reference for SmolLM2 (llama GGUF): weights dequantized by the gguf package's own
gguf.quants.dequantize, the forward pass written in numpy (RMSNorm and softmax in float64), no KV cache (full
recompute each step). Records greedy generations for the prompts of the llama.cpp fixture.

Usage: python3 tests/tools/numpy_reference.py MODEL.gguf tests/fixtures/e2e/smollm2_llamacpp.json \
           tests/fixtures/e2e/smollm2_numpy.json
"""
import numpy as np, gguf, sys, json
r = gguf.GGUFReader(sys.argv[1])
T = {t.name: t for t in r.tensors}
_cache = {}
def W(name):
    if name in _cache: return _cache[name]
    t = T[name]
    a = gguf.quants.dequantize(t.data, t.tensor_type)
    _cache[name] = np.asarray(a, dtype=np.float32)
    return _cache[name]
f = lambda k: r.fields[k].contents()
n_embd=f('llama.embedding_length'); nh=f('llama.attention.head_count'); nkv=f('llama.attention.head_count_kv')
L=f('llama.block_count'); eps=f('llama.attention.layer_norm_rms_epsilon'); base=f('llama.rope.freq_base'); hd=n_embd//nh
def rms(x,w): return x/np.sqrt((x.astype(np.float64)**2).mean(-1,keepdims=True)+eps).astype(np.float32)*w
def rope(x,pos):  # x [T, H, hd], NORM pairing
    inv = base ** (-np.arange(0,hd,2,dtype=np.float64)/hd)
    ang = pos[:,None]*inv[None,:]
    c=np.cos(ang)[:,None,:]; s=np.sin(ang)[:,None,:]
    x0=x[...,0::2].astype(np.float64); x1=x[...,1::2].astype(np.float64)
    o=np.empty_like(x,dtype=np.float64); o[...,0::2]=x0*c-x1*s; o[...,1::2]=x0*s+x1*c
    return o.astype(np.float32)
def forward(ids):
    E=W('token_embd.weight'); x=E[ids].astype(np.float32); Tn=len(ids); pos=np.arange(Tn,dtype=np.float64)
    for l in range(L):
        p=f'blk.{l}.'
        h=rms(x,W(p+'attn_norm.weight'))
        q=(h@W(p+'attn_q.weight').T).reshape(Tn,nh,hd); k=(h@W(p+'attn_k.weight').T).reshape(Tn,nkv,hd); v=(h@W(p+'attn_v.weight').T).reshape(Tn,nkv,hd)
        q=rope(q,pos); k=rope(k,pos)
        rep=nh//nkv; k=np.repeat(k,rep,axis=1); v=np.repeat(v,rep,axis=1)
        s=np.einsum('thd,shd->hts',q,k)/np.sqrt(hd); s=s+np.triu(np.full((Tn,Tn),-np.inf),1)[None]
        s=np.exp(s-s.max(-1,keepdims=True)); s/=s.sum(-1,keepdims=True)
        o=np.einsum('hts,shd->thd',s,v).reshape(Tn,nh*hd)
        x=x+o@W(p+'attn_output.weight').T
        h=rms(x,W(p+'ffn_norm.weight'))
        g=h@W(p+'ffn_gate.weight').T; u=h@W(p+'ffn_up.weight').T
        x=x+((g/(1+np.exp(-g)))*u)@W(p+'ffn_down.weight').T
    x=rms(x,W('output_norm.weight'))
    return x[-1]@E.T
PROMPTS = json.load(open(sys.argv[2]))["records"]
out = []
for rec in PROMPTS:
    ids = list(rec["prompt_ids"]); gen = []; margins = []
    for _ in range(len(rec["generated_ids"])):
        lg = forward(ids + gen)
        o = np.argsort(-lg)[:2]
        gen.append(int(o[0])); margins.append(float(lg[o[0]] - lg[o[1]]))
    print(rec["prompt"][:30], gen[:12], min(margins))
    out.append({"prompt": rec["prompt"], "prompt_ids": ids, "generated_ids": gen, "margins": margins})
json.dump({"meta": {"implementation": "tests/tools/numpy_reference.py (numpy fp32/fp64, weights dequantized by gguf.quants)",
                    "method": "greedy argmax, full recompute per step"}, "records": out}, open(sys.argv[3], "w"), indent=1)
