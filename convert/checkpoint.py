"""A Hugging Face Llama checkpoint on disk: config.json, its safetensors files (single or sharded)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConversionError
from .safetensors_reader import SafetensorsFile

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)


@dataclass(frozen=True)
class LlamaConfig:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict | None
    tie_word_embeddings: bool
    torch_dtype: str
    bos_token_id: int | None
    eos_token_ids: tuple[int, ...]


def _load_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConversionError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConversionError(f"{path.name} is not valid JSON ({e.msg if hasattr(e, 'msg') else e})") from None


def read_config(model_dir: Path) -> LlamaConfig:
    raw = _load_json(model_dir / "config.json", "config.json")
    architectures = raw.get("architectures") or []
    if raw.get("model_type") != "llama" or not any(a in SUPPORTED_ARCHITECTURES for a in architectures):
        found = ", ".join(architectures) or raw.get("model_type") or "unknown"
        raise ConversionError(f"unsupported architecture {found}: only LlamaForCausalLM checkpoints can be converted")
    try:
        heads = int(raw["num_attention_heads"])
        hidden = int(raw["hidden_size"])
        eos = raw.get("eos_token_id")
        rope_params = raw.get("rope_scaling") or raw.get("rope_parameters")
        rope_theta = raw.get("rope_theta") or (rope_params or {}).get("rope_theta") or 10000.0
        if rope_params and rope_params.get("rope_type", rope_params.get("type")) in (None, "default"):
            rope_params = None
        return LlamaConfig(
            hidden_size=hidden,
            intermediate_size=int(raw["intermediate_size"]),
            num_hidden_layers=int(raw["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(raw.get("num_key_value_heads") or heads),
            head_dim=int(raw.get("head_dim") or hidden // heads),
            vocab_size=int(raw["vocab_size"]),
            max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-5)),
            rope_theta=float(rope_theta),
            rope_scaling=rope_params,
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            torch_dtype=str(raw.get("torch_dtype") or raw.get("dtype") or "float16"),
            bos_token_id=raw.get("bos_token_id"),
            eos_token_ids=tuple(eos if isinstance(eos, list) else ([eos] if eos is not None else [])),
        )
    except KeyError as e:
        raise ConversionError(f"config.json lacks {e.args[0]}") from None


class Checkpoint:
    """Tensors by Hugging Face name, across one or several safetensors files."""

    def __init__(self, model_dir: Path):
        self.model_dir = Path(model_dir)
        self.config = read_config(self.model_dir)
        self._file_of: dict[str, SafetensorsFile] = {}
        for f in self._safetensors_files():
            sf = SafetensorsFile(f)
            for name in sf.entries:
                self._file_of[name] = sf

    def _safetensors_files(self) -> list[Path]:
        index = self.model_dir / "model.safetensors.index.json"
        if index.exists():
            weight_map = _load_json(index, "model.safetensors.index.json").get("weight_map", {})
            files = sorted(set(weight_map.values()))
            missing = [f for f in files if not (self.model_dir / f).exists()]
            if missing:
                raise ConversionError(f"shard {missing[0]} listed in model.safetensors.index.json is missing")
            return [self.model_dir / f for f in files]
        single = self.model_dir / "model.safetensors"
        if single.exists():
            return [single]
        if list(self.model_dir.glob("*.bin")) or list(self.model_dir.glob("*.pth")):
            raise ConversionError("only safetensors checkpoints are supported (found PyTorch .bin files)")
        raise ConversionError(f"no model.safetensors or model.safetensors.index.json in {self.model_dir}")

    @property
    def tensor_names(self) -> list[str]:
        return list(self._file_of)

    def has(self, name: str) -> bool:
        return name in self._file_of

    def shape(self, name: str) -> tuple[int, ...]:
        return self._file_of[name].entries[name].shape

    def source_dtype(self) -> str:
        """The dtype most weights are stored in (F32, F16 or BF16)."""
        counts: dict[str, int] = {}
        for name, sf in self._file_of.items():
            dtype = sf.entries[name].dtype
            counts[dtype] = counts.get(dtype, 0) + 1
        return max(counts, key=counts.get)

    def read(self, name: str) -> np.ndarray:
        return self._file_of[name].read(name)
