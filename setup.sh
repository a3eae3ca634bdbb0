#!/usr/bin/env bash
# Creates .venv and installs FinSent Local into it.
#   bash setup.sh          the app (server, converter, CLI, finsent eval)
#   bash setup.sh --tune   plus `finsent tune` (torch, transformers, PEFT): PyTorch's CPU build where no
#                          NVIDIA GPU is found (Linux x86_64), PyPI's default (CUDA) build otherwise;
#                          TORCH_INDEX_URL chooses the index yourself (empty: PyPI's default)
#   bash setup.sh --dev    plus everything the tests need (torch CPU, transformers, the Llama 3 tokenizer, ...)
# llama-cpp-python is compiled from source on first install (about 12 minutes on 2 cores; the wheel is
# kept for the next time). For NVIDIA GPUs: CMAKE_ARGS="-DGGML_CUDA=on -DLLAVA_BUILD=OFF" bash setup.sh
# (see README).
set -euo pipefail

# PyPI's torch for Linux x86_64 is the CUDA build, with about 15 nvidia-* packages (several GB) that a
# CPU-only machine never uses; PyTorch's own CPU index has the CPU build. Elsewhere (macOS, Windows,
# aarch64) PyPI's torch is already the CPU (or MPS) build. Prints the index to install torch from, or
# nothing for PyPI's default.
torch_index_url() {
  if [ -n "${TORCH_INDEX_URL+set}" ]; then
    echo "$TORCH_INDEX_URL"
  elif [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "https://download.pytorch.org/whl/cpu"
  fi
}
# The tests read the function above without running the set-up.
if [ "${FINSENT_SETUP_FUNCTIONS_ONLY:-}" = 1 ]; then return 0 2>/dev/null || exit 0; fi

cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip setuptools wheel

# The multimodal (llava/mtmd) library is not used: skip building it.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}"
# llama-cpp-python (llama.cpp) is built by llama_build/install.py: with the fix for GCC < 13's AMX tile
# configuration, and rebuilt whenever CMAKE_ARGS, the compiler or the CPU change (pip's own cache would
# hand back a wheel built with other settings). Built wheels are kept in ~/.cache/finsent-local.
.venv/bin/python llama_build/install.py

if [ "${1:-}" = "--dev" ]; then
  "${PIP[@]}" install -q -e ".[engine,test]"
  # Meta's llama-models ships the real Llama 3 tokenizer (tokenizer.model); its own dependencies are
  # not needed (only the file and the special-token list are used), so it goes in without them.
  "${PIP[@]}" install -q --no-deps "llama-models==0.3.0"
  # Debian packages the tests drive: headless LibreOffice Calc through python3-uno (the WEBSERVICE test),
  # Chromium with its WebDriver (the web page's and add-in's tests; test tools cannot download browsers here).
  debs=()
  { command -v soffice >/dev/null && /usr/bin/python3 -c "import uno" 2>/dev/null; } \
    || debs+=(libreoffice-calc-nogui python3-uno)
  { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || debs+=(chromium chromium-driver fonts-dejavu-core)
  # The Excel add-in's tests: its functions.js under Node, and certutil to trust the local CA in Chromium.
  command -v node >/dev/null || debs+=(nodejs)
  command -v certutil >/dev/null || debs+=(libnss3-tools)
  if [ "${#debs[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          "${debs[@]}" >/dev/null; } \
        || echo "note: ${debs[*]} could not be installed; the tests that need them will be skipped"
    else
      echo "note: install ${debs[*]} (Debian/Ubuntu) to run the LibreOffice and browser tests"
    fi
  fi
elif [ "${1:-}" = "--tune" ]; then
  if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    index=$(torch_index_url)
    if [ -n "$index" ]; then
      echo "Installing PyTorch's CPU build from $index (no NVIDIA GPU found; TORCH_INDEX_URL= bash setup.sh --tune takes PyPI's CUDA build)"
      "${PIP[@]}" install -q torch --index-url "$index"
    fi
  fi
  "${PIP[@]}" install -q -e ".[engine,eval,tune]"
else
  "${PIP[@]}" install -q -e ".[engine,eval]"
fi
echo "FinSent Local is installed in .venv (run: .venv/bin/finsent --help)"
