"""Writing the float GGUF: metadata first, then tensors streamed one at a time from the checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from finsent_local.engine.labels import FINSENT_SPEC_KEY, finsent_spec

from .checkpoint import Checkpoint
from .errors import ConversionError
from .llama_layout import TensorPlan, source_shape
from .outtypes import OutType
from .vocab import Vocab

# Keys the FinSent tools add to general.*: where the weights came from.
SOURCE_REVISION_KEY = "general.source.revision"
FFN_PADDING_KEY = "finsent.ffn_original_length"


@dataclass(frozen=True)
class Provenance:
    name: str
    source_repo: str | None  # hub repo id, or None for a local directory
    revision: str | None
    license: str | None


def _add_metadata(writer: gguf.GGUFWriter, ckpt: Checkpoint, vocab: Vocab, outtype: OutType,
                  ffn_width: int, provenance: Provenance) -> None:
    c = ckpt.config
    writer.add_name(provenance.name)
    if provenance.source_repo:
        writer.add_source_repo_url(f"https://huggingface.co/{provenance.source_repo}")
        writer.add_string("general.source.repo_id", provenance.source_repo)
    if provenance.revision:
        writer.add_string(SOURCE_REVISION_KEY, provenance.revision)
    if provenance.license:
        writer.add_license(provenance.license)
    writer.add_file_type(int(outtype.file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_feed_forward_length(ffn_width)
    if ffn_width != c.intermediate_size:
        writer.add_uint32(FFN_PADDING_KEY, c.intermediate_size)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_rope_dimension_count(c.head_dim)
    if c.head_dim != c.hidden_size // c.num_attention_heads:
        writer.add_key_length(c.head_dim)
        writer.add_value_length(c.head_dim)
    writer.add_rope_freq_base(c.rope_theta)
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    writer.add_vocab_size(c.vocab_size)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre_tokenizer)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    writer.add_token_merges(vocab.merges)
    for setter, token_id in (
        (writer.add_bos_token_id, vocab.bos_id),
        (writer.add_eos_token_id, vocab.eos_id),
        (writer.add_eot_token_id, vocab.eot_id),
        (writer.add_pad_token_id, vocab.pad_id),
    ):
        if token_id is not None:
            setter(token_id)
    writer.add_add_bos_token(vocab.add_bos)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)

    writer.add_string(FINSENT_SPEC_KEY, finsent_spec())


def _encode(array: np.ndarray, outtype: OutType) -> tuple[np.ndarray, gguf.GGMLQuantizationType]:
    # Norms, rope factors and other 1-D tensors stay F32, as llama.cpp expects.
    if array.ndim == 1 or outtype.float_type == gguf.GGMLQuantizationType.F32:
        return np.ascontiguousarray(array, dtype=np.float32), gguf.GGMLQuantizationType.F32
    if outtype.float_type == gguf.GGMLQuantizationType.F16:
        return np.ascontiguousarray(array, dtype=np.float16), gguf.GGMLQuantizationType.F16
    return gguf.quants.quantize(np.ascontiguousarray(array), gguf.GGMLQuantizationType.BF16), gguf.GGMLQuantizationType.BF16


def _tensor_bytes(shape: tuple[int, ...], qtype: gguf.GGMLQuantizationType) -> int:
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape)) // block * type_size


def check_tensors(ckpt: Checkpoint, plans: list[TensorPlan]) -> None:
    """Every planned tensor exists with the shape the config implies: fail before writing anything."""
    for plan in plans:
        if plan.hf_name is None:
            continue
        if not ckpt.has(plan.hf_name):
            raise ConversionError(f"checkpoint lacks tensor {plan.hf_name}")
        expected = source_shape(plan, ckpt.config)
        if ckpt.shape(plan.hf_name) != expected:
            raise ConversionError(
                f"tensor {plan.hf_name} has shape {list(ckpt.shape(plan.hf_name))}, config.json implies {list(expected)}"
            )


def write_float_gguf(path: Path, ckpt: Checkpoint, vocab: Vocab, plans: list[TensorPlan], outtype: OutType,
                     ffn_width: int, provenance: Provenance,
                     on_tensor: Callable[[str], None] = lambda name: None) -> None:
    """Write an F32/F16/BF16 GGUF to `path`, reading and converting one tensor at a time."""
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        _add_metadata(writer, ckpt, vocab, outtype, ffn_width, provenance)
        for plan in plans:
            qtype = gguf.GGMLQuantizationType.F32 if len(plan.shape) == 1 else outtype.float_type
            nbytes = _tensor_bytes(plan.shape, qtype)
            writer.add_tensor_info(plan.gguf_name, plan.shape, np.dtype(np.uint16), nbytes, raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for plan in plans:
            array = ckpt.read(plan.hf_name) if plan.hf_name else None
            if plan.transform is not None:
                array = plan.transform(array)
            encoded, _ = _encode(array, outtype)
            writer.write_tensor_data(encoded)
            on_tensor(plan.gguf_name)
    finally:
        writer.close()
