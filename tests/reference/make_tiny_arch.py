#!/usr/bin/env python3
"""Builds a tiny random-weight model of one architecture with transformers and writes what the
C++ decoder must reproduce (tests/test_architectures.cpp).

  make_tiny_arch.py OUT_ROOT ARCH...      ARCH: qwen3 gemma gemma2 gemma3 phi3

OUT_ROOT/ARCH gets the model (config.json + model.safetensors, save_pretrained with safetensors) and
reference.json: the fp32 logits of a fixed batch (one row right-padded), a prompt and its 20-token
greedy continuation (transformers' generate without a cache: see build()), and the version.

transformers 4.46.3 (requirements/python-refs.txt) predates Qwen3 and Gemma-3; for those the newer
transformers of scripts/setup-transformers-new.sh is put first on sys.path (MIXLORA_TRANSFORMERS_NEW
or ~/.cache/mixlora/transformers-new) in a second interpreter. When no installed transformers has
the class, OUT_ROOT/ARCH/skipped.txt says so and the C++ test skips that architecture.
"""
import json
import os
import subprocess
import sys

CLASSES = {
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
    "gemma": ("GemmaConfig", "GemmaForCausalLM"),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM"),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM"),
    "phi3": ("Phi3Config", "Phi3ForCausalLM"),
}

VOCAB = 128
SLIDING_WINDOW = 8  # shorter than the sequences below, so the window really cuts


def tiny_config(arch):
    # hidden 64, 4 query heads of 24 (q_out 96 != hidden, as in Qwen3/Gemma), 2 or 1 kv heads.
    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if arch == "qwen3":
        return dict(common, num_hidden_layers=3, head_dim=24, rope_theta=1e6, tie_word_embeddings=True,
                    hidden_act="silu", use_sliding_window=False)
    if arch == "gemma":
        return dict(common, num_hidden_layers=2, head_dim=24, num_key_value_heads=1, rope_theta=1e4,
                    hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh")
    if arch == "gemma2":
        return dict(common, num_hidden_layers=4, head_dim=24, rope_theta=1e4,
                    hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=20,
                    sliding_window=SLIDING_WINDOW, attn_logit_softcapping=2.0,
                    final_logit_softcapping=3.0)
    if arch == "gemma3":
        # Layers 0, 1, 3 local (sliding, rope base 1e4), layer 2 global (base 1e6, linear x4).
        return dict(common, num_hidden_layers=4, head_dim=24, rope_theta=1e6, rope_local_base_freq=1e4,
                    rope_scaling={"rope_type": "linear", "factor": 4.0},
                    hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=20,
                    sliding_window=SLIDING_WINDOW, sliding_window_pattern=3,
                    attn_logit_softcapping=None, final_logit_softcapping=None)
    if arch == "phi3":
        return dict(common, num_hidden_layers=2, rope_theta=1e4, hidden_act="silu",
                    sliding_window=SLIDING_WINDOW, tie_word_embeddings=False)
    raise SystemExit(f"unknown architecture {arch!r} (known: {', '.join(CLASSES)})")


def use_newer_transformers():
    newer = os.environ.get("MIXLORA_TRANSFORMERS_NEW",
                           os.path.expanduser("~/.cache/mixlora/transformers-new"))
    if os.path.isdir(newer):
        sys.path.insert(0, newer)


def build(transformers, arch, out_dir):
    import torch

    config_name, model_name = CLASSES[arch]
    torch.manual_seed(1234)
    config = getattr(transformers, config_name)(**tiny_config(arch))
    config._attn_implementation = "eager"  # softcapping and windows exactly as written
    model = getattr(transformers, model_name)(config).eval()
    # Initialisation leaves norms at 1 (or 0 for Gemma's 1 + w) and projections at std 0.02,
    # which hides mistakes in norms and softcaps: draw every parameter so activations are O(1).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.normal_(0.0, 0.3)
            elif "embed_tokens" in name:
                # Small, so that with tied embeddings (and Gemma's x sqrt(hidden)) a token's own
                # embedding does not dominate its logits and greedy decoding stays varied.
                p.normal_(0.0, 0.02)
            else:
                p.normal_(0.0, 1.0 / p.shape[-1] ** 0.5)
    model.save_pretrained(out_dir, safe_serialization=True)

    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(3, VOCAB, (2, 24), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 19:] = 0  # right padding on the second row
    ids[1, 19:] = 0
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        prompt = torch.randint(3, VOCAB, (1, 6), generator=gen)
        # The model's own greedy continuation is the one without a cache (each step a full
        # forward): transformers' HybridCache (Gemma-2 in 4.46.3, Gemma-3 in 4.51.3) departs from
        # it once the sequence passes the sliding window; its ids are kept for the record.
        def greedy(use_cache):
            out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                 max_new_tokens=20, min_new_tokens=20, eos_token_id=None,
                                 pad_token_id=0, use_cache=use_cache)
            return out[0, prompt.shape[1]:].tolist()
        generated = greedy(False)
        generated_cached = greedy(True)
    reference = {
        "transformers": transformers.__version__,
        "architecture": model_name,
        "ids": ids.tolist(),
        "mask": mask.tolist(),
        "logits": logits.tolist(),
        "prompt": prompt[0].tolist(),
        "greedy": generated,
        "greedy_transformers_cache": generated_cached,
    }
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(reference, f)


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out_root, archs = sys.argv[1], sys.argv[2:]
    for arch in archs:
        if arch not in CLASSES:
            raise SystemExit(f"unknown architecture {arch!r} (known: {', '.join(CLASSES)})")
    newer = os.environ.get("MIXLORA_REFERENCE_NEWER") == "1"
    if newer:
        use_newer_transformers()
    import transformers

    missing = [a for a in archs if not hasattr(transformers, CLASSES[a][1])]
    for arch in archs:
        out_dir = os.path.join(out_root, arch)
        os.makedirs(out_dir, exist_ok=True)
        if arch in missing:
            if newer:
                with open(os.path.join(out_dir, "skipped.txt"), "w") as f:
                    f.write(f"skipped: needs a transformers with {CLASSES[arch][1]} "
                            "(scripts/setup-transformers-new.sh)\n")
            continue
        build(transformers, arch, out_dir)
    if missing and not newer:
        # A fresh interpreter: one process cannot import two transformers versions.
        env = dict(os.environ, MIXLORA_REFERENCE_NEWER="1")
        subprocess.run([sys.executable, os.path.abspath(__file__), out_root] + missing, env=env,
                       check=True)


if __name__ == "__main__":
    main()
