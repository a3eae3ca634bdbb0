"""Classification as the server and the CLI use it: validation, the result cache, then the engine."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from dataclasses import asdict

from . import occlusion
from .cache import CacheUnavailable, ResultCache
from .classifier import Classification, ClassifierEngine, EngineOptions, TextError
from ..files import file_fingerprint
from ..limits import Limits
from ..stats import Histogram
from .worker import EngineWorker

log = logging.getLogger("finsent.service")


class ItemError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class TooManyWords(ItemError):
    """Explaining these texts would score more units than one explain request may (limits.max_explain_words):
    the check POST /v1/explain and `finsent explain` share, with the numbers for callers that word it
    for one text (a file row's why cell)."""

    def __init__(self, words: int, limit: int):
        super().__init__("too_many_words", f"at most {limit} words per explain request, all texts together "
                                           f"(got {words}): send fewer or shorter texts per request")
        self.words = words
        self.limit = limit


class Counters:
    """Cache and classification counts for /metrics."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0
        self.texts_classified = 0
        self.batch_sizes = Histogram(BATCH_BUCKETS)  # texts per llama_decode

    def add(self, **increments: int) -> None:
        with self.lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def record_batch(self, size: int) -> None:
        with self.lock:
            self.batch_sizes.observe(size)


BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)


class ClassificationService:
    def __init__(self, worker: EngineWorker, cache: ResultCache | None, limits: Limits = Limits(),
                 counters: Counters | None = None):
        self.worker = worker
        self.cache = cache
        self.limits = limits
        self.counters = counters or Counters()

    @property
    def schemes(self):
        return self.worker.engine.schemes

    @property
    def engine(self) -> ClassifierEngine:
        return self.worker.engine

    def close(self) -> None:
        """Stop the worker (pending requests get 503); free llama.cpp's memory only once the engine
        thread has exited, never under a running decode."""
        if self.worker.close():
            self.engine.close()
        else:
            log.warning("the engine thread is still busy; its memory is left to the operating system")
        if self.cache is not None:
            self.cache.close()

    def validate(self, text) -> str:
        if not isinstance(text, str):
            raise ItemError("invalid_text", "text must be a string")
        if len(text) > self.limits.max_text_chars:
            raise ItemError("text_too_long", f"text too long ({len(text)} characters; at most {self.limits.max_text_chars})")
        if not text.strip():
            raise ItemError("empty_text", "text is empty")
        return text  # text that is not valid Unicode (a lone surrogate) is an item error from the engine

    def classify(self, texts: list, scheme: str) -> list[dict]:
        """One dict per text: label, score, probs, cached, truncated; or {"error": {code, message}}."""
        return self._cached(texts, scheme, lambda missing: [
            outcome if isinstance(outcome, TextError) else _as_dict(outcome)
            for outcome in self.worker.classify(missing, scheme)], counts_classified=True)

    def explain(self, texts: list, scheme: str, unit: str = "word") -> list[dict]:
        """One dict per text: label, score, probs, truncated, unit, words (start, end, text, weight,
        label_weight, label_without), cached; or {"error": {code, message}}. Cached like labels."""
        return self._cached(texts, f"explain:{unit}:{scheme}",  # apart from labels: another kind of result
                            lambda missing: [outcome if isinstance(outcome, TextError) else outcome.as_dict()
                                             for outcome in self.worker.explain(missing, scheme, unit)])

    def _cached(self, texts: list, cache_scheme: str, compute, counts_classified: bool = False) -> list[dict]:
        """Validation, the result cache under `cache_scheme`, then compute(missing texts) (a dict or a
        TextError each) for what the cache lacks; each distinct text is computed once."""
        results: list[dict | None] = [None] * len(texts)
        valid: dict[int, str] = {}
        for i, text in enumerate(texts):
            try:
                valid[i] = self.validate(text)
            except ItemError as e:
                results[i] = {"error": {"code": e.code, "message": str(e)}}
        unique = list(dict.fromkeys(valid.values()))
        found = self.cache.get_many(cache_scheme, unique) if self.cache else {}
        missing = [t for t in unique if t not in found]
        self.counters.add(cache_hits=len(unique) - len(missing), cache_misses=len(missing))
        computed: dict[str, dict] = {}
        if missing:
            for text, outcome in zip(missing, compute(missing)):
                if isinstance(outcome, TextError):
                    computed[text] = {"error": {"code": outcome.code, "message": str(outcome)}}
                else:
                    computed[text] = outcome
            if counts_classified:
                self.counters.add(texts_classified=len(missing))
            if self.cache:
                self.cache.put_many(cache_scheme, {t: r for t, r in computed.items() if "error" not in r})
        for i, text in valid.items():
            results[i] = {**computed[text], "cached": False} if text in computed else {**found[text], "cached": True}
        return results  # type: ignore[return-value]

    def count_units(self, texts: list, unit: str = "word") -> int:
        """How many units (words or pairs) explaining `texts` scores: what max_explain_words bounds."""
        return sum(len(occlusion.units(t, unit)) for t in texts if isinstance(t, str))

    def check_explain_words(self, texts: list, unit: str = "word") -> None:
        """Raise TooManyWords when explaining `texts` together exceeds limits.max_explain_words. Texts over
        max_text_chars are not counted: they get their own text_too_long item error."""
        words = self.count_units([t for t in texts if isinstance(t, str) and len(t) <= self.limits.max_text_chars],
                                 unit)
        if words > self.limits.max_explain_words:
            raise TooManyWords(words, self.limits.max_explain_words)

    # -- free generation -------------------------------------------------------------------------
    def classification_prompt_tokens(self, text: str, scheme: str) -> int:
        """How many prompt tokens classifying `text` evaluates (instruction included, after truncation)."""
        return len(self.engine.prompt_tokens(text, scheme)[0])

    def chat_tokens(self, messages: list[dict]) -> list[int]:
        """A chat as prompt tokens: only the chat template's own markers are special tokens; message
        contents are always text (a message cannot forge a role header)."""
        return self.engine.model.tokenize_chat(messages)

    def prompt_tokens(self, prompt: str) -> list[int]:
        """A raw completion prompt; the caller writes the whole prompt, special tokens included."""
        return self.engine.model.tokenize(prompt, parse_special=True)

    def generation_prompt(self, tokens: list[int], max_tokens: int) -> list[int]:
        return self.engine.generation_prompt(tokens, max_tokens)

    def generate(self, tokens: list[int], max_tokens: int, temperature: float, top_p: float,
                 seed: int | None) -> Iterator[bytes]:
        return self.worker.generate(tokens, max_tokens, temperature, top_p, seed)


def open_service(model_path: Path, engine_options: EngineOptions, cache_path: Path | None,
                 limits: Limits = Limits(), counters: Counters | None = None) -> ClassificationService:
    """Load the model and put the engine, its worker thread and the result cache together."""
    engine = ClassifierEngine(model_path, engine_options)
    counters = counters or Counters()
    cache = result_cache_for(cache_path, model_path, engine) if cache_path else None
    worker = EngineWorker(engine, max_wait_s=limits.max_wait_s, on_batch=counters.record_batch)
    return ClassificationService(worker, cache, limits, counters)


def result_cache_for(cache_path: Path, model_path: Path, engine: ClassifierEngine) -> ResultCache | None:
    """The result cache for this model file and prompt set-up: results from another model, prompt
    preset, prompt version or truncation length are never reused. None (with a warning) when the
    cache file cannot be used: classification works without it."""
    memo = cache_path.with_name("model-fingerprints.json")
    namespace = "|".join([file_fingerprint(model_path, memo), engine.options.prompt_preset, str(engine.prompt_version),
                          str(engine.options.max_prompt_tokens)])
    if engine.options.instruction_subject != "news":  # another prompt: other answers (news keeps its old keys)
        namespace += "|subject:" + engine.options.instruction_subject
    if engine.options.lora_path is not None:  # the adapter changes every answer
        namespace += "|lora:" + file_fingerprint(Path(engine.options.lora_path), memo)
    try:
        return ResultCache(cache_path, namespace)
    except CacheUnavailable as e:
        log.warning("result cache off: %s; serving without caching", e)
        return None


def _as_dict(result: Classification) -> dict:
    out = asdict(result)
    out.pop("cached", None)
    return out
