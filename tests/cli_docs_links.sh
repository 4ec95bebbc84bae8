# Every documentation path the repository mentions exists: "docs/<page>.md" in code, scripts,
# tests and docs, every relative Markdown link [text](path) in the repository's .md files, and
# every #anchor of such a link (GitHub's heading slugs). Fails naming each broken reference.
set -euo pipefail
SRC=$2
command -v python3 >/dev/null || { echo "skipped: needs python3"; exit 0; }
python3 - "$SRC" <<'EOF'
import os, re, sys

root = os.path.abspath(sys.argv[1])
SKIP_DIRS = {".git", "node_modules", "__pycache__"}
CODE_DIRS = ["src", "apps", "scripts", "tests", "fuzz", "docs"]
CODE_FILES = ["README.md", "CONTRIBUTING.md", "CMakeLists.txt"]


def walk(top):
    for base, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith("build")]
        for name in files:
            yield os.path.join(base, name)


def text_of(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (UnicodeDecodeError, OSError):
        return None  # binary files hold no references


def rel(path):
    return os.path.relpath(path, root)


problems = {}  # (file, line, missing path or anchor) -> message; one report per reference

# 1. "docs/<page>.md" named anywhere in code, scripts, tests and docs: relative to the root.
doc_ref = re.compile(r"(?<![\w./-])docs/[\w./-]*?[\w-]+\.md")
files = [os.path.join(root, f) for f in CODE_FILES if os.path.exists(os.path.join(root, f))]
for d in CODE_DIRS:
    if os.path.isdir(os.path.join(root, d)):
        files += list(walk(os.path.join(root, d)))
for path in files:
    text = text_of(path)
    if text is None:
        continue
    for number, line in enumerate(text.splitlines(), 1):
        for ref in doc_ref.findall(line):
            if not os.path.isfile(os.path.join(root, ref)):
                problems[(rel(path), number, os.path.normpath(ref))] = f"{rel(path)}:{number}: {ref} does not exist"


# 2. Relative Markdown links (and their anchors) in every .md file of the repository.
def github_slug(heading):
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def outside_code(text):
    """(line number, line with inline code blanked, raw line) outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        marker = re.match(r"(`{3,}|~{3,})", stripped)
        if marker:
            if fence is None:
                fence = marker.group(1)[0] * 3
            elif stripped.startswith(fence):
                fence = None
            continue
        if fence is None:
            blanked = re.sub(r"(`+)(?:(?!\1).)+?\1", lambda m: " " * len(m.group(0)), line)
            yield number, blanked, line


HEADING = re.compile(r"#{1,6}\s+(.*?)\s*#*\s*$")
anchors_cache = {}


def anchors(path):
    """The anchors GitHub gives the headings of a Markdown file (code spans count as text)."""
    if path not in anchors_cache:
        seen, slugs = {}, set()
        for _, _, raw in outside_code(text_of(path) or ""):
            m = HEADING.match(raw)
            if not m:
                continue
            slug = github_slug(m.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            slugs.add(slug if count == 0 else f"{slug}-{count}")
        anchors_cache[path] = slugs
    return anchors_cache[path]


link = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
for path in walk(root):
    if not path.endswith(".md"):
        continue
    text = text_of(path)
    if text is None:
        continue
    for number, line, _ in outside_code(text):
        for target in link.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
                continue  # https:, mailto:, ...
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            where = f"{rel(path)}:{number}: ({target})"
            if not os.path.exists(dest):
                problems[(rel(path), number, rel(dest))] = f"{where} {rel(dest)} does not exist"
            elif anchor and dest.endswith(".md") and anchor.lower() not in anchors(dest):
                problems[(rel(path), number, target)] = f"{where} no heading with anchor #{anchor} in {rel(dest)}"

for problem in problems.values():
    print(problem)
if problems:
    print(f"{len(problems)} broken documentation reference(s)")
    sys.exit(1)
print("every documentation reference resolves")
EOF
