#!/usr/bin/env python3
"""Forward parity with transformers: builds tiny random-weight models offline from a config
(LLaMA with an untied head and llama3 rope scaling, Mistral with an explicit head_dim and a
sliding window shorter than the test sequences, Qwen2 with q/k/v biases and a tied head),
saves each with save_pretrained (safetensors), and writes for each:
  OUT_DIR/<name>/                 the model directory (config.json + model.safetensors)
  OUT_DIR/<name>/reference.safetensors
      logits         [B, T, V] fp32 of a right-padded batch (padding positions zeroed)
      input_ids      [B, T], attention_mask [B, T]
      prompt         [P] and greedy [N]: greedy continuation (full forward per token, stops
                     after EOS), each step's top-1 margin checked to be clear of ties
Usage: python tests/reference/forward_reference.py OUT_DIR   (the venv of setup-python-refs.sh)
"""
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)

COMMON = dict(vocab_size=320, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, initializer_range=0.15,
              torch_dtype="float32")

MODELS = {
    "llama": (LlamaConfig, LlamaForCausalLM, dict(
        tie_word_embeddings=False, rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32})),
    "mistral": (MistralConfig, MistralForCausalLM, dict(
        tie_word_embeddings=False, head_dim=24, rope_theta=1000000.0, sliding_window=7)),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, dict(
        tie_word_embeddings=True, rope_theta=1000000.0, use_sliding_window=False)),
}
LENGTHS = [20, 13]
PROMPT_LENGTH = 6
NEW_TOKENS = 24


def build(name, out_dir):
    config_class, model_class, extra = MODELS[name]
    torch.manual_seed(sum(map(ord, name)))
    config = config_class(**COMMON, **extra)
    model = model_class(config).float().eval()
    with torch.no_grad():
        # Norm weights and biases away from their 1 / 0 inits, so that they are tested too.
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif pname.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
    model_dir = os.path.join(out_dir, name)
    model.save_pretrained(model_dir, safe_serialization=True)
    return model, model_dir


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    torch.set_num_threads(1)
    for name in MODELS:
        model, model_dir = build(name, out_dir)
        g = torch.Generator().manual_seed(99)
        ids = torch.zeros(len(LENGTHS), max(LENGTHS), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for b, n in enumerate(LENGTHS):
            ids[b, :n] = torch.randint(3, COMMON["vocab_size"], (n,), generator=g)
            mask[b, :n] = 1
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            prompt = ids[0, :PROMPT_LENGTH].clone()
            sequence = prompt.clone()
            for _ in range(NEW_TOKENS):
                last = model(input_ids=sequence.unsqueeze(0)).logits[0, -1]
                top2 = last.topk(2).values
                assert top2[0] - top2[1] > 1e-3 * top2[0].abs().clamp_min(1), f"{name}: near tie in greedy decoding"
                token = last.argmax()
                sequence = torch.cat([sequence, token.view(1)])
                if token.item() == COMMON["eos_token_id"]:
                    break
        save_file({"logits": (logits * mask.unsqueeze(-1)).contiguous(), "input_ids": ids, "attention_mask": mask,
                   "prompt": prompt, "greedy": sequence[PROMPT_LENGTH:].clone()},
                  os.path.join(model_dir, "reference.safetensors"))
        print(f"{name}: logits max |x| {logits.abs().max():.3f}, greedy {sequence[PROMPT_LENGTH:].tolist()}")


if __name__ == "__main__":
    main()
