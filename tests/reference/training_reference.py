#!/usr/bin/env python3
"""Training reference in the spirit of llm.c's test_gpt2: transformers' LlamaForCausalLM on the
stories260K weights, with adapters written here in plain PyTorch from SPEC section 5 (not from
our C++ and not from MoE-PEFT or the MixLoRA plugin).

For a fixed batch of token ids and, per case, a fixed nonzero initial adapter (LoRA, DoRA, and
MixLoRA with top-k, dynamic (top-p) and switch routing), writes into OUT_DIR:
  <case>/adapter_config.json + adapter_model.safetensors   the initial adapter, in our format
  reference.safetensors   <case>.logits [B, T, V] (padding positions zeroed),
                          <case>.grad.<tensor name> for every adapter tensor with a gradient,
                          <case>.losses [STEPS + 1, 4]: total, task, aux, z before each update
                          (row STEPS: after the last one)
  reference.json          the batch, the optimizer settings, the cases, and per step the
                          adapter tensors that got no gradient (idle experts)
The optimizer is torch.optim.AdamW; dropout is 0 everywhere, so everything is deterministic.

Usage: python tests/reference/training_reference.py OUT_DIR   (the venv of setup-python-refs.sh)
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODEL_DIR = os.path.join(ROOT, "data", "stories260K")

STEPS = 10
LR = 0.002
WEIGHT_DECAY = 0.01
BETAS = (0.9, 0.999)
EPS = 1e-8
PAD_ID = 0
# Three rows, the last one right-padded; the first two label positions of row 0 are ignored
# (train_on_inputs false style).
LENGTHS = [12, 12, 8]
IGNORED_PREFIX = 2

MLP = ["gate_proj", "up_proj", "down_proj"]
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]

CASES = [
    {"name": "lora", "peft_type": "LORA", "r": 4, "lora_alpha": 8,
     "target_modules": ATTENTION + MLP},
    {"name": "dora", "peft_type": "LORA", "r": 4, "lora_alpha": 8, "use_dora": True,
     "target_modules": ["q_proj", "v_proj", "o_proj", "gate_proj", "down_proj"]},
    {"name": "mixlora", "peft_type": "MIXLORA", "routing_strategy": "mixlora", "r": 4,
     "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"] + MLP, "num_experts": 8, "top_k": 2,
     "router_aux_loss_coef": 0.05, "router_z_loss_coef": 0.01, "router_std": 0.6},
    {"name": "mixlora-dynamic", "peft_type": "MIXLORA", "routing_strategy": "mixlora-dynamic",
     "r": 4, "lora_alpha": 8, "target_modules": ["k_proj", "o_proj"] + MLP, "num_experts": 6,
     "top_p": 0.7, "temperature": 0.5, "router_aux_loss_coef": 0.05, "router_z_loss_coef": 0.01,
     "router_std": 0.3},
    {"name": "mixlora-switch", "peft_type": "MIXLORA", "routing_strategy": "mixlora-switch",
     "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"] + MLP, "num_experts": 8,
     "expert_capacity": 4, "router_aux_loss_coef": 0.05, "router_z_loss_coef": 0.01,
     "router_std": 0.6},
]


def make_batch(vocab):
    g = torch.Generator().manual_seed(1234)
    steps = max(LENGTHS)
    ids = torch.full((len(LENGTHS), steps), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(LENGTHS), steps), dtype=torch.long)
    for b, n in enumerate(LENGTHS):
        ids[b, :n] = torch.randint(3, vocab, (n,), generator=g)
        mask[b, :n] = 1
    labels = ids.masked_fill(mask == 0, -100)
    labels[0, :IGNORED_PREFIX] = -100
    return ids, mask, labels


class LoraLinear(torch.nn.Module):
    """y = W x + b + s B A x; DoRA: y = (m / ||W + s B A||_row) (W x + s B A x) + b, the norm
    not differentiated (PEFT, the DoRA paper's recommendation)."""

    def __init__(self, base, a, b, scale, magnitude=None):
        super().__init__()
        self.base = base
        self.lora_A = torch.nn.Parameter(a)
        self.lora_B = torch.nn.Parameter(b)
        self.magnitude = torch.nn.Parameter(magnitude) if magnitude is not None else None
        self.scale = scale

    def forward(self, x):
        delta = (x @ self.lora_A.t()) @ self.lora_B.t() * self.scale
        if self.magnitude is None:
            return self.base(x) + delta
        w = self.base.weight
        norm = (w + self.scale * self.lora_B @ self.lora_A).norm(dim=1).detach()
        out = (self.magnitude / norm) * (x @ w.t() + delta)
        return out if self.base.bias is None else out + self.base.bias


class Recorder:
    """Router outputs of every layer of one forward pass, for the router losses."""

    def __init__(self):
        self.token_mask = None  # [B*T] bool
        self.layers = []        # (logits, probs, slot_experts [N, S] with -1 = none, argmax)


class MixLoraMlp(torch.nn.Module):
    """SPEC section 5, evaluated naively: every expert runs its whole FFN on its tokens."""

    def __init__(self, base, router, experts, scale, case, recorder):
        super().__init__()
        self.base = base
        self.router = torch.nn.Parameter(router)
        # experts[e][proj] = (A, B)
        self.experts = torch.nn.ParameterList()
        self.names = []
        for e, loras in enumerate(experts):
            for proj, (a, b) in loras.items():
                self.experts.append(torch.nn.Parameter(a))
                self.experts.append(torch.nn.Parameter(b))
                self.names.append((e, proj))
        self.num_experts = len(experts)
        self.scale = scale
        self.case = case
        self.recorder = recorder

    def lora(self, e, proj):
        for i, key in enumerate(self.names):
            if key == (e, proj):
                return self.experts[2 * i], self.experts[2 * i + 1]
        return None

    def expert(self, e, x):
        def proj(name, inp):
            out = inp @ getattr(self.base, name).weight.t()
            lora = self.lora(e, name)
            if lora is not None:
                out = out + (inp @ lora[0].t()) @ lora[1].t() * self.scale
            return out
        hidden = F.silu(proj("gate_proj", x)) * proj("up_proj", x)
        return proj("down_proj", hidden)

    def forward(self, x):
        batch, steps, hidden = x.shape
        flat = x.reshape(-1, hidden)
        real = self.recorder.token_mask
        logits = flat @ self.router.t()
        c = self.case
        out = torch.zeros_like(flat)
        strategy = c["routing_strategy"]
        argmax = None
        if strategy == "mixlora":
            probs = torch.softmax(logits, dim=-1)
            top_w, top_e = probs.topk(c["top_k"], dim=-1)
            weights = top_w / top_w.sum(-1, keepdim=True)
            slots = top_e
        elif strategy == "mixlora-dynamic":
            t = c.get("temperature", 0.0)
            probs = torch.softmax(logits / t if t > 0 else logits, dim=-1)
            sorted_p, order = probs.sort(dim=-1, descending=True)
            cumulative = sorted_p.cumsum(-1)
            # Keep ranks up to and including the first whose cumulative mass exceeds top_p.
            exceeds = cumulative > c["top_p"]
            first = torch.where(exceeds.any(-1), exceeds.float().argmax(-1),
                                torch.full_like(order[:, 0], self.num_experts - 1))
            keep = torch.arange(self.num_experts).unsqueeze(0) <= first.unsqueeze(1)
            weights = sorted_p * keep
            slots = order.masked_fill(~keep, -1)
        else:  # mixlora-switch
            probs = torch.softmax(logits, dim=-1)
            top_p, argmax = probs.max(dim=-1)
            routed = torch.zeros(flat.shape[0], dtype=torch.bool)
            for b in range(batch):
                taken = [0] * self.num_experts
                for t in range(steps):
                    n = b * steps + t
                    if not real[n]:
                        continue
                    e = int(argmax[n])
                    taken[e] += 1
                    routed[n] = taken[e] <= c["expert_capacity"]
            slots = argmax.masked_fill(~routed, -1).unsqueeze(1)
            weights = top_p.unsqueeze(1)
            # Overflowing tokens skip the experts: their FFN output is their input, scaled alike.
            out = out + flat * ((~routed) & real).float().unsqueeze(1) * top_p.unsqueeze(1)
        for e in range(self.num_experts):
            token, slot = ((slots == e) & real.unsqueeze(1)).nonzero(as_tuple=True)
            if token.numel() == 0:
                continue  # an idle expert: its LoRAs get no gradient at all
            out = out.index_add(0, token, self.expert(e, flat[token]) * weights[token, slot].unsqueeze(1))
        self.recorder.layers.append((logits, probs, slots if argmax is None else argmax.unsqueeze(1)))
        return out.view(batch, steps, hidden)


def router_losses(case, recorder):
    """Over the router outputs of all layers together, padding excluded."""
    zero = torch.zeros(())
    if not recorder.layers:
        return zero, zero
    real = torch.cat([recorder.token_mask] * len(recorder.layers))
    logits = torch.cat([l for l, _, _ in recorder.layers])[real]
    probs = torch.cat([p for _, p, _ in recorder.layers])[real]
    slots = torch.cat([s for _, _, s in recorder.layers])[real]
    experts = probs.shape[1]
    fraction = torch.stack([(slots == e).float().mean(0) for e in range(experts)], dim=-1)  # [S, E]
    aux = case["router_aux_loss_coef"] * experts * (fraction * probs.mean(0)).sum()
    z = zero
    if case["routing_strategy"] == "mixlora-switch":
        z = case["router_z_loss_coef"] * torch.logsumexp(logits, dim=-1).pow(2).mean()
    return aux, z


def build_adapter(model, case, seed, recorder):
    """Wraps the model's projections; returns {file tensor name: parameter}."""
    g = torch.Generator().manual_seed(seed)
    scale = case["lora_alpha"] / case["r"]
    r = case["r"]
    named = {}
    mixlora = case["peft_type"] == "MIXLORA"

    def lora_pair(base_linear):
        out_f, in_f = base_linear.weight.shape
        bound = 1.0 / math.sqrt(in_f)
        a = (torch.rand(r, in_f, generator=g) * 2 - 1) * bound
        b = torch.randn(out_f, r, generator=g) * 0.05  # nonzero B: gradients are not trivial
        return a, b

    for i, layer in enumerate(model.model.layers):
        for block, names in (("self_attn", ATTENTION), ("mlp", MLP)):
            if block == "mlp" and mixlora:
                continue
            module = getattr(layer, block)
            for proj in names:
                if proj not in case["target_modules"]:
                    continue
                base = getattr(module, proj)
                a, b = lora_pair(base)
                magnitude = None
                if case.get("use_dora"):
                    merged = base.weight + scale * b @ a
                    magnitude = merged.norm(dim=1) * (1 + 0.1 * torch.randn(base.weight.shape[0], generator=g))
                wrapped = LoraLinear(base, a, b, scale, magnitude)
                setattr(module, proj, wrapped)
                prefix = (f"mixlora.layers.{i}.{block}.{proj}" if mixlora
                          else f"base_model.model.model.layers.{i}.{block}.{proj}")
                named[prefix + ".lora_A.weight"] = wrapped.lora_A
                named[prefix + ".lora_B.weight"] = wrapped.lora_B
                if magnitude is not None:
                    named[prefix + ".lora_magnitude_vector"] = wrapped.magnitude
        if mixlora:
            hidden = model.config.hidden_size
            router = torch.randn(case["num_experts"], hidden, generator=g) * case["router_std"]
            experts = []
            for _ in range(case["num_experts"]):
                experts.append({p: lora_pair(getattr(layer.mlp, p)) for p in MLP if p in case["target_modules"]})
            moe = MixLoraMlp(layer.mlp, router, experts, scale, case, recorder)
            layer.mlp = moe
            prefix = f"mixlora.layers.{i}.mlp"
            named[prefix + ".moe_gate.weight"] = moe.router
            for e in range(case["num_experts"]):
                for p in MLP:
                    lora = moe.lora(e, p)
                    if lora is not None:
                        named[f"{prefix}.{p}.experts.{e}.lora_A.weight"] = lora[0]
                        named[f"{prefix}.{p}.experts.{e}.lora_B.weight"] = lora[1]
    return named


def adapter_config(case):
    keys = ["peft_type", "r", "lora_alpha", "target_modules", "routing_strategy", "num_experts",
            "top_k", "top_p", "temperature", "expert_capacity", "router_aux_loss_coef",
            "router_z_loss_coef", "use_dora"]
    config = {k: case[k] for k in keys if k in case}
    config.update({"lora_dropout": 0.0, "bias": "none", "task_type": "CAUSAL_LM"})
    if case["peft_type"] == "MIXLORA":
        config.update({"act_fn": "silu", "jitter_noise": 0.0, "ffn_dropout": 0.0, "router_loss": True})
    return config


def run_case(case, ids, mask, labels, out_dir, tensors):
    model = LlamaForCausalLM.from_pretrained(MODEL_DIR, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()  # no dropout anywhere
    for p in model.parameters():
        p.requires_grad_(False)
    recorder = Recorder()
    recorder.token_mask = mask.reshape(-1).bool()
    named = build_adapter(model, case, seed=hash_name(case["name"]), recorder=recorder)

    adapter_dir = os.path.join(out_dir, case["name"])
    os.makedirs(adapter_dir, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in named.items()},
              os.path.join(adapter_dir, "adapter_model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(adapter_dir, "adapter_config.json"), "w") as f:
        json.dump(adapter_config(case), f, indent=2)

    params = list(named.values())
    optimizer = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
    losses, idle = [], []
    for step in range(STEPS + 1):
        optimizer.zero_grad(set_to_none=True)
        recorder.layers = []
        logits = model(input_ids=ids, attention_mask=mask).logits
        task = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=-100)
        aux, z = router_losses(case, recorder)
        total = task + aux + z
        losses.append([total.item(), task.item(), aux.item(), z.item()])
        if step == STEPS:
            break
        total.backward()
        idle.append([name for name, p in named.items() if p.grad is None])
        if step == 0:
            tensors[case["name"] + ".logits"] = (logits * mask.unsqueeze(-1)).detach().contiguous()
            for name, p in named.items():
                if p.grad is not None:
                    tensors[f"{case['name']}.grad.{name}"] = p.grad.detach().clone().contiguous()
        optimizer.step()
    tensors[case["name"] + ".losses"] = torch.tensor(losses, dtype=torch.float64)
    return idle


def hash_name(name):
    return sum((i + 1) * ord(c) for i, c in enumerate(name))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    with open(os.path.join(MODEL_DIR, "config.json")) as f:
        vocab = json.load(f)["vocab_size"]
    ids, mask, labels = make_batch(vocab)
    tensors = {}
    meta = {"steps": STEPS, "lr": LR, "weight_decay": WEIGHT_DECAY, "betas": list(BETAS), "eps": EPS,
            "pad_id": PAD_ID, "input_ids": ids.tolist(), "attention_mask": mask.tolist(),
            "labels": labels.tolist(), "cases": []}
    for case in CASES:
        idle = run_case(case, ids, mask, labels, out_dir, tensors)
        meta["cases"].append({"name": case["name"], "idle": idle})
        late = [n for n in idle[0] if any(n not in later for later in idle[1:])]
        print(f"{case['name']}: loss {tensors[case['name'] + '.losses'][0, 0]:.6f} -> "
              f"{tensors[case['name'] + '.losses'][-1, 0]:.6f}; idle tensors per step "
              f"{[len(i) for i in idle]}; idle at step 0 and trained later: {len(late)}")
    for case in CASES:
        if case["peft_type"] == "MIXLORA":
            idle = next(c["idle"] for c in meta["cases"] if c["name"] == case["name"])
            # The point of the exercise: an expert that gets no tokens in some step.
            assert any(idle), f"{case['name']}: no step with an idle expert; change router_std"
    save_file(tensors, os.path.join(out_dir, "reference.safetensors"))
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(meta, f)


if __name__ == "__main__":
    main()
