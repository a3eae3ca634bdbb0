"""The tokenizer, read from tokenizer.json / tokenizer_config.json, in the shape llama.cpp's BPE vocab wants."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from gguf import TokenType

from .checkpoint import LlamaConfig
from .errors import ConversionError

# The split regex of the Llama 3 tokenizer: llama.cpp knows it as the "llama-bpe" pre-tokenizer.
LLAMA3_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_PRE_TOKENIZER = "llama-bpe"
EOT_TOKEN = "<|eot_id|>"


@dataclass
class Vocab:
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    pre_tokenizer: str
    bos_id: int | None
    eos_id: int | None
    eot_id: int | None
    pad_id: int | None
    add_bos: bool
    chat_template: str | None = None
    extra: dict = field(default_factory=dict)


def _split_patterns(pre_tokenizer: dict | None) -> list[str]:
    if not pre_tokenizer:
        return []
    if pre_tokenizer.get("type") == "Sequence":
        return [p for sub in pre_tokenizer.get("pretokenizers", []) for p in _split_patterns(sub)]
    if pre_tokenizer.get("type") == "Split":
        return [pre_tokenizer.get("pattern", {}).get("Regex", "")]
    return []


def _token_id(tokens_by_text: dict[str, int], value) -> int | None:
    if isinstance(value, dict):  # tokenizer_config may hold AddedToken dicts
        value = value.get("content")
    return tokens_by_text.get(value) if isinstance(value, str) else None


def read_vocab(model_dir: Path, config: LlamaConfig) -> Vocab:
    path = model_dir / "tokenizer.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConversionError(f"tokenizer.json not found in {model_dir}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConversionError("tokenizer.json is not valid JSON") from None
    model = data.get("model") or {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ConversionError("tokenizer.json is not a byte-level BPE tokenizer (Llama 3 style) ")
    if LLAMA3_SPLIT_PATTERN not in _split_patterns(data.get("pre_tokenizer")):
        raise ConversionError("tokenizer.json uses a pre-tokenizer other than Llama 3's; it cannot be converted")

    tokens: list[str | None] = [None] * config.vocab_size
    types = [int(TokenType.NORMAL)] * config.vocab_size
    for text, token_id in model["vocab"].items():
        if token_id < config.vocab_size:
            tokens[token_id] = text
    for added in data.get("added_tokens", []):
        token_id = added["id"]
        if token_id < config.vocab_size:
            tokens[token_id] = added["content"]
            types[token_id] = int(TokenType.CONTROL if added.get("special") else TokenType.USER_DEFINED)
    for token_id, text in enumerate(tokens):
        if text is None:  # ids the embedding has but the tokenizer never produces
            tokens[token_id] = f"[PAD{token_id}]"
            types[token_id] = int(TokenType.UNUSED)

    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    tokenizer_config: dict = {}
    tc_path = model_dir / "tokenizer_config.json"
    if tc_path.exists():
        try:
            tokenizer_config = json.loads(tc_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConversionError("tokenizer_config.json is not valid JSON") from None
    by_text = {t: i for i, t in enumerate(tokens)}

    bos_id = config.bos_token_id if config.bos_token_id is not None else _token_id(by_text, tokenizer_config.get("bos_token"))
    eos_id = _token_id(by_text, tokenizer_config.get("eos_token"))
    if eos_id is None and config.eos_token_ids:
        eos_id = config.eos_token_ids[0]
    pad_id = _token_id(by_text, tokenizer_config.get("pad_token"))
    eot_id = by_text.get(EOT_TOKEN)

    # The Hugging Face tokenizer adds BOS through its post-processor (or the add_bos_token flag).
    bos_text = tokens[bos_id] if bos_id is not None else None
    add_bos = bool(tokenizer_config.get("add_bos_token")) or (
        bos_text is not None and bos_text in json.dumps(data.get("post_processor") or {})
    )

    chat_template = tokenizer_config.get("chat_template")
    jinja = model_dir / "chat_template.jinja"
    if chat_template is None and jinja.exists():
        chat_template = jinja.read_text(encoding="utf-8")
    if isinstance(chat_template, list):  # named templates: keep the default one
        chat_template = next((t["template"] for t in chat_template if t.get("name") == "default"), None)

    return Vocab(
        tokens=tokens, token_types=types, merges=merges, pre_tokenizer=LLAMA3_PRE_TOKENIZER,
        bos_id=bos_id, eos_id=eos_id, eot_id=eot_id, pad_id=pad_id, add_bos=add_bos,
        chat_template=chat_template,
    )
