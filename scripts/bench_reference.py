#!/usr/bin/python3
"""PyTorch eager reference of one training step, written the way MoE-PEFT runs MixLoRA, for
the comparison in docs/benchmarks.md with mixlora-bench (same shapes, same synthetic rows, same optimizer).

MixLoRA FFN as in MoE-PEFT's mixlora module: the base W1 x and W3 x once for all tokens
(shared), then per expert on its tokens: its LoRAs on gate/up, act * up, the base W2 applied
per expert plus its down LoRA, and index_add_ of the routing-weighted result. Attention and
LoRA as in PEFT: base(x) + B(A(dropout(x))) * alpha / r.

Run with Debian's torch 1.13:  /usr/bin/python3 scripts/bench_reference.py --threads 2
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F

PRESETS = {  # hidden, intermediate, layers, heads, kv heads, vocab (SPEC section 9)
    "tiny": (64, 172, 5, 8, 4, 512),
    "small": (512, 1376, 8, 8, 8, 32000),
    "tinyllama-1.1b": (2048, 5632, 22, 32, 4, 32000),
}


class Lora(torch.nn.Module):
    def __init__(self, in_features, out_features, r, alpha, dropout):
        super().__init__()
        self.a = torch.nn.Parameter(torch.empty(r, in_features))
        torch.nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))
        self.b = torch.nn.Parameter(torch.zeros(out_features, r))
        self.scale = alpha / r
        self.dropout = dropout

    def forward(self, x):
        return F.linear(F.linear(F.dropout(x, self.dropout, self.training), self.a), self.b) * self.scale


def frozen(*shape):
    return torch.nn.Parameter(torch.randn(*shape) * 0.02, requires_grad=False)


def rms_norm(x, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Layer(torch.nn.Module):
    def __init__(self, args, hidden, inter, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, hidden // heads
        kv = kv_heads * self.head_dim
        self.w = torch.nn.ParameterDict({
            "q": frozen(hidden, hidden), "k": frozen(kv, hidden), "v": frozen(kv, hidden),
            "o": frozen(hidden, hidden), "gate": frozen(inter, hidden), "up": frozen(inter, hidden),
            "down": frozen(hidden, inter)})
        lora = lambda i, o: Lora(i, o, args.rank, args.alpha, args.dropout)
        self.attn_lora = torch.nn.ModuleDict({"q": lora(hidden, hidden), "k": lora(hidden, kv),
                                              "v": lora(hidden, kv), "o": lora(hidden, hidden)})
        self.mixlora = args.mode == "mixlora"
        count = args.experts if self.mixlora else 1
        self.experts = torch.nn.ModuleList(torch.nn.ModuleDict({
            "gate": lora(hidden, inter), "up": lora(hidden, inter), "down": lora(inter, hidden)})
            for _ in range(count))
        if self.mixlora:
            self.router = torch.nn.Parameter(torch.randn(args.experts, hidden) * 0.02)
            self.top_k = args.top_k

    def proj(self, name, x):
        return F.linear(x, self.w[name]) + self.attn_lora[name](x)

    def attention(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.proj("q", x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.proj("k", x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.proj("v", x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        groups = self.heads // self.kv_heads
        if groups > 1:
            k = k.repeat_interleave(groups, dim=1)
            v = v.repeat_interleave(groups, dim=1)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + mask
        out = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.proj("o", out.transpose(1, 2).reshape(b, t, -1))

    def lora_ffn(self, x):
        e = self.experts[0]
        gate = F.linear(x, self.w["gate"]) + e["gate"](x)
        up = F.linear(x, self.w["up"]) + e["up"](x)
        inter = F.silu(gate) * up
        return F.linear(inter, self.w["down"]) + e["down"](inter)

    def mixlora_ffn(self, x):
        b, t, h = x.shape
        flat = x.reshape(-1, h)
        logits = F.linear(flat, self.router)
        probs = torch.softmax(logits, dim=1, dtype=torch.float32)
        weights, selected = torch.topk(probs, self.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        common_gate = F.linear(flat, self.w["gate"])  # W1 x and W3 x shared by all experts
        common_up = F.linear(flat, self.w["up"])
        out = torch.zeros_like(flat)
        expert_mask = F.one_hot(selected, num_classes=len(self.experts)).permute(2, 1, 0)
        for index, expert in enumerate(self.experts):
            slot, tokens = torch.where(expert_mask[index])
            xe = flat[tokens]
            inter = F.silu(common_gate[tokens] + expert["gate"](xe)) * (common_up[tokens] + expert["up"](xe))
            current = F.linear(inter, self.w["down"]) + expert["down"](inter)  # base W2 per expert
            out.index_add_(0, tokens, current * weights[tokens, slot, None])
        # Mixtral load balancing: fraction of tokens per expert times mean probability.
        fraction = F.one_hot(selected, len(self.experts)).float().mean(dim=0)
        aux = (fraction * probs.mean(dim=0)).sum() * len(self.experts)
        return out.view(b, t, h), aux

    def forward(self, x, cos, sin, mask):
        x = x + self.attention(rms_norm(x), cos, sin, mask)
        if self.mixlora:
            ffn, aux = self.mixlora_ffn(rms_norm(x))
            return x + ffn, aux
        return x + self.lora_ffn(rms_norm(x)), None


class Model(torch.nn.Module):
    def __init__(self, args):
        super().__init__()
        hidden, inter, layers, heads, kv_heads, vocab = PRESETS[args.preset]
        self.embed = frozen(vocab, hidden)
        self.lm_head = frozen(vocab, hidden)
        self.layers = torch.nn.ModuleList(Layer(args, hidden, inter, heads, kv_heads) for _ in range(layers))
        head_dim = hidden // heads
        inv = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        freqs = torch.outer(torch.arange(args.seq_len).float(), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = emb.cos()[None, None], emb.sin()[None, None]
        self.mask = torch.full((args.seq_len, args.seq_len), -1e30).triu(1)[None, None]

    def forward(self, ids):
        x = F.embedding(ids, self.embed)
        aux_total = 0.0
        for layer in self.layers:
            x, aux = layer(x, self.cos, self.sin, self.mask)
            if aux is not None:
                aux_total = aux_total + aux
        logits = F.linear(rms_norm(x), self.lm_head).float()
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))
        return loss + 0.001 * aux_total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", choices=PRESETS)
    parser.add_argument("--mode", default="both", choices=["lora", "mixlora", "both"])
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=32.0)
    parser.add_argument("--dropout", type=float, default=0.05)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    results = []
    for mode in (["lora", "mixlora"] if args.mode == "both" else [args.mode]):
        args.mode = mode
        model = Model(args).train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.01)
        vocab = PRESETS[args.preset][5]
        times, cpu = [], []
        for step in range(args.warmup + args.steps):
            ids = torch.randint(3, vocab, (args.micro_batch, args.seq_len))
            start, start_cpu = time.perf_counter(), time.process_time()
            loss = model(ids)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step >= args.warmup:
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
        seconds = statistics.median(times)
        tokens = args.micro_batch * args.seq_len
        cpu_seconds = statistics.median(cpu)  # steadier than wall time on a shared machine
        results.append({"name": mode, "tokens_per_s": tokens / seconds, "ms_per_step": seconds * 1e3,
                        "cpu_ms_per_step": cpu_seconds * 1e3,
                        "trainable_params": sum(p.numel() for p in params), "loss": loss.item()})
        print(f"{mode:<10} {tokens / seconds:10.1f} tokens/s {seconds * 1e3:10.1f} ms/step "
              f"{cpu_seconds * 1e3:10.1f} cpu ms/step "
              f"{results[-1]['trainable_params']:>12} trainable", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "preset": args.preset, "torch": torch.__version__,
                       "runs": results}, f, indent=2)


if __name__ == "__main__":
    main()
