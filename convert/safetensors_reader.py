"""A small torch-free safetensors reader: header parsing plus memory-mapped, one-tensor-at-a-time reads.

A file is `u64 header length | JSON header | data`. Each tensor is read from the file on its own (no
memory map: mapped pages stay in the process's resident set until unmapped), so converting a 1.8 GB
checkpoint holds only the tensor being converted.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConversionError

# safetensors dtype -> numpy dtype used to view the raw bytes. BF16 has no numpy dtype: viewed as
# uint16 and widened by `bf16_to_f32`.
_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}
_MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # absolute offset in the file
    end: int


def bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


class SafetensorsFile:
    def __init__(self, path: Path):
        self.path = Path(path)
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise ConversionError(f"{self.path.name}: not a safetensors file (too short)")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > min(_MAX_HEADER_BYTES, size - 8):
                raise ConversionError(f"{self.path.name}: corrupt safetensors header")
            try:
                header = json.loads(f.read(header_len))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise ConversionError(f"{self.path.name}: corrupt safetensors header") from None
        data_start = 8 + header_len
        self.entries: dict[str, TensorEntry] = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = info.get("dtype")
            if dtype not in _DTYPES:
                raise ConversionError(
                    f"{self.path.name}: tensor {name} has dtype {dtype}; supported: F32, F16, BF16"
                )
            begin, end = info["data_offsets"]
            shape = tuple(int(d) for d in info["shape"])
            expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(_DTYPES[dtype]).itemsize
            if end - begin != expected or data_start + end > size:
                raise ConversionError(f"{self.path.name}: tensor {name} is truncated or corrupt")
            self.entries[name] = TensorEntry(name, dtype, shape, data_start + begin, data_start + end)

    def read(self, name: str) -> np.ndarray:
        """The tensor as F32 or F16 (BF16 is widened to F32)."""
        entry = self.entries[name]
        dtype = np.dtype(_DTYPES[entry.dtype])
        with open(self.path, "rb") as f:
            f.seek(entry.begin)
            raw = np.fromfile(f, dtype=dtype, count=(entry.end - entry.begin) // dtype.itemsize)
        raw = raw.reshape(entry.shape)
        if entry.dtype == "BF16":
            return bf16_to_f32(raw)
        return raw
