"""PEFT (0.13.2) side of the interop tests (tests/test_python_interop.cpp):

  peft_interop.py BASE ADAPTER_DIR EXPECTED.safetensors OUT.json

Loads ADAPTER_DIR (our plain LoRA or DoRA adapter) with PeftModel.from_pretrained over
transformers' AutoModelForCausalLM of BASE (LLaMA, or Phi-3 with its fused projections), runs the "input_ids" of EXPECTED.safetensors ([rows, T],
no padding) and compares with its "logits" (ours, [rows, T, vocab]). Writes
{max_abs_diff, max_rel_diff (relative to max |logit|), magnitude_keys (DoRA magnitudes PEFT loaded)}.
"""
import json
import sys

import torch
import transformers
from peft import PeftModel
from safetensors.torch import load_file


def main(base, adapter_dir, expected_path, out):
    expected = load_file(expected_path)
    model = transformers.AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=expected["input_ids"]).logits.float()
    ours = expected["logits"]
    diff = (logits - ours).abs().max().item()
    magnitudes = [n for n, _ in model.named_parameters() if "lora_magnitude_vector" in n]
    with open(out, "w") as f:
        json.dump({"max_abs_diff": diff, "max_rel_diff": diff / ours.abs().max().item(),
                   "magnitude_keys": len(magnitudes)}, f)


if __name__ == "__main__":
    main(*sys.argv[1:5])
