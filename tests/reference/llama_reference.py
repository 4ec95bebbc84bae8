#!/usr/bin/python3
"""Independent reference for the C++ decoder: a plain-PyTorch LLaMA forward written from the
Hugging Face modeling_llama equations (not from our C++), reading safetensors by hand.

Writes tests/fixtures/stories260K_reference.json with
  - logits of a padded batch of token sequences (right padding),
  - greedy continuations (64 new tokens) of several prompts.
Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/llama_reference.py
"""
import json
import math
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODEL_DIR = os.path.join(ROOT, "data", "stories260K")
OUT = os.path.join(ROOT, "tests", "fixtures", "stories260K_reference.json")

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=DTYPES[info["dtype"]])
        tensors[name] = t.reshape(info["shape"]).float()
    return tensors


class Llama:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        self.w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        c = self.cfg
        self.n_heads = c["num_attention_heads"]
        self.n_kv = c["num_key_value_heads"]
        self.head_dim = c["hidden_size"] // self.n_heads
        self.eps = c["rms_norm_eps"]
        inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        self.inv_freq = inv_freq

    def rmsnorm(self, x, weight):
        var = x.pow(2).mean(-1, keepdim=True)
        return weight * (x * torch.rsqrt(var + self.eps))

    def rope(self, x, positions):
        # x [B, H, T, d]; positions [B, T]
        freqs = positions[:, :, None].float() * self.inv_freq[None, None, :]
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos()[:, None], emb.sin()[:, None]
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin

    def forward(self, ids, mask):
        """ids, mask [B, T]; returns logits [B, T, V]."""
        B, T = ids.shape
        w = self.w
        h = w["model.embed_tokens.weight"][ids]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        allowed = causal[None] & mask[:, None, :].bool()
        for i in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            x = self.rmsnorm(h, w[p + "input_layernorm.weight"])
            q = (x @ w[p + "self_attn.q_proj.weight"].T).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
            k = (x @ w[p + "self_attn.k_proj.weight"].T).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
            v = (x @ w[p + "self_attn.v_proj.weight"].T).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
            q, k = self.rope(q, positions), self.rope(k, positions)
            rep = self.n_heads // self.n_kv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
            scores = scores.masked_fill(~allowed[:, None], float("-inf"))
            att = torch.softmax(scores, dim=-1).nan_to_num(0.0) @ v
            att = att.transpose(1, 2).reshape(B, T, -1)
            h = h + att @ w[p + "self_attn.o_proj.weight"].T
            x = self.rmsnorm(h, w[p + "post_attention_layernorm.weight"])
            gate = x @ w[p + "mlp.gate_proj.weight"].T
            up = x @ w[p + "mlp.up_proj.weight"].T
            h = h + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
        h = self.rmsnorm(h, w["model.norm.weight"])
        return h @ w["model.embed_tokens.weight"].T  # tied embeddings

    def greedy(self, prompt, new_tokens, eos=2):
        ids = list(prompt)
        out = []
        for _ in range(new_tokens):
            t = torch.tensor([ids])
            logits = self.forward(t, torch.ones_like(t))
            nxt = int(logits[0, -1].argmax())
            out.append(nxt)
            if nxt == eos:
                break
            ids.append(nxt)
        return out


def llama2c_convention(model_dir):
    """The same weights in llama2.c's layout (q/k rows un-permuted) with llama2.c's interleaved
    rotary pairs. A correct conversion gives identical results; main() checks that."""
    m = Llama(model_dir)

    def unpermute(w, n_heads):
        d1, d2 = w.shape
        return w.view(n_heads, 2, d1 // n_heads // 2, d2).transpose(1, 2).reshape(d1, d2)

    for i in range(m.cfg["num_hidden_layers"]):
        p = f"model.layers.{i}.self_attn."
        m.w[p + "q_proj.weight"] = unpermute(m.w[p + "q_proj.weight"], m.n_heads)
        m.w[p + "k_proj.weight"] = unpermute(m.w[p + "k_proj.weight"], m.n_kv)

    def rope_interleaved(x, positions):
        freqs = positions[:, :, None].float() * m.inv_freq[None, None, :]
        cos, sin = freqs.cos()[:, None], freqs.sin()[:, None]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)

    m.rope = rope_interleaved
    return m


def main():
    torch.set_grad_enabled(False)
    model = Llama(MODEL_DIR)
    torch.manual_seed(0)
    lengths = [12, 7, 3]
    T = max(lengths)
    ids = torch.zeros(len(lengths), T, dtype=torch.long)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, 0] = 1  # BOS
        ids[b, 1:n] = torch.randint(3, 512, (n - 1,))
        mask[b, :n] = 1
    logits = model.forward(ids, mask)
    prompts = [[1], [1, 403, 407, 261, 378], [1] + model.greedy([1], 20)[:20]]
    greedy = [{"prompt": p, "new_tokens": model.greedy(p, 64)} for p in prompts]
    cross_check = llama2c_convention(MODEL_DIR)
    for g in greedy:
        assert cross_check.greedy(g["prompt"], 64) == g["new_tokens"], "llama2.c convention disagrees"
    fixture = {
        "model": "stories260K",
        "generator": "tests/reference/llama_reference.py (plain PyTorch %s, fp32)" % torch.__version__,
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        # logits of real (non-pad) positions only, row-major [b][t][v]
        "logits": [[[round(float(x), 7) for x in logits[b, t]] for t in range(n)] for b, n in enumerate(lengths)],
        "greedy": greedy,
    }
    with open(OUT, "w") as f:
        json.dump(fixture, f)
    print("wrote", OUT, file=sys.stderr)
    for g in fixture["greedy"]:
        print(len(g["prompt"]), " ".join(map(str, g["new_tokens"])), file=sys.stderr)


if __name__ == "__main__":
    main()
