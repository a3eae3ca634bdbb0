"""Classification as the server and the CLI use it: validation, the result cache, then the engine."""

from __future__ import annotations

import threading
from pathlib import Path
from dataclasses import asdict, dataclass

from .cache import ResultCache
from .engine import Classification, ClassifierEngine, EngineOptions, TextError
from .worker import EngineWorker


@dataclass(frozen=True)
class Limits:
    max_texts_per_request: int = 256
    max_text_chars: int = 32_767  # an Excel cell's limit; longer prompts are cut to the context anyway
    max_body_bytes: int = 4 * 1024 * 1024


class ItemError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Counters:
    """Cache and classification counts for /metrics."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0
        self.texts_classified = 0
        self.batch_sizes: list[int] = []  # drained by the metrics renderer into a histogram

    def add(self, **increments: int) -> None:
        with self.lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def record_batch(self, size: int) -> None:
        with self.lock:
            self.batch_sizes.append(size)


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

    def close(self) -> None:
        self.worker.close()
        self.worker.engine.close()

    def validate(self, text) -> str:
        if not isinstance(text, str):
            raise ItemError("invalid_text", "text must be a string")
        if len(text) > self.limits.max_text_chars:
            raise ItemError("text_too_long", f"text too long ({len(text)} characters; at most {self.limits.max_text_chars})")
        if not text.strip():
            raise ItemError("empty_text", "text is empty")
        return text

    def classify(self, texts: list, scheme: str) -> list[dict]:
        """One dict per text: label, score, probs, cached, truncated; or {"error": {code, message}}."""
        results: list[dict | None] = [None] * len(texts)
        valid: dict[int, str] = {}
        for i, text in enumerate(texts):
            try:
                valid[i] = self.validate(text)
            except ItemError as e:
                results[i] = {"error": {"code": e.code, "message": str(e)}}
        unique = list(dict.fromkeys(valid.values()))
        found = self.cache.get_many(scheme, unique) if self.cache else {}
        missing = [t for t in unique if t not in found]
        self.counters.add(cache_hits=len(unique) - len(missing), cache_misses=len(missing))
        computed: dict[str, dict] = {}
        if missing:
            for text, outcome in zip(missing, self.worker.classify(missing, scheme)):
                if isinstance(outcome, TextError):
                    computed[text] = {"error": {"code": "invalid_text", "message": str(outcome)}}
                else:
                    computed[text] = _as_dict(outcome)
            self.counters.add(texts_classified=len(missing))
            if self.cache:
                self.cache.put_many(scheme, {t: r for t, r in computed.items() if "error" not in r})
        for i, text in valid.items():
            if text in computed:
                results[i] = {**computed[text], "cached": False}
            else:
                results[i] = {**found[text], "cached": True}
        return results  # type: ignore[return-value]


def open_service(model_path: Path, engine_options: EngineOptions, cache_path: Path | None,
                 limits: Limits = Limits(), counters: Counters | None = None) -> ClassificationService:
    """Load the model and put the engine, its worker thread and the result cache together."""
    engine = ClassifierEngine(model_path, engine_options)
    counters = counters or Counters()
    cache = result_cache_for(cache_path, model_path, engine) if cache_path else None
    worker = EngineWorker(engine, on_batch=counters.record_batch)
    return ClassificationService(worker, cache, limits, counters)


def result_cache_for(cache_path: Path, model_path: Path, engine: ClassifierEngine) -> ResultCache:
    """The result cache for this model file and prompt set-up: results from another model, prompt
    preset, prompt version or truncation length are never reused."""
    from .model_files import model_fingerprint

    namespace = "|".join([model_fingerprint(model_path), engine.options.prompt_preset, str(engine.prompt_version),
                          str(engine.options.max_prompt_tokens)])
    return ResultCache(cache_path, namespace)


def _as_dict(result: Classification) -> dict:
    out = asdict(result)
    out.pop("cached", None)
    return out
