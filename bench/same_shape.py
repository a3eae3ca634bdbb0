"""A random checkpoint with Llama-FinSent-S's exact shapes (fp16 safetensors, tied embeddings), for
benchmarks: the real weights cannot be downloaded here, and speed/size depend only on the shapes.
In a smoke run (bench/smoke_mode.py) it is the tests' small trained checkpoint instead."""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

from smoke_mode import SMOKE

ROOT = Path(__file__).resolve().parent
WORK = Path(os.environ.get("FINSENT_BENCH_WORK") or ROOT / ".work")
sys.path.insert(0, str(ROOT.parent / "tests"))

FINSENT_S_SHAPE = dict(hidden=2048, intermediate=4916, layers=16, heads=32, kv_heads=8, vocab=128256)


def _tensor_shapes(s: dict) -> dict[str, tuple[int, int] | tuple[int]]:
    head_dim = s["hidden"] // s["heads"]
    shapes: dict = {"model.embed_tokens.weight": (s["vocab"], s["hidden"]), "model.norm.weight": (s["hidden"],)}
    for i in range(s["layers"]):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (s["hidden"],),
            p + "post_attention_layernorm.weight": (s["hidden"],),
            p + "self_attn.q_proj.weight": (s["heads"] * head_dim, s["hidden"]),
            p + "self_attn.k_proj.weight": (s["kv_heads"] * head_dim, s["hidden"]),
            p + "self_attn.v_proj.weight": (s["kv_heads"] * head_dim, s["hidden"]),
            p + "self_attn.o_proj.weight": (s["hidden"], s["heads"] * head_dim),
            p + "mlp.gate_proj.weight": (s["intermediate"], s["hidden"]),
            p + "mlp.up_proj.weight": (s["intermediate"], s["hidden"]),
            p + "mlp.down_proj.weight": (s["hidden"], s["intermediate"]),
        })
    return shapes


def _write_safetensors(path: Path, shapes: dict, seed: int = 0) -> None:
    """Stream random fp16 tensors into one safetensors file (never the whole model in memory)."""
    rng = np.random.default_rng(seed)
    header, offset = {}, 0
    for name, shape in shapes.items():
        nbytes = int(np.prod(shape)) * 2
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for shape in shapes.values():
            if len(shape) == 1:
                f.write(np.ones(shape, dtype=np.float16).tobytes())
            else:
                f.write((rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16).tobytes())


def same_shape_checkpoint() -> Path:
    import fixture_models

    if SMOKE:  # the trained one: llama-cpp-python's own generation fails on the 64-wide tiny checkpoints
        return fixture_models.trained_checkpoint()
    path = WORK / "finsent-s-random"
    if (path / ".complete").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    s = FINSENT_S_SHAPE
    variant = fixture_models.TinyVariant("bench", tied=True, dtype="float16", sharded=False, hidden=s["hidden"],
                                         intermediate=s["intermediate"], layers=s["layers"], heads=s["heads"],
                                         kv_heads=s["kv_heads"])
    (path / "config.json").write_text(json.dumps(fixture_models.llama_config_dict(variant, s["vocab"]), indent=2))
    tokenizer = fixture_models.llama3_tokenizer_dir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer / name, path / name)
    _write_safetensors(path / "model.safetensors", _tensor_shapes(s))
    (path / ".complete").write_text("ok")
    return path
