"""Output types the converter offers, and what each needs from the tensor shapes."""

from __future__ import annotations

from dataclasses import dataclass

from gguf import GGMLQuantizationType, LlamaFileType


@dataclass(frozen=True)
class OutType:
    name: str
    file_type: LlamaFileType
    # Rows of a quantized tensor are cut into blocks of this many values; a row length that is not a
    # multiple of it makes llama.cpp fall back to another type (or keep F16) for that tensor.
    block_size: int
    # Written directly by gguf-py (float types) or produced by llama.cpp's quantizer.
    float_type: GGMLQuantizationType | None = None

    @property
    def needs_quantizer(self) -> bool:
        return self.float_type is None


OUT_TYPES: dict[str, OutType] = {
    t.name: t
    for t in (
        OutType("f32", LlamaFileType.ALL_F32, 1, GGMLQuantizationType.F32),
        OutType("f16", LlamaFileType.MOSTLY_F16, 1, GGMLQuantizationType.F16),
        OutType("bf16", LlamaFileType.MOSTLY_BF16, 1, GGMLQuantizationType.BF16),
        OutType("q8_0", LlamaFileType.MOSTLY_Q8_0, 32),
        OutType("q4_0", LlamaFileType.MOSTLY_Q4_0, 32),
        OutType("q6_k", LlamaFileType.MOSTLY_Q6_K, 256),
        OutType("q5_k_m", LlamaFileType.MOSTLY_Q5_K_M, 256),
        OutType("q4_k_m", LlamaFileType.MOSTLY_Q4_K_M, 256),
    )
}


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
