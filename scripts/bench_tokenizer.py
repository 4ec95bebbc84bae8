#!/usr/bin/env python3
"""PyPI `tokenizers` side of scripts/bench_tokenizer.sh, and the maker of its inputs.

  bench_tokenizer.py make-inputs OUT_DIR        # demo.txt (data/demo/** text), text10mb.txt
  bench_tokenizer.py time TOKENIZER_JSON FILE REPEATS
      # one JSON line like mixlora-tokenize --bench: encode CPU seconds per pass, one thread
      # (encode_batch of every line with RAYON_NUM_THREADS=1: tokenizers' fastest single-thread path)
"""
import glob
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_inputs(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    lines = []
    for path in sorted(glob.glob(os.path.join(ROOT, "data", "demo", "**", "*"), recursive=True)):
        if os.path.isdir(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            if path.endswith(".jsonl"):
                for line in f:
                    if line.strip():
                        row = json.loads(line)
                        lines += [v.replace("\n", " ") for v in row.values() if isinstance(v, str) and v]
            else:
                lines += [line.rstrip("\n") for line in f]
    with open(os.path.join(out_dir, "demo.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    # 10 MB of varied English and code: the Python standard library's sources, in sorted order.
    stdlib = os.path.dirname(os.__file__)
    out, size = [], 0
    for path in sorted(glob.glob(os.path.join(stdlib, "**", "*.py"), recursive=True)):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        out.append(text)
        size += len(text.encode("utf-8"))
        if size >= 10 * 1000 * 1000:
            break
    text = "".join(out).encode("utf-8")[: 10 * 1000 * 1000].decode("utf-8", errors="ignore")
    with open(os.path.join(out_dir, "text10mb.txt"), "w", encoding="utf-8") as f:
        f.write(text)


def time_encode(tokenizer_json, path, repeats):
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tokenizer_json)
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    seconds, wall, tokens = [], [], 0
    for _ in range(repeats):
        cpu_start, start = time.process_time(), time.perf_counter()
        encodings = tok.encode_batch(lines, add_special_tokens=False)
        seconds.append(time.process_time() - cpu_start)
        wall.append(time.perf_counter() - start)
        tokens = sum(len(e.ids) for e in encodings)
    print(json.dumps({"lines": len(lines), "tokens": tokens, "seconds": seconds, "wall_seconds": wall}))


if __name__ == "__main__":
    if sys.argv[1] == "make-inputs":
        make_inputs(sys.argv[2])
    else:
        time_encode(sys.argv[2], sys.argv[3], int(sys.argv[4]))
