"""Build and install llama-cpp-python (it compiles llama.cpp) the way this project needs it.

    .venv/bin/python llama_build/install.py        (setup.sh runs it; standard library only)

Why not a plain `pip install`:
- GCC older than 13 on x86-64 builds llama.cpp's AMX kernels with a tile configuration that is mostly
  never written (see gcc_amx_tile_config.h), and quantized models then crash on Intel CPUs with AMX.
  With such a compiler the header is forced into the build, which makes the path correct.
- pip caches the wheel it built under the package's version only: a wheel built with other CMAKE_ARGS,
  another compiler or, with llama.cpp's default -march=native, for another CPU would be reused as is.
  Wheels are kept here under a key made of everything that changes the build
  (~/.cache/finsent-local/llama-cpp-wheels/<key>/), and the key of the installed build is written into
  the virtual environment, so a rebuild happens exactly when one of those changes.

Environment: CMAKE_ARGS (passed to llama.cpp's CMake; setup.sh defaults it to -DLLAVA_BUILD=OFF),
CXX (the C++ compiler: default c++, on Windows cl, i.e. MSVC; clang-cl works too), FINSENT_CACHE_DIR (default: the project's cache folder, e.g.
~/.cache/finsent-local),
LLAMA_CPP_SOURCE (build from this sdist file instead of downloading the pinned version: offline machines).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
TILE_CONFIG_HEADER = Path(__file__).resolve().parent / "gcc_amx_tile_config.h"
PACKAGE = "llama-cpp-python"


def pinned_requirement() -> str:
    """The llama-cpp-python requirement from pyproject.toml (one place for the version)."""
    match = re.search(rf'"({PACKAGE}==[^"]+)"', (PROJECT / "pyproject.toml").read_text())
    if not match:
        raise SystemExit(f"pyproject.toml does not pin {PACKAGE}")
    return match.group(1)


def compiler_macros(cxx: str) -> dict[str, str]:
    """The compiler's predefined macros: they say which compiler, version and target it is, whatever its
    --version line looks like. GCC and clang: `cxx -dM -E`; clang-cl: the same through /clang:; MSVC
    (cl), which cannot list them: _MSC_VER and the target from its banner. Empty when there is no such
    compiler."""
    name = Path(cxx).name.lower().removesuffix(".exe")
    attempts = [[cxx, "-dM", "-E", "-x", "c++", os.devnull]]
    if name == "clang-cl":
        attempts.insert(0, [cxx, "/clang:-dM", "/clang:-E", "/TP", os.devnull])
    for command in attempts:
        out = _run(command).stdout if name != "cl" else ""
        macros = {}
        for line in out.splitlines():
            parts = line.split(maxsplit=2)
            if len(parts) >= 2 and parts[0] == "#define":
                macros[parts[1]] = parts[2] if len(parts) == 3 else ""
        if macros:
            return macros
    if name == "cl":
        return msvc_macros(_run([cxx]).stderr)
    return {}


def _run(command: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return subprocess.CompletedProcess(command, 1, "", "")


def msvc_macros(banner: str) -> dict[str, str]:
    """The macros MSVC would define, from the banner `cl` prints: "Microsoft (R) C/C++ Optimizing
    Compiler Version 19.38.33135 for x64" gives _MSC_VER 1938 and _M_X64."""
    found = re.search(r"Version (\d+)\.(\d+)\.\d+(?:\.\d+)? for (\w+)", banner)
    if not found:
        return {}
    major, minor, target = found.groups()
    macros = {"_MSC_VER": f"{major}{int(minor):02d}"}
    macros.update({"x64": {"_M_X64": "100", "_M_AMD64": "100"}, "x86": {"_M_IX86": "600"},
                   "ARM64": {"_M_ARM64": "1"}}.get(target, {}))
    return macros


def compiler_description(macros: dict[str, str]) -> str:
    """Which compiler, for the build key: clang-cl and MSVC builds differ from clang and GCC ones."""
    if "__clang__" in macros:
        version = macros.get("__clang_version__", "?").strip(chr(34)).strip()
        return f"clang-cl {version}" if "_MSC_VER" in macros else f"clang {version}"
    if "__GNUC__" in macros:
        return f"gcc {macros['__GNUC__']}.{macros.get('__GNUC_MINOR__', '0')}.{macros.get('__GNUC_PATCHLEVEL__', '0')}"
    if "_MSC_VER" in macros:
        target = "x64" if "_M_X64" in macros else "arm64" if "_M_ARM64" in macros else "x86" if "_M_IX86" in macros else "?"
        return f"msvc {macros['_MSC_VER']} {target}"
    return "unknown" if macros else ""


def needs_tile_config_fix(macros: dict[str, str]) -> bool:
    """True for GCC < 13 targeting x86-64 (clang, clang-cl, MSVC and GCC 13+ emit the tile configuration
    correctly; the fix is a GCC `-include`, which MSVC would not take anyway)."""
    return ("__x86_64__" in macros and "__GNUC__" in macros and "__clang__" not in macros
            and "_MSC_VER" not in macros and int(macros["__GNUC__"]) < 13)


def tile_config_flags(macros: dict[str, str], header: Path) -> str:
    """The CXXFLAGS the build adds for this compiler: the tile-configuration header for GCC < 13 on
    x86-64, nothing otherwise."""
    return f"-include {header}" if needs_tile_config_fix(macros) else ""


def default_compiler() -> str:
    """CXX when it is not set: MSVC's cl on Windows (what CMake's Visual Studio generator uses), c++ elsewhere."""
    return "cl" if sys.platform == "win32" else "c++"


def cpu_flags() -> str:
    """The CPU's instruction-set flags (Linux), which -march=native turns into the build. (Not
    finsent_local.cpu_buffers.cpu_info: this script runs before the package and its dependencies exist.)"""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return platform.processor()


def build_settings(cmake_args: str, cxx: str, macros: dict[str, str] | None = None,
                   flags: str | None = None) -> dict:
    """Everything that makes one llama.cpp build differ from another."""
    macros = compiler_macros(cxx) if macros is None else macros
    fix = needs_tile_config_fix(macros)
    native = "-DGGML_NATIVE=OFF" not in cmake_args.replace(" ", "").upper()
    return {
        "requirement": os.environ.get("LLAMA_CPP_SOURCE") or pinned_requirement(),
        "cmake_args": cmake_args,
        "compiler": compiler_description(macros),
        "machine": platform.machine(),
        "tile_config_fix": hashlib.sha256(TILE_CONFIG_HEADER.read_bytes()).hexdigest()[:16] if fix else None,
        # A -march=native build only runs on CPUs with the same instruction sets.
        "cpu_flags": hashlib.sha256((flags if flags is not None else cpu_flags()).encode()).hexdigest()[:16]
        if native else None,
    }


def build_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _load_cache_folder_rule():
    """finsent_local/cache_folder.py, by its path: the package is not installed yet (and importing it
    would need its dependencies), but the wheels go into the folder the package uses."""
    spec = importlib.util.spec_from_file_location("finsent_cache_folder", PROJECT / "finsent_local" / "cache_folder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cache_dir = _load_cache_folder_rule().cache_dir


def marker_path() -> Path:
    """Where the virtual environment records which build it has."""
    return Path(sys.prefix) / "finsent-llama-build.json"


def build_wheel(settings: dict, folder: Path, cxx: str, macros: dict[str, str]) -> Path:
    env = dict(os.environ, CMAKE_ARGS=settings["cmake_args"], CXX=cxx)
    print(f"llama-cpp-python: compiling llama.cpp (4-12 minutes on 2 cores; kept in {folder})", flush=True)
    with tempfile.TemporaryDirectory(prefix="llama-wheel-") as tmp:
        if settings["tile_config_fix"]:
            # CMake reads CXXFLAGS once, when it configures; no other package here is built from source.
            # The header is copied beside the build: CXXFLAGS is split at spaces, the project's path may have some.
            header = Path(tmp) / TILE_CONFIG_HEADER.name
            shutil.copyfile(TILE_CONFIG_HEADER, header)
            env["CXXFLAGS"] = f"{os.environ.get('CXXFLAGS', '')} {tile_config_flags(macros, header)}".strip()
            print(f"llama-cpp-python: {settings['compiler']} needs the AMX tile-configuration fix; building with it")
        # --no-cache-dir: pip's own wheel cache could hand back a wheel built with other settings.
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                        "--no-cache-dir", "--no-binary", PACKAGE, settings["requirement"], "-w", tmp],
                       env=env, check=True)
        (wheel,) = Path(tmp).glob("*.whl")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / wheel.name
        shutil.move(str(wheel), str(folder / (wheel.name + ".part")))
        os.replace(folder / (wheel.name + ".part"), target)
    (folder / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return target


def main() -> int:
    cmake_args = os.environ.get("CMAKE_ARGS", "-DLLAVA_BUILD=OFF")
    cxx = os.environ.get("CXX") or default_compiler()
    macros = compiler_macros(cxx)
    settings = build_settings(cmake_args, cxx, macros)
    key = build_key(settings)
    marker = marker_path()
    try:
        installed = json.loads(marker.read_text()).get("key")
    except (OSError, ValueError):
        installed = None
    if installed == key:
        return 0
    folder = cache_dir() / "llama-cpp-wheels" / key
    wheels = sorted(folder.glob("*.whl"))
    try:
        wheel = wheels[0] if wheels else build_wheel(settings, folder, cxx, macros)
    except subprocess.CalledProcessError:
        print("llama-cpp-python could not be built: pip's messages above say why (a C/C++ compiler and "
              "CMake are needed)", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"llama-cpp-python: cannot keep the built wheel in {folder}: {e.strerror or e} "
              "(set FINSENT_CACHE_DIR to a writable folder)", file=sys.stderr)
        return 1
    try:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                        "--force-reinstall", str(wheel)], check=True)
    except subprocess.CalledProcessError:
        print(f"llama-cpp-python: installing {wheel} failed: pip's messages above say why (to build it "
              f"again, delete {folder})", file=sys.stderr)
        return 1
    marker.write_text(json.dumps({"key": key, "wheel": str(wheel), **settings}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
