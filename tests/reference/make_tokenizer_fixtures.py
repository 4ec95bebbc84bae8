#!/usr/bin/env python3
"""Reference fixtures for the tokenizer.json tests, made with PyPI `tokenizers`
(requirements/tokenizers.txt; scripts/setup-tokenizers-venv.sh prints the python to run this with).

  python make_tokenizer_fixtures.py                 # writes tests/fixtures/tokenizer/tiny-*.jsonl
  python make_tokenizer_fixtures.py --out DIR       # the same into DIR (the C++ test diffs them)
  python make_tokenizer_fixtures.py --make-tokenizers
        # retrains data/tokenizers/tiny-{bytelevel,metaspace}/tokenizer.json from repository text

Each fixture line: {"text", "ids" (add_special_tokens=False), "ids_special" (True), "decoded"
(skip_special_tokens=False), "decoded_skip" (True)}.
"""
import argparse
import glob
import json
import os
import sys

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = ["tiny-bytelevel", "tiny-metaspace"]
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Crafted texts: whitespace runs, CRLF, Unicode the tiny vocabularies lack (byte fallback, unk),
# NFD accents (NFC), special and added tokens inside text, lstrip/rstrip around "<mask>".
CRAFTED = [
    "", " ", "  ", "\n", "\r\n", "\t", "Hello world", " Hello world", "Hello  world  ", "Hello\n\nworld\r\n",
    "   leading and trailing   ", "a\u00a0b\u2003c\u3000d", "caf\u00e9 cafe\u0301 na\u0131ve \u00c5ngstr\u00f6m",
    "\u4f60\u597d\uff0c\u4e16\u754c", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645", "\u0928\u092e\u0938\u094d\u0924\u0947",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 family \U0001f44d\U0001f3fd", "x = f(y) + 12345 * 3.14159; // done",
    "def main():\n    return {'a': [1, 2, 3]}\n", "I'm sure you're right, it's 'quoted' and we'll see.",
    "WE'LL SHOUT IT'S LOUD", "<|bos|>text after bos", "text<|eos|>", "a<|pad|><|pad|>b", "<|bos|><|eos|>",
    "think: <think>hmm</think> done", "fill  <mask>  here", "<mask>", "x<mask>y", "<|bos", "|eos|>",
    "<unk> is plain text here", "\u2581already metaspace\u2581", "tab\tseparated\tvalues", "12 345 6789 0",
    "\u00bd \u2460 \u00b2 \u0663", "\ufeffBOM first", "zero\u200bwidth", "end with space ", "....!!!???",
]


def demo_texts():
    texts = []
    for path in sorted(glob.glob(os.path.join(ROOT, "data", "demo", "**", "*.jsonl"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        for row in rows[::80]:
            for key in ("instruction", "input", "output", "text"):
                value = row.get(key)
                if isinstance(value, str) and value:
                    texts.append(value)
    return texts


def corpus():
    lines = []
    for path in [os.path.join(ROOT, "README.md")] + sorted(
            glob.glob(os.path.join(ROOT, "data", "demo", "**", "*.jsonl"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            lines.extend(line.rstrip("\n") for line in f)
    return lines


def make_bytelevel():
    tok = Tokenizer(BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(pattern=__import__("tokenizers").Regex(QWEN_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(vocab_size=420, special_tokens=["<|bos|>", "<|eos|>", "<|pad|>"],
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    from tokenizers import AddedToken
    tok.add_tokens([AddedToken("<think>", special=False, normalized=False),
                    AddedToken("</think>", special=False, normalized=False),
                    AddedToken("<mask>", special=True, lstrip=True, rstrip=True, normalized=False)])
    bos = tok.token_to_id("<|bos|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|bos|> $A", pair="<|bos|> $A <|bos|> $B",
                                      special_tokens=[("<|bos|>", bos)])])
    config = {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>",
              "clean_up_tokenization_spaces": False, "tokenizer_class": "PreTrainedTokenizerFast"}
    return tok, config


def make_metaspace():
    # A LLaMA/Gemma-like BPE: "<0xNN>" byte fallback, <unk>, Metaspace pre-tokenizer.
    tok = Tokenizer(BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    trainer = BpeTrainer(vocab_size=480, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=100,
                         show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    # Byte pieces go into the model's vocabulary (not added tokens), after the trained ones.
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    next_id = max(vocab.values()) + 1
    for b in range(256):
        piece = "<0x%02X>" % b
        if piece not in vocab:
            vocab[piece] = next_id
            next_id += 1
    tok = Tokenizer.from_str(json.dumps(data))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> <s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_eos_token": False,
              "clean_up_tokenization_spaces": True, "tokenizer_class": "PreTrainedTokenizerFast"}
    return tok, config


def write_tokenizers():
    for name, make in [("tiny-bytelevel", make_bytelevel), ("tiny-metaspace", make_metaspace)]:
        out = os.path.join(ROOT, "data", "tokenizers", name)
        os.makedirs(out, exist_ok=True)
        tok, config = make()
        # Compact but one merge per line would be large; plain compact JSON keeps the file small.
        with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(json.loads(tok.to_str()), ensure_ascii=False, separators=(",", ":")))
            f.write("\n")
        with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
        print(f"wrote {out}", file=sys.stderr)


def write_fixtures(out_dir):
    texts = CRAFTED + demo_texts()
    for name in NAMES:
        tok = Tokenizer.from_file(os.path.join(ROOT, "data", "tokenizers", name, "tokenizer.json"))
        path = os.path.join(out_dir, name + ".jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for text in texts:
                ids = tok.encode(text, add_special_tokens=False).ids
                row = {"text": text, "ids": ids, "ids_special": tok.encode(text, add_special_tokens=True).ids,
                       "decoded": tok.decode(ids, skip_special_tokens=False),
                       "decoded_skip": tok.decode(ids, skip_special_tokens=True)}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"wrote {path} ({len(texts)} texts)", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "tokenizer"))
    parser.add_argument("--make-tokenizers", action="store_true")
    args = parser.parse_args()
    if args.make_tokenizers:
        write_tokenizers()
    os.makedirs(args.out, exist_ok=True)
    write_fixtures(args.out)


if __name__ == "__main__":
    main()
