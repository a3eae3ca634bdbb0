#!/usr/bin/env bash
# Creates .venv and installs FinSent Local into it.
#   bash setup.sh          the app (server, converter, CLI, finsent eval)
#   bash setup.sh --dev    plus everything the tests need (torch CPU, transformers, the Llama 3 tokenizer, ...)
# llama-cpp-python is compiled from source on first install (about 12 minutes on 2 cores; the wheel is
# kept for the next time). For NVIDIA GPUs: CMAKE_ARGS="-DGGML_CUDA=on -DLLAVA_BUILD=OFF" bash setup.sh
# (see README).
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
else
  "${PIP[@]}" install -q -e ".[engine,eval]"
fi
echo "FinSent Local is installed in .venv (run: .venv/bin/finsent --help)"
