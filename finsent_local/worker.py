"""The thread that owns the engine: gathers concurrent requests into batches, runs generation jobs,
and refuses work when its queue is full (the server answers 503 with Retry-After)."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

from .engine import ClassifierEngine


class Busy(RuntimeError):
    """The queue is full; try again shortly."""


@dataclass
class _ClassifyJob:
    texts: list[str]
    scheme: str
    future: Future = field(default_factory=Future)


@dataclass
class _GenerateJob:
    prompt: str
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    pieces: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)


_END = object()


class EngineWorker:
    def __init__(self, engine: ClassifierEngine, max_queued_texts: int = 2048, max_queued_generations: int = 8,
                 on_batch: Callable[[int], None] = lambda n: None):
        self.engine = engine
        self.max_queued_texts = max_queued_texts
        self.max_queued_generations = max_queued_generations
        self.on_batch = on_batch
        self._jobs: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._queued_texts = 0
        self._queued_generations = 0
        self._thread = threading.Thread(target=self._run, name="finsent-engine", daemon=True)
        self._thread.start()

    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    def classify(self, texts: list[str], scheme: str):
        with self._lock:
            if self._queued_texts + len(texts) > self.max_queued_texts:
                raise Busy("the classification queue is full")
            self._queued_texts += len(texts)
        job = _ClassifyJob(list(texts), scheme)
        self._jobs.put(job)
        return job.future.result()

    def generate(self, prompt: str, max_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int | None = None) -> Iterator[bytes]:
        with self._lock:
            if self._queued_generations >= self.max_queued_generations:
                raise Busy("too many generation requests are waiting")
            self._queued_generations += 1
        job = _GenerateJob(prompt, max_tokens, temperature, top_p, seed)
        self._jobs.put(job)
        return self._pieces(job)

    @staticmethod
    def _pieces(job: _GenerateJob) -> Iterator[bytes]:
        try:
            while True:
                item = job.pieces.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            job.cancelled.set()  # the client went away or finished: stop generating

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)

    # -- the engine thread ---------------------------------------------------------------------
    def _run(self) -> None:
        held: deque = deque()
        while True:
            job = held.popleft() if held else self._jobs.get()
            if job is None:
                return
            if isinstance(job, _GenerateJob):
                self._run_generation(job)
                continue
            # Gather every classification job already waiting (generation jobs wait their turn).
            batch = [job]
            while True:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if isinstance(more, _ClassifyJob):
                    batch.append(more)
                else:
                    held.append(more)
                    if more is None:
                        break
            self._run_classification(batch)

    def _run_classification(self, jobs: list[_ClassifyJob]) -> None:
        by_scheme: dict[str, list[_ClassifyJob]] = {}
        for job in jobs:
            by_scheme.setdefault(job.scheme, []).append(job)
        for scheme, scheme_jobs in by_scheme.items():
            texts = [t for job in scheme_jobs for t in job.texts]
            try:
                results = self.engine.classify_batch(texts, scheme, on_batch=self.on_batch)
            except Exception as e:  # reported to every waiting request
                results = None
                error = e
            start = 0
            for job in scheme_jobs:
                with self._lock:
                    self._queued_texts -= len(job.texts)
                if results is None:
                    job.future.set_exception(error)
                else:
                    job.future.set_result(results[start : start + len(job.texts)])
                start += len(job.texts)

    def _run_generation(self, job: _GenerateJob) -> None:
        with self._lock:
            self._queued_generations -= 1
        try:
            for piece in self.engine.generate(job.prompt, job.max_tokens, job.temperature, job.top_p, job.seed):
                if job.cancelled.is_set():
                    break
                job.pieces.put(piece)
        except Exception as e:
            job.pieces.put(e)
        job.pieces.put(_END)
