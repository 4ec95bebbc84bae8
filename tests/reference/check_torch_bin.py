#!/usr/bin/python3
"""Checker for tests/test_torch_bin.cpp: reads what the C++ writer made, the way the MixLoRA
plugin does, and reports what Python saw as JSON for the C++ test to compare.

  check_torch_bin.py state  FILE.bin OUT.json   torch.load(FILE, weights_only=True), plus the
                                                ZIP layout (record names, methods, data offsets)
  check_torch_bin.py pickle FILE.pkl OUT.json   one bare pickle through the weights-only unpickler

Run with Debian's python3-torch (/usr/bin/python3). Exit status 3: torch is not importable.
"""
import json
import struct
import sys
import zipfile

try:
    import torch
    import torch._weights_only_unpickler as weights_only_unpickler
except ImportError as e:
    print(f"cannot import torch ({e}): install Debian's python3-torch (apt-get install python3-torch)",
          file=sys.stderr)
    sys.exit(3)


def tensor_report(name, t):
    # Raw bytes compare every dtype bit for bit, NaN and -0.0 included.
    raw = t.contiguous().reshape(-1).view(torch.uint8).tolist()
    return {
        "name": name,
        "dtype": str(t.dtype),
        "shape": list(t.shape),
        "stride": list(t.stride()),
        "storage_offset": t.storage_offset(),
        "requires_grad": t.requires_grad,
        "device": str(t.device),
        "hex": bytes(raw).hex(),
    }


def zip_report(path):
    with open(path, "rb") as f:
        data = f.read()
    records = []
    with zipfile.ZipFile(path) as z:
        bad = z.testzip()  # reads every record and checks its CRC-32
        for info in z.infolist():
            header = data[info.header_offset : info.header_offset + 30]
            signature, = struct.unpack("<I", header[:4])
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            extra = data[info.header_offset + 30 + name_len : info.header_offset + 30 + name_len + extra_len]
            records.append({
                "name": info.filename,
                "compress_type": info.compress_type,
                "local_signature_ok": signature == 0x04034B50,
                "data_offset": info.header_offset + 30 + name_len + extra_len,
                "size": info.file_size,
                "extra_tag": extra[:2].decode("latin-1"),
            })
        contents = {n: z.read(n).decode("latin-1") for n in z.namelist() if not n.split("/", 1)[1].startswith("data")}
    return {"testzip": bad, "records": records, "small_records": contents}


def check_state(path, out):
    state = torch.load(path, weights_only=True)
    report = {
        "torch_version": torch.__version__,
        "type": type(state).__name__,
        "tensors": [tensor_report(k, v) for k, v in state.items()],
        "zip": zip_report(path),
    }
    # PyTorch 2.1+ can also map the file and read storages at their record offsets.
    major_minor = tuple(int(x) for x in torch.__version__.split(".")[:2])
    if major_minor >= (2, 1):
        mapped = torch.load(path, weights_only=True, mmap=True)
        report["mmap_tensors"] = [tensor_report(k, v) for k, v in mapped.items()]
    with open(out, "w") as f:
        json.dump(report, f)


def check_pickle(path, out):
    with open(path, "rb") as f:
        value = weights_only_unpickler.load(f)
    with open(out, "w") as f:
        json.dump({"value": value}, f)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("state", "pickle"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    mode, path, out = sys.argv[1:]
    (check_state if mode == "state" else check_pickle)(path, out)


if __name__ == "__main__":
    main()
