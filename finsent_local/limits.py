"""The server's request limits: the one place they are set. The server enforces them, the OpenAPI
document and the README state them, and the clients (client.py, excel/) size their requests by them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_texts_per_request: int = 256
    max_text_chars: int = 32_767  # an Excel cell's limit; longer prompts are cut to the context anyway
    max_body_bytes: int = 4 * 1024 * 1024
    max_generation_tokens: int = 1024
    # POST /v1/documents: one document, split into sentences (each within max_text_chars).
    max_document_chars: int = 1_000_000
    max_document_sentences: int = 5_000
    # POST /v1/explain: each word costs about one classification of the text's tail, so a request is
    # bounded by its words (all texts together), sized to finish well within max_wait_s on a laptop CPU.
    max_explain_words: int = 256
    # A request the engine has not started on by then, or not finished by as long again, gets 503.
    # None: no limit (local batch jobs such as `finsent classify`, where nobody else is waiting).
    max_wait_s: float | None = 60.0


DEFAULT_LIMITS = Limits()
