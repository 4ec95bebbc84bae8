"""MoE-PEFT (2.0.2) side of the interop tests (tests/test_python_interop.cpp).

  moe_peft_interop.py score BASE OUT.json ADAPTER_DIR:DATA.jsonl[:TASK] ...
      Loads each ADAPTER_DIR with MoE-PEFT's own LLMModel.load_adapter (its adapter_model.bin) and
      scores the rows of DATA ({input_ids} causal rows, or {input_ids, label} for a classification
      head); OUT.json maps ADAPTER_DIR to the numbers below. TASK sets the MoE-PEFT task name for
      adapters whose config has none (MoE-PEFT's own GLUE adapters: load_adapter alone would give
      them a causal LM head, since save_adapter_weight writes no task_name):
        loss             dropout off (see below), one row per batch (no padding): the number to
                         compare with mixlora-eval where MoE-PEFT is right
        loss_as_is       MoE-PEFT's inference mode untouched: its LoRA dropout stays on
        loss_train_mode  dropout and jitter off, inference_mode_=False: MoE-PEFT's switch FFN
                         returns its input unchanged in inference mode and routes only here
        loss_padded      causal only: all rows in one right-padded batch, MoE-PEFT's way (pads
                         count as targets)
        aux              mean over rows of the router's load-balancing loss (coefficient
                         applied) as MoE-PEFT computes it with dropout off; only for adapters
                         with a router loss (MoLA with router_loss on, MixLoRA)
  moe_peft_interop.py make BASE OUT_DIR
      Writes adapters the way MoE-PEFT's trainer saves them (save_adapter_weight: torch.save of
      get_adapter_weight_dict, adapter_config.json from config.export(), no task_name), with
      random non-zero weights: lora, mixlora, mixlora-dynamic, mixlora-switch, glue_sst2 (a
      top-k MixLoRA with its GLUE classifier head), loramoe (LoRA on q/v, dense LoRA mixtures on
      the MLP projections) and mola (top-2 LoRA mixtures on every target, router loss on).
      OUT_DIR/<name>/...

MoE-PEFT applies LoRA dropout even in inference mode (F.dropout(training=True) in its fused LoRA
operator, nn.Dropout modules never put in eval mode). "Dropout off" takes its non-fused path
(efficient_operator_=False) and puts every Dropout module in eval mode.
Runs on CPU in fp32 with the venv of scripts/setup-python-refs.sh; torch 2.11 works although
moe-peft pins torch < 2.6.
"""
import json
import math
import os
import sys

import torch

import moe_peft
from moe_peft.adapters import lora_config_factory


def load_model(base):
    return moe_peft.LLMModel.from_pretrained(base, device="cpu", load_dtype=torch.float32,
                                             compute_dtype=torch.float32)


def read_rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def dropouts_off(model):
    for module in _all_modules(model):
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    # Training-mode forwards (loss_train_mode) must not add router jitter either.
    for layer in model.model_.layers_:
        for moe in layer.mlp_.moes_.values():
            moe.jitter_noise_ = 0.0


def _all_modules(model):
    # MoE-PEFT keeps its LoRA modules in plain dicts, out of reach of Module.modules().
    seen = set()
    for layer in model.model_.layers_:
        attn, mlp = layer.state_dict()
        for linear in list(attn.values()) + list(mlp.values()):
            for lora in linear.loras_.values():
                if id(lora) not in seen:
                    seen.add(id(lora))
                    yield from lora.modules()
        for moe in layer.mlp_.moes_.values():
            dropout = getattr(moe, "dropout_", None)  # switch's ffn_dropout
            if isinstance(dropout, torch.nn.Module):
                yield from dropout.modules()


def forward(model, name, tokens, labels, masks, efficient, inference=True):
    batch = moe_peft.LLMModelInput(
        batch_configs_=[moe_peft.LLMBatchConfig(adapter_name_=name, batch_start_idx_=0, batch_end_idx_=len(tokens))],
        batch_tokens_=tokens, batch_labels_=labels, batch_masks_=masks, inference_mode_=inference,
        efficient_operator_=efficient)
    with torch.no_grad():
        return model.forward(batch)[0]


def load_adapter(model, adapter_dir, name, task):
    if not task:
        return model.load_adapter(adapter_dir, name)
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        config = lora_config_factory(json.load(f))
    config.adapter_name = name
    config.task_name = task
    weights = torch.load(os.path.join(adapter_dir, "adapter_model.bin"), map_location="cpu", weights_only=False)
    return model.init_adapter(config, weights)


def score_one(model, adapter_dir, data, task, index):
    name = load_adapter(model, adapter_dir, f"under_test_{index}", task)
    rows = read_rows(data)
    classification = "label" in rows[0]

    auxes = []

    def row_losses(efficient, inference=True):
        total, count = 0.0, 0
        auxes.clear()
        for row in rows:
            ids = row["input_ids"]
            labels = [row["label"]] if classification else [ids]
            output = forward(model, name, [ids], labels, [[1] * len(ids)], efficient, inference)
            if output.aux_loss is not None:
                auxes.append(output.aux_loss.item())
            weight = 1 if classification else len(ids) - 1
            total += output.loss.item() * weight
            count += weight
        return total / count

    result = {"loss_as_is": row_losses(True), "loss_as_is_again": row_losses(True)}
    dropouts_off(model)
    result["loss"] = row_losses(False)
    if auxes:
        result["aux"] = sum(auxes) / len(auxes)
    result["loss_again"] = row_losses(False)  # deterministic once dropout is off
    result["loss_train_mode"] = row_losses(False, inference=False)  # switch routes only here
    if not classification:
        width = max(len(r["input_ids"]) for r in rows)
        tokens = [r["input_ids"] + [0] * (width - len(r["input_ids"])) for r in rows]
        masks = [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows]
        result["loss_padded"] = forward(model, name, tokens, tokens, masks, False).loss.item()
    return result


def score(base, out, specs):
    results = {}
    for index, spec in enumerate(specs):
        adapter_dir, data, *task = spec.split(":", 2)
        # A fresh model per adapter: with a MixLoRA adapter loaded, MoE-PEFT's FeedForward takes
        # its MoE path for every adapter and skips the LoRAMoE / MoLA routers of another one
        # (collect_plugin_router_logtis then fails on their missing router logits).
        model = load_model(base)
        results[adapter_dir] = score_one(model, adapter_dir, data, task[0] if task else "", index)
    with open(out, "w") as f:
        json.dump(results, f, indent=1)


def make(base, out_dir):
    model = load_model(base)
    targets = ["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"]
    common = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.05, "target_modules": targets}
    adapters = {
        "lora": dict(common, peft_type="LORA"),
        "mixlora": dict(common, peft_type="MIXLORA", routing_strategy="mixlora", num_experts=4, top_k=2),
        "mixlora-dynamic": dict(common, peft_type="MIXLORA", routing_strategy="mixlora-dynamic", num_experts=4,
                                top_p=0.6, temperature=0.0),
        "mixlora-switch": dict(common, peft_type="MIXLORA", routing_strategy="mixlora-switch", num_experts=4,
                               expert_capacity=64),
        "glue_sst2": dict(common, peft_type="MIXLORA", routing_strategy="mixlora", num_experts=4, top_k=2,
                          task_name="glue:sst2"),
        "loramoe": dict(common, peft_type="LORAMOE", routing_strategy="loramoe", num_experts=3),
        "mola": dict(common, peft_type="MOLA", routing_strategy="mola", num_experts=4, top_k=2,
                     router_loss=True),
    }
    generator = torch.Generator().manual_seed(1234)
    for name, config in adapters.items():
        config = dict(config, name=name)
        lora_config = lora_config_factory(config)
        lora_config.adapter_name = name
        lora_config.check()
        model.init_adapter(lora_config)
        weights = model.get_adapter_weight_dict(name)
        with torch.no_grad():
            for key, tensor in weights.items():
                scale = 1.0 if "moe_gate" in key else (0.5 if key == "classifier" else 0.05)
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * scale)
        # As moe_peft.trainer.save_adapter_weight writes them.
        exported = model.adapter_configs_[name].export()
        exported["base_model_name_or_path"] = model.name_or_path_
        exported["task_type"] = "SEQ_CLS" if name == "glue_sst2" else "CAUSAL_LM"
        path = os.path.join(out_dir, name)
        os.makedirs(path, exist_ok=True)
        torch.save(model.get_adapter_weight_dict(name), os.path.join(path, "adapter_model.bin"))
        with open(os.path.join(path, "adapter_config.json"), "w") as f:
            json.dump(exported, f, indent=4)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "score":
        score(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif command == "make":
        make(*sys.argv[2:4])
    else:
        sys.exit(f"unknown command {command}")
