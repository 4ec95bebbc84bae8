#!/usr/bin/env bash
# Installs every build and test dependency from Debian 12 packages. Safe to re-run: apt-get
# skips what is already installed. Needs root (or sudo) and Debian's package mirror.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libgloo-dev libopenblas0-openmp    # LibTorch 1.13 (CPU); OpenBLAS: ~12x faster fp32 matmul
  libsentencepiece-dev sentencepiece              # tokenizer library and the spm_encode/spm_train CLIs
  libpcre2-dev libutf8proc-dev                    # tokenizer.json: Unicode regexes (PCRE2), normal forms (utf8proc)
  libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev catch2
  python3-torch                                   # tests only: checks adapter_model.bin with torch.load(weights_only=True)
  clang-14 libclang-rt-14-dev                     # tests only: libFuzzer harnesses, ASan/UBSan and TSan builds
  clang-format-14                                 # tests only: scripts/check_format.sh
  chromium                                        # tests only: renders mixlora-report's HTML headless (cli_report_chromium.sh)
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
else
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# LibTorch multiplies through the system's libblas.so.3. OpenBLAS's OpenMP build shares
# LibTorch's OpenMP threads; its pthreads build (which Debian prefers when both are installed,
# and which earlier versions of this script installed) competes with them for the cores
# (src/mixlora/common/threads.h). Select the OpenMP build.
for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
  for target in /usr/lib/*/openblas-openmp/"$lib"; do
    [ -e "$target" ] || continue
    name="$lib-$(basename "$(dirname "$(dirname "$target")")")"   # e.g. libblas.so.3-x86_64-linux-gnu
    current=$(update-alternatives --query "$name" 2>/dev/null | sed -n 's/^Value: //p')
    if [ "$current" != "$target" ]; then
      echo "setup: selecting $target for $name (was ${current:-none})"
      $SUDO update-alternatives --set "$name" "$target"
    fi
  done
done
