"""MixLoRA plugin (pip `mixlora` 0.2.3) side of the interop tests (tests/test_python_interop.cpp):

  plugin_interop.py BASE ADAPTER_DIR DATA.jsonl OUT.json

Loads ADAPTER_DIR with the plugin's own loader (mixlora.model.load_adapter_weights, which reads
only adapter_model.bin, with torch.load(weights_only=True)) into transformers' LlamaForCausalLM of
BASE, and writes the mean next-token cross-entropy per target token over the {input_ids} rows:
  loss          after model.eval() AND each expert's eval(): the plugin keeps its expert LoRAs in
                a plain dict (MixLoraSparseMoe.experts_), out of reach of Module.eval(), so their
                dropout stays on unless turned off by hand, as done here
  loss_as_is    after model.eval() only (expert dropout still on)
"""
import json
import sys

import torch
import transformers
from mixlora.model import inject_adapter_in_model, load_adapter_weights


def mean_loss(model, rows):
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            ids = torch.tensor([row["input_ids"]])
            logits = model(input_ids=ids).logits[0, :-1].float()
            total += torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
            count += ids.shape[1] - 1
    return total / count


def main(base, adapter_dir, data, out):
    torch.manual_seed(0)
    config, weights = load_adapter_weights(adapter_dir, device="cpu", dtype=torch.float32)
    model = transformers.LlamaForCausalLM.from_pretrained(base, torch_dtype=torch.float32)
    inject_adapter_in_model(model, config, weights)
    model.eval()
    with open(data) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    result = {"loss_as_is": mean_loss(model, rows)}
    for layer in model.model.layers:
        for moe in layer.mlp.mixlora_moes.values():
            for expert in moe.experts_.values():
                expert.eval()
    result["loss"] = mean_loss(model, rows)
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:5])
