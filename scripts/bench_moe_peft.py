"""MoE-PEFT's own training step, timed: the peer mixlora-bench is compared with
(scripts/bench_vs_moe_peft.sh, docs/benchmarks.md).

Builds a LLaMA of a mixlora-bench preset shape with random N(0, 0.02) weights, saves it as a
Hugging Face directory, loads it with moe_peft.LLMModel.from_pretrained (fp32, eager attention),
adds one adapter with MoE-PEFT's own init_adapter (the shapes of mixlora-bench's run of the same
name: r 16, alpha 32, dropout 0.05 on q,k,v,o,gate,up,down; MixLoRA 8 experts top-2) and times
the loop body of moe_peft.trainer.train: forward of an LLMModelInput, loss + router aux loss,
backward, AdamW step, zero_grad. Synthetic full-length rows of random tokens, as mixlora-bench's.
--recompute none|recompute: MoE-PEFT's trainer dispatches with "recompute" (activation
checkpointing); "none" is the step without it, like mixlora-bench's default.

  python bench_moe_peft.py --preset small --run mixlora --threads 2 --warmup 1 --steps 3 --json out.json

Needs the venv of scripts/setup-python-refs.sh (torch 2.11, transformers 4.46.3, moe-peft 2.0.2).
"""
import argparse
import json
import os
import statistics
import tempfile
import time

import torch

import moe_peft
import transformers
from moe_peft.adapters import lora_config_factory

PRESETS = {  # hidden, intermediate, layers, heads, kv heads, vocab: mixlora-bench's (bench/presets.cpp)
    "tiny": (64, 172, 5, 8, 4, 512),
    "small": (512, 1376, 8, 8, 8, 32000),
    "tinyllama-1.1b": (2048, 5632, 22, 32, 4, 32000),
    "llama2-7b": (4096, 11008, 32, 32, 32, 32000),
}

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def adapter_config(run):
    config = {"peft_type": "LORA", "r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
              "target_modules": {t: True for t in TARGETS}}
    if run != "lora":
        config.update(peft_type="MIXLORA", routing_strategy="mixlora", num_experts=8, top_k=2,
                      router_aux_loss_coef=0.01, router_init_range=0.02)
    lora = lora_config_factory(config)
    lora.adapter_name = run
    lora.task_name = "casual"
    return lora


def random_base(preset, directory, seed):
    hidden, inter, layers, heads, kv_heads, vocab = PRESETS[preset]
    config = transformers.LlamaConfig(
        hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, vocab_size=vocab, max_position_embeddings=4096, rms_norm_eps=1e-5,
        initializer_range=0.02, tie_word_embeddings=False)
    torch.manual_seed(seed)
    transformers.LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS))
    parser.add_argument("--run", default="mixlora", choices=["lora", "mixlora"])
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--recompute", default="none", choices=["none", "recompute"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as directory:
        random_base(args.preset, directory, args.seed)
        model = moe_peft.LLMModel.from_pretrained(directory, device="cpu", load_dtype=torch.float32,
                                                  compute_dtype=torch.float32, attn_impl="eager")
    name = model.init_adapter(adapter_config(args.run))
    params = [t for t in model.get_adapter_weight_dict(name).values() if t.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    generator = torch.Generator().manual_seed(args.seed)
    vocab = PRESETS[args.preset][5]

    def step():
        tokens = torch.randint(3, vocab, (args.micro_batch, args.seq_len), generator=generator).tolist()
        batch = moe_peft.LLMModelInput(
            batch_configs_=[moe_peft.LLMBatchConfig(adapter_name_=name, batch_start_idx_=0,
                                                    batch_end_idx_=args.micro_batch)],
            batch_tokens_=tokens, batch_labels_=tokens, batch_masks_=[[1] * args.seq_len] * args.micro_batch,
            gradient_checkpoint_=args.recompute, efficient_operator_=True, inference_mode_=False)
        output = model.forward(batch)[0]
        loss = output.loss + (output.aux_loss if output.aux_loss is not None else 0.0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return output.loss.item()

    for _ in range(args.warmup):
        step()
    seconds, losses = [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        losses.append(step())
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    result = {"peer": "moe-peft", "version": moe_peft.__version__ if hasattr(moe_peft, "__version__") else "2.0.2",
              "torch": torch.__version__, "run": args.run, "preset": args.preset, "recompute": args.recompute,
              "threads": args.threads, "seq_len": args.seq_len, "micro_batch": args.micro_batch,
              "trainable_params": sum(p.numel() for p in params), "step_seconds": seconds,
              "ms_per_step": median * 1e3, "tokens_per_s": args.micro_batch * args.seq_len / median,
              "loss": statistics.mean(losses)}
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
