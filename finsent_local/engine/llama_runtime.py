"""Thin, explicit wrappers over llama-cpp-python's low-level API: load a model, make a context,
tokenize, decode batches and read logits at chosen positions.

The high-level `llama_cpp.Llama` class does not expose `use_extra_bufts`; llama.cpp's extra buffer
types (AMX, repacked weights) crash with some builds on some CPUs, so they are off here unless the
caller asks (cpu_buffers.py decides for the engine).
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .llama_library import llama_cpp

_backend_lock = threading.Lock()
_backend_ready = False


class LlamaRuntimeError(RuntimeError):
    pass


def _init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            # llama-cpp-python installs a log callback on import; keep llama.cpp quiet unless asked.
            from llama_cpp import _logger

            _logger.set_verbose(os.environ.get("FINSENT_LLAMA_VERBOSE") == "1")
            llama_cpp.llama_backend_init()
            _backend_ready = True


def gpu_offload_supported() -> bool:
    _init_backend()
    return bool(llama_cpp.llama_supports_gpu_offload())


class GpuUnavailable(ValueError):
    """A GPU was asked for ("on"), but this llama.cpp build has no GPU support."""


GPU_CHOICES = ("auto", "on", "off")


def gpu_layers(gpu: str) -> int:
    """llama.cpp's n_gpu_layers for a --gpu choice: "off" 0; "auto" every layer when this build can
    offload, else 0; "on" every layer, or GpuUnavailable. The one place that decides it (finsent serve,
    the Python API, the benchmarks); any other choice is a ValueError."""
    if gpu not in GPU_CHOICES:
        raise ValueError(f'gpu must be "auto", "on" or "off", not {gpu!r}')
    if gpu == "off":
        return 0
    supported = gpu_offload_supported()
    if gpu == "on" and not supported:
        raise GpuUnavailable("a GPU was asked for, but this llama-cpp-python was built without GPU support "
                             "(see docs/gpu.md)")
    return -1 if supported else 0


@dataclass(frozen=True)
class ModelOptions:
    n_gpu_layers: int = 0  # -1: all layers
    use_extra_bufts: bool = False


class LlamaModel:
    """A loaded GGUF model (weights only; contexts are made from it)."""

    def __init__(self, path: str | Path, options: ModelOptions = ModelOptions()):
        _init_backend()
        self.path = Path(path)
        if not self.path.is_file():
            raise LlamaRuntimeError(f"model file not found: {self.path}")
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = options.n_gpu_layers if options.n_gpu_layers >= 0 else 10_000
        params.use_extra_bufts = options.use_extra_bufts
        self.ptr = llama_cpp.llama_model_load_from_file(str(self.path).encode(), params)
        if not self.ptr:
            raise LlamaRuntimeError(f"llama.cpp could not load {self.path} (not a valid GGUF model?)")
        self.vocab = llama_cpp.llama_model_get_vocab(self.ptr)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(self.ptr)
        self.n_layer = llama_cpp.llama_model_n_layer(self.ptr)
        self.bos_id = llama_cpp.llama_vocab_bos(self.vocab)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))

    def close(self) -> None:
        if self.ptr:
            llama_cpp.llama_model_free(self.ptr)
            self.ptr = None

    def meta(self, key: str) -> str | None:
        size = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_model_meta_val_str(self.ptr, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    def description(self) -> str:
        buf = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(self.ptr, buf, 256)
        return buf.value.decode()

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, parse_special)
        if n < 0:  # buffer too small: -n is the size needed
            capacity = -n
            tokens = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, parse_special)
        return list(tokens[:n])

    def token_bytes(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
        return buf.raw[:n]

    def format_chat(self, messages: list[dict]) -> str:
        """Messages as one prompt: the model's own chat template when it has one (applied by
        llama.cpp), else a plain "Role: content" transcript ending with "Assistant:"."""
        template = llama_cpp.llama_model_chat_template(self.ptr, None)
        if template:
            chat = (llama_cpp.llama_chat_message * len(messages))()
            keep = []  # the encoded strings must outlive the call
            for i, message in enumerate(messages):
                role, content = message["role"].encode(), message["content"].encode()
                keep += [role, content]
                chat[i].role, chat[i].content = role, content
            size = sum(len(b) for b in keep) * 2 + 256
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_chat_apply_template(template, chat, len(messages), True, buf, size)
            if n > size:
                buf = ctypes.create_string_buffer(n + 1)
                n = llama_cpp.llama_chat_apply_template(template, chat, len(messages), True, buf, n + 1)
            if n >= 0:
                return buf.raw[:n].decode("utf-8", errors="replace")
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nAssistant:"

    def tokenize_chat(self, messages: list[dict]) -> list[int]:
        """Messages as prompt tokens, with only the chat template's own markers parsed as special
        tokens: each content is rendered as a placeholder, and the text around the placeholders (the
        template) is tokenized with special tokens while the contents are tokenized as plain text.
        Contents are stripped, as Llama 3's template does."""
        marker = f"\ue000{uuid.uuid4().hex}\ue001"  # a private-use pair that cannot occur by chance
        placeholders = [f"{marker}{i}{marker}" for i in range(len(messages))]
        rendered = self.format_chat([{"role": m["role"], "content": placeholders[i]} for i, m in enumerate(messages)])
        tokens: list[int] = []
        rest = rendered
        for i, message in enumerate(messages):
            before, found, rest = rest.partition(placeholders[i])
            if not found:  # the template dropped this message: keep the rest as it came
                continue
            tokens += self.tokenize(before, add_special=not tokens, parse_special=True)
            tokens += self.tokenize(message["content"].strip(), add_special=False, parse_special=False)
        tokens += self.tokenize(rest, add_special=not tokens, parse_special=True)
        return tokens

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))


class LoraAdapter:
    """A LoRA adapter GGUF loaded for a model (llama.cpp frees it with the model)."""

    def __init__(self, model: LlamaModel, path: str | Path):
        self.path = Path(path)
        self.ptr = llama_cpp.llama_adapter_lora_init(model.ptr, str(self.path).encode())
        if not self.ptr:
            raise LlamaRuntimeError(f"llama.cpp could not load the LoRA adapter {self.path} (not one for this model?)")


@dataclass(frozen=True)
class ContextOptions:
    n_ctx: int = 2048
    n_batch: int = 512
    n_seq_max: int = 1
    n_threads: int = 0  # 0: all cores
    kv_f32: bool = False  # F32 KV cache: only for exact comparisons (verification); F16 is the default


class LlamaContext:
    """A llama.cpp context (KV cache). Not thread-safe: one thread at a time."""

    def __init__(self, model: LlamaModel, options: ContextOptions = ContextOptions()):
        self.model = model
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = options.n_ctx
        params.n_batch = options.n_batch
        params.n_ubatch = min(options.n_batch, 512)
        params.n_seq_max = options.n_seq_max
        threads = options.n_threads or os.cpu_count() or 1
        params.n_threads = threads
        params.n_threads_batch = threads
        params.kv_unified = True  # sequences share one cache, so a prefix can be copied between them
        params.no_perf = True
        if options.kv_f32:
            params.type_k = params.type_v = 0  # GGML_TYPE_F32
            params.flash_attn_type = 0  # CPU flash attention rounds through F16
        self.ptr = llama_cpp.llama_init_from_model(model.ptr, params)
        if not self.ptr:
            raise LlamaRuntimeError("llama.cpp could not create a context (out of memory?)")
        self.n_ctx = llama_cpp.llama_n_ctx(self.ptr)
        self.n_batch = options.n_batch
        self.n_seq_max = options.n_seq_max
        self.memory = llama_cpp.llama_get_memory(self.ptr)
        self._batch = llama_cpp.llama_batch_init(options.n_batch, 0, options.n_seq_max)

    def close(self) -> None:
        if self.ptr:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self.ptr)
            self.ptr = None

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self.memory, True)

    def use_adapters(self, adapters: list[LoraAdapter], scale: float = 1.0) -> None:
        """Apply these LoRA adapters (at this scale, times alpha / rank) to every decode from now on."""
        pointers = (llama_cpp.llama_adapter_lora_p_ctypes * len(adapters))(*(a.ptr for a in adapters))
        scales = (ctypes.c_float * len(adapters))(*([scale] * len(adapters)))
        if llama_cpp.llama_set_adapters_lora(self.ptr, pointers, len(adapters), scales) != 0:
            raise LlamaRuntimeError("llama.cpp could not apply the LoRA adapter to the context")

    def remove(self, seq_id: int, start: int = 0, end: int = -1) -> None:
        llama_cpp.llama_memory_seq_rm(self.memory, seq_id, start, end)

    def copy_sequence(self, src: int, dst: int, start: int = 0, end: int = -1) -> None:
        llama_cpp.llama_memory_seq_cp(self.memory, src, dst, start, end)

    def decode(self, entries: list[tuple[int, int, tuple[int, ...], bool]]) -> dict[int, np.ndarray]:
        """Decode one batch. Each entry is (token, position, seq_ids, want_logits).

        Returns {entry index: logits} for the entries that asked for logits. len(entries) <= n_batch.
        """
        batch = self._batch
        if len(entries) > self.n_batch:
            raise ValueError("batch larger than n_batch")
        for i, (token, pos, seq_ids, want_logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = len(seq_ids)
            for j, seq in enumerate(seq_ids):
                batch.seq_id[i][j] = seq
            batch.logits[i] = want_logits
        batch.n_tokens = len(entries)
        rc = llama_cpp.llama_decode(self.ptr, batch)
        if rc != 0:
            raise LlamaRuntimeError(f"llama_decode failed ({rc}): context full or out of memory")
        n_vocab = self.model.n_vocab
        out = {}
        for i, entry in enumerate(entries):
            if entry[3]:
                ptr = llama_cpp.llama_get_logits_ith(self.ptr, i)
                out[i] = np.ctypeslib.as_array(ptr, shape=(n_vocab,)).copy()
        return out

    def eval_sequence(self, tokens: list[int], seq_id: int = 0, start_pos: int = 0,
                      logits_at: set[int] | None = None) -> dict[int, np.ndarray]:
        """Evaluate `tokens` on one sequence in n_batch chunks; logits for the positions (indexes into
        `tokens`) in `logits_at` (default: the last one)."""
        if logits_at is None:
            logits_at = {len(tokens) - 1}
        out: dict[int, np.ndarray] = {}
        for chunk_start in range(0, len(tokens), self.n_batch):
            chunk = tokens[chunk_start : chunk_start + self.n_batch]
            entries = [
                (tok, start_pos + chunk_start + k, (seq_id,), (chunk_start + k) in logits_at)
                for k, tok in enumerate(chunk)
            ]
            for i, logits in self.decode(entries).items():
                out[chunk_start + i] = logits
        return out


QUANTIZE_BUFFER_BYTES = 256 * 1024 * 1024
_TENSOR_PROGRESS = re.compile(rb"\[\s*(\d+)/\s*(\d+)\]")


def quantize_model(source: Path, destination: Path, file_type: int, n_threads: int = 0,
                   on_tensor: Callable[[int, int], None] | None = None,
                   buffer_bytes: int = QUANTIZE_BUFFER_BYTES) -> None:
    """llama.cpp's own quantizer (llama_model_quantize), from a float GGUF to `file_type`.

    llama.cpp reports progress only in its log ("[  12/ 147] blk.1.attn_q.weight ..."), so a log
    callback is installed for the call and turned into on_tensor(done, total).
    """
    _init_backend()
    from llama_cpp import _logger

    @llama_cpp.llama_log_callback
    def progress_log(level, text, user_data):
        match = _TENSOR_PROGRESS.match(text or b"")
        if match and on_tensor is not None:
            on_tensor(int(match.group(1)), int(match.group(2)))
        elif level in (3, 4):  # ggml: 3 warn, 4 error; these still reach the user
            print(text.decode("utf-8", "replace"), end="", file=sys.stderr)

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = file_type
    params.nthread = n_threads or os.cpu_count() or 1
    # Rows are processed in slabs of at most this many bytes (llama.cpp's default is 8 GiB, which
    # lets the token embedding's float conversion buffers alone reach 1.5 GB for this model).
    params.max_buf_size = buffer_bytes  # 0: llama.cpp's default
    with _backend_lock:
        llama_cpp.llama_log_set(progress_log, ctypes.c_void_p(0))
        try:
            rc = llama_cpp.llama_model_quantize(str(source).encode(), str(destination).encode(), ctypes.byref(params))
        finally:
            llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    if rc != 0:
        raise LlamaRuntimeError(f"llama.cpp's quantizer failed (code {rc})")
