"""Writes torch.save files the way Python users make them, for tests/test_torch_bin_reader.cpp:

  write_torch_bin.py OUT_DIR

OUT_DIR/python.bin          torch.save of a dict mixing what adapter files hold: nn.Parameters
                            (MoE-PEFT saves lora_A.weight as Parameters), a bf16 tensor, a
                            transposed (non-contiguous) tensor, two views of one storage, an int64
OUT_DIR/state_dict.bin      torch.save(nn.Linear(3, 2).state_dict()): an OrderedDict with _metadata
OUT_DIR/expected.safetensors  every tensor above, contiguous, under "<file>/<name>"
"""
import sys

import torch
from safetensors.torch import save_file

out = sys.argv[1]
torch.manual_seed(0)
base = torch.randn(4, 6)
tensors = {
    "param.lora_A.weight": torch.nn.Parameter(torch.randn(2, 5)),
    "bf16": torch.randn(3, 3).to(torch.bfloat16),
    "transposed": torch.randn(3, 4).t(),
    "view.whole": base,
    "view.rows": base[1:3],
    "view.column": base[:, 2],
    "int64": torch.arange(7, dtype=torch.int64),
    "scalar": torch.tensor(2.5),
}
torch.save(tensors, f"{out}/python.bin")
linear = torch.nn.Linear(3, 2)
torch.save(linear.state_dict(), f"{out}/state_dict.bin")
expected = {f"python.bin/{k}": v.detach().contiguous().clone() for k, v in tensors.items()}
expected.update({f"state_dict.bin/{k}": v.detach().contiguous().clone() for k, v in linear.state_dict().items()})
save_file(expected, f"{out}/expected.safetensors")
