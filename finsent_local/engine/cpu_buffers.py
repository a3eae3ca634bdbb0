"""Whether llama.cpp may put weights into its extra CPU buffer types (AMX tiles, repacked layouts).

What was measured (bench/extra_bufts.py, bench/RESULTS.md): on Intel Xeons with AMX the AMX path is
the fastest for prompts; on AMD EPYC (AVX2) the generic repacking is no faster. So `auto` turns extra
buffers on only where
  - the CPU has AMX (Linux reports amx_tile and amx_int8),
  - the model has quantized weights (AMX kernels take Q4_0/Q4_1/Q8_0/Q4_K/Q5_K/Q6_K/IQ4_XS), and
  - a one-time check in a child process ran a prompt decode with them, without crashing and with
    logits that follow the plain path's. A llama.cpp built by GCC 11/12 without
    llama_build/gcc_amx_tile_config.h faults there (its AMX tile configuration is never written):
    the check fails and the server keeps the plain path instead of crashing on the first request.
Verdicts are kept in <cache>/extra-bufts.json per llama.cpp build, CPU and model file type.

`python -m finsent_local.engine.cpu_buffers MODEL` runs the check's child side.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# llama.cpp's file types (general.file_type) whose weights stay in 16/32-bit floats.
_FLOAT_FILE_TYPES = {0, 1, 32}  # ALL_F32, MOSTLY_F16, MOSTLY_BF16
PROBE_TIMEOUT_S = 600
PROBE_TOKENS = 96  # a prompt-sized batch: the AMX kernels run for batches, not for one-token steps
# The two paths' logits (last row, whole vocabulary) must correlate at least this well. Kernels that sum
# in another order and lay activations out differently give 0.9999+ on the trained test model and
# 0.9991+ even on a random 16-layer model of the real shape (chaotic: its argmax flips between near-ties);
# a misconfigured kernel gives garbage, i.e. no correlation at all.
PROBE_MIN_CORRELATION = 0.99
# Test hook: the child crashes (SIGSEGV) after loading, the way a miscompiled build does.
PROBE_FAULT_ENV = "FINSENT_CPU_BUFFERS_PROBE_FAULT"


@dataclass(frozen=True)
class Decision:
    use: bool
    reason: str


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    buffers: dict[str, float]  # extra buffer type -> MiB of weights it took (empty: none was used)


def decide(setting: bool | None, model_path: str | Path, n_gpu_layers: int = 0) -> Decision:
    """True/False: as asked. None (auto): see the module's docstring."""
    if setting is not None:
        return Decision(setting, "asked for" if setting else "turned off")
    if n_gpu_layers != 0:
        return Decision(False, "layers run on the GPU")
    if not cpu_has_amx():
        return Decision(False, "no AMX on this CPU (repacking measured no faster without it)")
    file_type = gguf_file_type(model_path)
    if file_type is None or file_type in _FLOAT_FILE_TYPES:
        return Decision(False, "no quantized weights for the AMX kernels")
    key = _verdict_key(file_type)
    verdicts = _read_verdicts()
    if key not in verdicts:
        verdict = _verdict(probe(model_path))
        verdicts = _read_verdicts()
        verdicts[key] = {"use": verdict.use, "reason": verdict.reason}
        _write_verdicts(verdicts)
    return Decision(verdicts[key]["use"], verdicts[key]["reason"])


def _verdict(result: ProbeResult) -> Decision:
    if not result.ok:
        return Decision(False, f"the extra-buffer path failed its check on this CPU: {result.detail}")
    if not result.buffers:
        return Decision(False, "llama.cpp put no weights into an extra buffer type")
    taken = ", ".join(f"{name} {mib:.0f} MiB" for name, mib in sorted(result.buffers.items()))
    return Decision(True, f"checked on this CPU ({taken}; {result.detail})")


def cpu_info(cpuinfo: str | None = None) -> dict[str, str]:
    """The first CPU's fields from /proc/cpuinfo ("model name", "flags", ...); empty off Linux."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the end of the first CPU
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    return fields


def cpu_has_amx(cpuinfo: str | None = None) -> bool:
    return {"amx_tile", "amx_int8"} <= set(cpu_info(cpuinfo).get("flags", "").split())


# -- the check ---------------------------------------------------------------------------------
def probe(model_path: str | Path, timeout: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Run the child side on `model_path` and read what happened to it."""
    env = dict(os.environ, FINSENT_LLAMA_VERBOSE="1")  # the load log says which buffer types took weights
    try:
        done = subprocess.run([sys.executable, "-m", "finsent_local.engine.cpu_buffers", str(model_path)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return ProbeResult(False, f"no answer within {timeout:.0f} s", {})
    buffers = extra_buffer_sizes(done.stderr)
    if done.returncode < 0:
        return ProbeResult(False, f"the decode crashed (signal {-done.returncode})", buffers)
    lines = done.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return ProbeResult(False, f"the check failed (exit {done.returncode}: {tail[0][:200]})", buffers)
    return ProbeResult(done.returncode == 0, report["detail"], buffers)


def extra_buffer_sizes(load_log: str) -> dict[str, float]:
    """{buffer type: MiB} from llama.cpp's "load_tensors: AMX model buffer size = 1.23 MiB" lines,
    for the types other than the plain CPU ones."""
    sizes = {}
    for name, mib in re.findall(r"load_tensors:\s+(\S+) model buffer size\s*=\s*([\d.]+) MiB", load_log):
        if name not in ("CPU", "CPU_Mapped"):
            sizes[name] = float(mib)
    return sizes


def _child(model_path: str) -> int:
    from .llama_runtime import ContextOptions, LlamaContext, LlamaModel, ModelOptions

    last_logits = {}
    for extra in (False, True):
        model = LlamaModel(model_path, ModelOptions(use_extra_bufts=extra))
        if extra and os.environ.get(PROBE_FAULT_ENV) == "1":
            import ctypes

            ctypes.string_at(0)  # a real segmentation fault, as a miscompiled kernel gives
        context = LlamaContext(model, ContextOptions(n_ctx=256, n_batch=PROBE_TOKENS))
        words = model.tokenize("Quarterly revenue rose while margins narrowed and guidance was cut. ")
        tokens = (words * (PROBE_TOKENS // len(words) + 1))[:PROBE_TOKENS]
        last_logits[extra] = context.eval_sequence(tokens)[PROBE_TOKENS - 1]
        context.close()
        model.close()
    ok, detail = logits_agree(last_logits[False], last_logits[True])
    print(json.dumps({"ok": ok, "detail": detail}))
    return 0 if ok else 3


def logits_agree(plain, extra) -> tuple[bool, str]:
    """Whether the extra-buffer path's logits follow the plain path's (see PROBE_MIN_CORRELATION)."""
    import numpy as np

    plain, extra = np.asarray(plain, dtype=np.float64), np.asarray(extra, dtype=np.float64)
    if not np.isfinite(extra).all():
        return False, "logits not finite"
    correlation = float(np.corrcoef(plain, extra)[0, 1]) if extra.std() > 0 and plain.std() > 0 else 0.0
    return correlation >= PROBE_MIN_CORRELATION, f"logits correlate at {correlation:.5f} with the plain path's"


# -- the model file's type, without loading it --------------------------------------------------
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY, _UINT32 = 8, 9, 4


def gguf_file_type(path: str | Path) -> int | None:
    """general.file_type of a GGUF file (None if absent or not GGUF). Reads only the header: the
    tokenizer arrays before it are skipped by their lengths."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if data[:4] != b"GGUF":
                return None
            (n_kv,) = struct.unpack_from("<Q", data, 16)
            pos = 24
            for _ in range(n_kv):
                (key_len,) = struct.unpack_from("<Q", data, pos)
                key = data[pos + 8 : pos + 8 + key_len]
                pos += 8 + key_len
                (value_type,) = struct.unpack_from("<I", data, pos)
                pos += 4
                if key == b"general.file_type" and value_type == _UINT32:
                    return struct.unpack_from("<I", data, pos)[0]
                pos = _skip_value(data, pos, value_type)
    except (OSError, ValueError, struct.error, KeyError):
        return None
    return None


def _skip_value(data, pos: int, value_type: int) -> int:
    if value_type == _STRING:
        return pos + 8 + struct.unpack_from("<Q", data, pos)[0]
    if value_type == _ARRAY:
        item_type, count = struct.unpack_from("<IQ", data, pos)
        pos += 12
        if item_type in _SCALAR_SIZES:
            return pos + count * _SCALAR_SIZES[item_type]
        for _ in range(count):
            pos = _skip_value(data, pos, item_type)
        return pos
    return pos + _SCALAR_SIZES[value_type]


# -- verdicts ------------------------------------------------------------------------------------
def _verdicts_path() -> Path:
    from ..model_files import cache_dir

    return cache_dir() / "extra-bufts.json"


def _verdict_key(file_type: int) -> str:
    """The llama.cpp build (its library files), the CPU and the weights' file type."""
    from .llama_library import llama_cpp

    lib = Path(llama_cpp.__file__).parent / "lib"
    parts = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(lib.glob("*")) if p.is_file()]
    cpu = cpu_info()
    material = json.dumps([llama_cpp.__version__, parts, cpu.get("model name"), cpu.get("flags"), file_type])
    return hashlib.sha256(material.encode()).hexdigest()[:24]


def _read_verdicts() -> dict:
    try:
        return json.loads(_verdicts_path().read_text())
    except (OSError, ValueError):
        return {}


def _write_verdicts(verdicts: dict) -> None:
    from ..files import write_json_atomically

    path = _verdicts_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(path, verdicts)
    except OSError:
        pass  # a read-only cache only means the check runs again next time


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m finsent_local.engine.cpu_buffers MODEL.gguf", file=sys.stderr)
        sys.exit(2)
    sys.exit(_child(sys.argv[1]))
