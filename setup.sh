#!/usr/bin/env bash
# Creates .venv and installs FinSent Local into it.
#   bash setup.sh          the app (server, converter, CLI)
#   bash setup.sh --dev    plus everything the tests need (torch CPU, transformers, the Llama 3 tokenizer, ...)
# llama-cpp-python is compiled from source on first install (about 12 minutes on 2 cores; pip caches the
# wheel afterwards). For NVIDIA GPUs: CMAKE_ARGS="-DGGML_CUDA=on" bash setup.sh (see README).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip setuptools wheel

# The multimodal (llava/mtmd) library is not used: skip building it.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}"

if [ "${1:-}" = "--dev" ]; then
  "${PIP[@]}" install -q -e ".[test]"
  # Meta's llama-models ships the real Llama 3 tokenizer (tokenizer.model); its own dependencies are
  # not needed (only the file and the special-token list are used), so it goes in without them.
  "${PIP[@]}" install -q --no-deps "llama-models==0.3.0"
  # The spreadsheet test drives headless LibreOffice Calc through Debian's python3-uno.
  if ! { command -v soffice >/dev/null && /usr/bin/python3 -c "import uno" 2>/dev/null; }; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          libreoffice-calc-nogui python3-uno >/dev/null; } \
        || echo "note: LibreOffice could not be installed; its test will be skipped"
    else
      echo "note: install libreoffice-calc-nogui and python3-uno (Debian/Ubuntu) to run the LibreOffice test"
    fi
  fi
else
  "${PIP[@]}" install -q -e .
fi
echo "FinSent Local is installed in .venv (run: .venv/bin/finsent --help)"
