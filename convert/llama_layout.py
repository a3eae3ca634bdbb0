"""How a Hugging Face Llama checkpoint maps onto llama.cpp's LLAMA tensors.

Three things differ from a straight copy:
- Q and K rows are permuted: HF stores rotary pairs as (first half, second half) of each head,
  llama.cpp's LLAMA rope expects them interleaved.
- Llama 3.x rope scaling is not a GGUF key: it is a `rope_freqs` tensor of per-frequency factors.
- Optional MLP padding: zero rows in gate/up and zero columns in down. silu(0) * 0 = 0, so the function
  is unchanged, and the width becomes a multiple of the quantizer's block size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import gguf
import numpy as np

from .checkpoint import LlamaConfig


@dataclass(frozen=True)
class TensorPlan:
    gguf_name: str
    hf_name: str | None  # None for tensors computed from the config (rope_freqs)
    shape: tuple[int, ...]  # numpy (row-major) shape as written
    transform: Callable[[np.ndarray], np.ndarray] | None = None


def permute_rotary_rows(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder each head's rows from (half A, half B) to (a0, b0, a1, b1, ...)."""
    rows, cols = weight.shape
    head_dim = rows // n_heads
    return weight.reshape(n_heads, 2, head_dim // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def pad_rows(weight: np.ndarray, rows: int) -> np.ndarray:
    if weight.shape[0] == rows:
        return weight
    out = np.zeros((rows, weight.shape[1]), dtype=weight.dtype)
    out[: weight.shape[0]] = weight
    return out


def pad_cols(weight: np.ndarray, cols: int) -> np.ndarray:
    if weight.shape[1] == cols:
        return weight
    out = np.zeros((weight.shape[0], cols), dtype=weight.dtype)
    out[:, : weight.shape[1]] = weight
    return out


def llama3_rope_factors(config: LlamaConfig) -> np.ndarray | None:
    """Per-frequency divisors for Llama 3.x long-context rope scaling, or None without it.

    High frequencies (short wavelengths) are kept, low ones divided by `factor`, and the band between
    is blended smoothly, as Meta's reference implementation does.
    """
    scaling = config.rope_scaling
    if not scaling or scaling.get("rope_type", scaling.get("type")) != "llama3":
        return None
    factor = float(scaling["factor"])
    low = float(scaling.get("low_freq_factor", 1.0))
    high = float(scaling.get("high_freq_factor", 4.0))
    original_context = float(scaling.get("original_max_position_embeddings", 8192))
    half = config.head_dim // 2
    factors = np.empty(half, dtype=np.float32)
    for i in range(half):
        inv_freq = config.rope_theta ** (-2 * i / config.head_dim)
        wavelength = 2 * math.pi / inv_freq
        if wavelength < original_context / high:
            factors[i] = 1.0
        elif wavelength > original_context / low:
            factors[i] = factor
        else:
            blend = (original_context / wavelength - low) / (high - low)
            factors[i] = 1.0 / ((1 - blend) / factor + blend)
    return factors


def _name(tensor: gguf.MODEL_TENSOR, block: int | None = None) -> str:
    template = gguf.TENSOR_NAMES[tensor]
    return (template.format(bid=block) if block is not None else template) + ".weight"


def plan_tensors(config: LlamaConfig, has_lm_head: bool, ffn_width: int) -> list[TensorPlan]:
    """Every tensor of the GGUF, in writing order, with where it comes from and how it is changed."""
    T = gguf.MODEL_TENSOR
    hidden, vocab = config.hidden_size, config.vocab_size
    q_rows = config.num_attention_heads * config.head_dim
    kv_rows = config.num_key_value_heads * config.head_dim
    pad = ffn_width != config.intermediate_size

    plans = [TensorPlan(_name(T.TOKEN_EMBD), "model.embed_tokens.weight", (vocab, hidden))]
    rope_factors = llama3_rope_factors(config)
    if rope_factors is not None:
        plans.append(TensorPlan(_name(T.ROPE_FREQS), None, rope_factors.shape, lambda _: rope_factors))
    for i in range(config.num_hidden_layers):
        hf = f"model.layers.{i}."
        plans += [
            TensorPlan(_name(T.ATTN_NORM, i), hf + "input_layernorm.weight", (hidden,)),
            TensorPlan(
                _name(T.ATTN_Q, i), hf + "self_attn.q_proj.weight", (q_rows, hidden),
                lambda w: permute_rotary_rows(w, config.num_attention_heads),
            ),
            TensorPlan(
                _name(T.ATTN_K, i), hf + "self_attn.k_proj.weight", (kv_rows, hidden),
                lambda w: permute_rotary_rows(w, config.num_key_value_heads),
            ),
            TensorPlan(_name(T.ATTN_V, i), hf + "self_attn.v_proj.weight", (kv_rows, hidden)),
            TensorPlan(_name(T.ATTN_OUT, i), hf + "self_attn.o_proj.weight", (hidden, q_rows)),
            TensorPlan(_name(T.FFN_NORM, i), hf + "post_attention_layernorm.weight", (hidden,)),
            TensorPlan(
                _name(T.FFN_GATE, i), hf + "mlp.gate_proj.weight", (ffn_width, hidden),
                (lambda w: pad_rows(w, ffn_width)) if pad else None,
            ),
            TensorPlan(
                _name(T.FFN_UP, i), hf + "mlp.up_proj.weight", (ffn_width, hidden),
                (lambda w: pad_rows(w, ffn_width)) if pad else None,
            ),
            TensorPlan(
                _name(T.FFN_DOWN, i), hf + "mlp.down_proj.weight", (hidden, ffn_width),
                (lambda w: pad_cols(w, ffn_width)) if pad else None,
            ),
        ]
    plans.append(TensorPlan(_name(T.OUTPUT_NORM), "model.norm.weight", (hidden,)))
    # Tied embeddings: no output tensor; llama.cpp then uses token_embd for the output projection.
    if has_lm_head and not config.tie_word_embeddings:
        plans.append(TensorPlan(_name(T.OUTPUT), "lm_head.weight", (vocab, hidden)))
    return plans


def source_shape(plan: TensorPlan, config: LlamaConfig) -> tuple[int, ...]:
    """The shape the Hugging Face tensor must have (before padding)."""
    if plan.hf_name is None:
        return plan.shape
    if plan.hf_name.endswith(("gate_proj.weight", "up_proj.weight")):
        return (config.intermediate_size, config.hidden_size)
    if plan.hf_name.endswith("down_proj.weight"):
        return (config.hidden_size, config.intermediate_size)
    return plan.shape
