"""The thread that owns the engine.

- Gathers concurrent classification requests into batches, and keeps a burst together: clients that
  each got an answer from the last batch usually send their next request within milliseconds, so when
  fewer requests are waiting than that burst had, it waits up to `gather_wait_s` for the rest
  (instead of running one text, then the other seven behind it).
- Runs one generation at a time, one token per turn, and the waiting classification requests (up to
  TURN_TEXTS texts a turn) between two tokens: a 1,024-token generation never holds classification
  (Excel) back for more than one step, and a long classification queue does not stall a stream. A
  request of more than TURN_TEXTS texts is worked through in slices of TURN_TEXTS, one per turn,
  keeping its place at the head of the queue: a 2,048-text request delays a stream by one slice's
  decodes per token, not by the whole request.
- Isolates failures: when a batched decode fails, the jobs are retried separately, then the texts of
  the failing job one by one, so only the guilty text gets an error.
- Bounds every wait: a full queue is refused at once (Busy), a request the engine does not get to in
  `max_wait_s` gives up (TimedOut), and closing fails whatever is still waiting (ShuttingDown). All
  three are `Unavailable`: the server answers 503 with Retry-After.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from .classifier import ClassifierEngine, TextError

log = logging.getLogger("finsent.worker")


class Unavailable(RuntimeError):
    """The request cannot be served now; retrying after `retry_after` seconds may work."""

    code = "server_busy"
    retry_after = 1


class Busy(Unavailable):
    """The queue is full."""


class TimedOut(Unavailable):
    code = "timeout"
    retry_after = 5


class ShuttingDown(Unavailable):
    code = "shutting_down"
    retry_after = 10


@dataclass(eq=False)  # a job is itself: found in the queue by identity
class _ClassifyJob:
    texts: list[str]
    scheme: str
    unit: str | None = None  # None: classify the texts; "word"/"phrase": explain them (engine.explain)
    future: Future = field(default_factory=Future)
    started: threading.Event = field(default_factory=threading.Event)
    taken: int = 0  # texts handed to a turn so far (the engine thread's, under the lock)
    results: list = field(default_factory=list)  # results of the slices run so far, in order
    abandoned: threading.Event = field(default_factory=threading.Event)  # its caller stopped waiting


@dataclass
class _Slice:
    """Texts [start, end) of one job, run in one turn."""

    job: _ClassifyJob
    start: int
    end: int

    @property
    def texts(self) -> list[str]:
        return self.job.texts[self.start : self.end]

    def finish(self, results: list) -> None:
        self.job.results.extend(results)
        if len(self.job.results) == len(self.job.texts):
            self.job.future.set_result(self.job.results)


@dataclass
class _GenerateJob:
    tokens: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    pieces: queue.Queue = field(default_factory=queue.Queue)
    started: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)


_END = object()
TURN_TEXTS = 64  # texts classified per turn of the engine thread (a few decodes of up to 16 texts)
# A request that comes within 5 x GATHER_WAIT_S of the last batch's end belongs to the same burst of
# clients: the engine waits up to GATHER_WAIT_S for as many requests as that burst had. A decode takes
# 100 ms or more on a laptop CPU, so the wait is small beside it (measured with 8 closed-loop clients:
# batches of 1, 7, 1, 7... became 8, 8, 8, +7% texts/s); one client alone (last batch: 1 request) never
# waits.
GATHER_WAIT_S = 0.01


class GenerationStream:
    """The pieces of one generation, as they come. close() stops the generation at its next step,
    whether or not anything was read (a client that goes away before the first token)."""

    def __init__(self, job: _GenerateJob, max_wait_s: float):
        self._job = job
        self._max_wait_s = max_wait_s
        self._done = False

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        try:
            item = self._job.pieces.get(timeout=self._max_wait_s)
        except queue.Empty:
            self.close()
            raise TimedOut("the generation stalled") from None
        if item is _END or isinstance(item, BaseException):
            self.close()
            if item is _END:
                raise StopIteration
            raise item
        return item

    def close(self) -> None:
        self._done = True
        self._job.cancelled.set()

    def __del__(self):
        self._job.cancelled.set()


class EngineWorker:
    def __init__(self, engine: ClassifierEngine, max_queued_texts: int = 2048, max_queued_generations: int = 8,
                 max_wait_s: float | None = 60.0, on_batch: Callable[[int], None] = lambda n: None,
                 gather_wait_s: float = GATHER_WAIT_S):
        """max_wait_s: how long a request may wait for the engine to start on it, and then for its
        own result; None waits as long as it takes (a local batch job, not a server).
        gather_wait_s: the longest wait for the rest of a burst (see the module's docstring)."""
        self.engine = engine
        self.gather_wait_s = gather_wait_s
        self._burst_jobs = 0  # requests of the last burst: those just answered plus those that were waiting
        self._last_turn_end = float("-inf")
        self.max_queued_texts = max_queued_texts
        self.max_queued_generations = max_queued_generations
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        self._cond = threading.Condition()
        self._classify_jobs: deque[_ClassifyJob] = deque()
        self._generate_jobs: deque[_GenerateJob] = deque()
        self._queued_texts = 0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="finsent-engine", daemon=True)
        self._thread.start()

    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    # -- called from request threads -------------------------------------------------------------
    def classify(self, texts: list[str], scheme: str) -> list:
        """The engine's results for `texts` (a Classification or a TextError each), in order."""
        return self._submit(_ClassifyJob(list(texts), scheme))

    def explain(self, texts: list[str], scheme: str, unit: str = "word") -> list:
        """The engine's explanations of `texts` (an Explanation or a TextError each), in order. Each
        text is a turn of its own, so generations and other requests go on between them."""
        return self._submit(_ClassifyJob(list(texts), scheme, unit))

    def _submit(self, job: _ClassifyJob) -> list:
        texts = job.texts
        with self._cond:
            if self._closing:
                raise ShuttingDown("the server is shutting down")
            if self._queued_texts + len(texts) > self.max_queued_texts:
                raise Busy("the classification queue is full")
            self._queued_texts += len(texts)
            self._classify_jobs.append(job)
            self._cond.notify()
        if not job.started.wait(self.max_wait_s) and job.future.cancel():  # skipped by the engine thread
            raise TimedOut(f"the model did not get to this request within {self.max_wait_s:.0f} s")
        try:
            return job.future.result(timeout=self.max_wait_s)
        except FutureTimeout:
            job.abandoned.set()  # its slices not yet run are dropped: nobody waits for them
            raise TimedOut(f"the model did not finish this request within {self.max_wait_s:.0f} s") from None

    def generate(self, tokens: list[int], max_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int | None = None) -> Iterator[bytes]:
        """Queue a generation and wait (at most max_wait_s) until it starts; then iterate its pieces.
        Closing the iterator (or dropping it) stops the generation."""
        job = _GenerateJob(list(tokens), max_tokens, temperature, top_p, seed)
        with self._cond:
            if self._closing:
                raise ShuttingDown("the server is shutting down")
            if len(self._generate_jobs) >= self.max_queued_generations:
                raise Busy("too many generation requests are waiting")
            self._generate_jobs.append(job)
            self._cond.notify()
        if not job.started.wait(self.max_wait_s):
            job.cancelled.set()  # the engine thread skips it
            raise TimedOut(f"the model did not get to this generation within {self.max_wait_s:.0f} s")
        return GenerationStream(job, self.max_wait_s)

    def close(self, timeout: float = 30.0) -> bool:
        """Stop taking work, fail what is waiting, stop a running generation; True once the engine
        thread has exited (only then may the engine's native memory be freed)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the engine thread -------------------------------------------------------------------------
    def _run(self) -> None:
        generation: tuple[_GenerateJob, Iterator] | None = None
        while True:
            with self._cond:
                while not (self._closing or self._classify_jobs or self._generate_jobs or generation):
                    self._cond.wait()
                if self._closing:
                    break
                if generation is None:
                    self._gather_burst()
                turn = self._take_classification_turn()
                next_generation = self._generate_jobs.popleft() if generation is None and self._generate_jobs else None
            turn = [part for part in turn if self._still_wanted(part)]
            if turn:
                self._run_classification(turn)
                with self._cond:
                    self._burst_jobs, self._last_turn_end = len(turn) + len(self._classify_jobs), time.monotonic()
            if next_generation is not None:
                generation = self._start_generation(next_generation)
            if generation is not None and not self._step_generation(*generation):
                generation = None
        self._fail_pending(generation)

    def _gather_burst(self) -> None:
        """(Holding the lock.) When fewer requests are waiting than the last burst had (those answered by
        the last turn, plus those that were already waiting for the next), and they came right after
        it, wait briefly for the rest, up to a turn's worth of texts."""
        if not self._classify_jobs or time.monotonic() - self._last_turn_end > 5 * self.gather_wait_s:
            return
        deadline = time.monotonic() + self.gather_wait_s
        while (len(self._classify_jobs) < self._burst_jobs and self._queued_texts < TURN_TEXTS
               and not self._closing and not self._generate_jobs):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _take_classification_turn(self) -> list[_Slice]:
        """(Holding the lock.) The waiting texts for one turn, oldest first, up to TURN_TEXTS: whole
        jobs while they fit, and at least one slice. A job bigger than a turn gives its next TURN_TEXTS
        texts and stays at the head of the queue for the next turn; the jobs behind it keep their place
        (and their wait limit)."""
        turn: list[_Slice] = []
        texts = 0
        while self._classify_jobs:
            job = self._classify_jobs[0]
            remaining = len(job.texts) - job.taken
            if job.unit is not None:
                # An explanation costs a text per word: one text is a whole turn, and the job then goes
                # to the back of the queue, so requests sent meanwhile are answered between its texts.
                if turn:
                    break
                turn.append(_Slice(job, job.taken, job.taken + 1))
                job.taken += 1
                texts += 1
                self._classify_jobs.popleft()
                if job.taken < len(job.texts):
                    self._classify_jobs.append(job)
                break
            if turn and texts + remaining > TURN_TEXTS:
                break
            part = _Slice(job, job.taken, job.taken + min(remaining, TURN_TEXTS))
            job.taken = part.end
            turn.append(part)
            texts += part.end - part.start
            if job.taken < len(job.texts):
                break  # the rest of this job is the next turn's
            self._classify_jobs.popleft()
        self._queued_texts -= texts
        return turn

    def _still_wanted(self, part: _Slice) -> bool:
        """Whether to run this slice: a job's first slice starts it (unless its caller cancelled it),
        and a job whose caller gave up or that already failed runs no further slices."""
        job = part.job
        if part.start == 0:
            if not job.future.set_running_or_notify_cancel():
                return False
            job.started.set()
            return True
        if job.abandoned.is_set() or job.future.done():
            with self._cond:
                if job in self._classify_jobs:  # at the head, or (an explanation) further back
                    self._classify_jobs.remove(job)
                    self._queued_texts -= len(job.texts) - job.taken
            return False
        return True

    def _fail_pending(self, generation) -> None:
        with self._cond:
            jobs, self._classify_jobs = list(self._classify_jobs), deque()
            waiting, self._generate_jobs = list(self._generate_jobs), deque()
            self._queued_texts = 0
        for job in jobs:
            # a job with slices already run is running; the others are started here only to fail
            if job.future.done():  # failed on an earlier slice (unknown scheme): already answered
                pass
            elif job.taken or job.future.set_running_or_notify_cancel():
                job.future.set_exception(ShuttingDown("the server is shutting down"))
            job.started.set()  # wakes its caller, who finds the exception
        for job in waiting:
            job.pieces.put(ShuttingDown("the server is shutting down"))
            job.started.set()
        if generation is not None:
            job, steps = generation
            steps.close()  # frees its sequence in the KV cache
            job.pieces.put(ShuttingDown("the server shut down during the generation"))

    # -- classification ----------------------------------------------------------------------------
    def _run_classification(self, turn: list[_Slice]) -> None:
        if turn[0].job.unit is not None:
            self._run_explanation(turn[0])
            return
        by_scheme: dict[str, list[_Slice]] = {}
        for part in turn:
            by_scheme.setdefault(part.job.scheme, []).append(part)
        for scheme, parts in by_scheme.items():
            try:
                texts = [t for part in parts for t in part.texts]
                results = self.engine.classify_batch(texts, scheme, on_batch=self.on_batch)
            except Exception:
                log.warning("a batch of %d requests failed; retrying them one by one", len(parts), exc_info=True)
                for part in parts:
                    self._run_one_slice(part)
                continue
            start = 0
            for part in parts:
                part.finish(results[start : start + len(part.texts)])
                start += len(part.texts)

    def _run_one_slice(self, part: _Slice) -> None:
        job = part.job
        if job.scheme not in self.engine.schemes:  # the request itself is wrong: it fails alone
            job.future.set_exception(ValueError(f"unknown scheme {job.scheme!r}"))
            return
        try:
            results = self.engine.classify_batch(part.texts, job.scheme, on_batch=self.on_batch)
        except Exception:
            results = [self._classify_alone(text, job.scheme) for text in part.texts]
        part.finish(results)

    def _run_explanation(self, part: _Slice) -> None:
        job = part.job
        if job.scheme not in self.engine.schemes:  # the request itself is wrong: it fails alone
            job.future.set_exception(ValueError(f"unknown scheme {job.scheme!r}"))
            return
        results = []
        for text in part.texts:
            try:
                results.append(self.engine.explain(text, job.scheme, job.unit, on_batch=self.on_batch))
            except TextError as e:
                results.append(e)
            except Exception as e:
                log.warning("explanation failed for one text", exc_info=True)
                results.append(TextError(f"the model could not process this text ({type(e).__name__})",
                                         code="inference_failed"))
        part.finish(results)

    def _classify_alone(self, text: str, scheme: str):
        try:
            return self.engine.classify_batch([text], scheme, on_batch=self.on_batch)[0]
        except Exception as e:
            log.warning("classification failed for one text", exc_info=True)
            return TextError(f"the model could not process this text ({type(e).__name__})", code="inference_failed")

    # -- generation --------------------------------------------------------------------------------
    def _start_generation(self, job: _GenerateJob):
        job.started.set()
        if job.cancelled.is_set():
            return None
        steps = self.engine.generation_steps(job.tokens, job.max_tokens, job.temperature, job.top_p, job.seed)
        return job, steps

    @staticmethod
    def _step_generation(job: _GenerateJob, steps: Iterator) -> bool:
        """Advance the generation by one decode; False when it is over."""
        if job.cancelled.is_set():
            steps.close()
            job.pieces.put(_END)
            return False
        try:
            piece = next(steps)
        except StopIteration:
            job.pieces.put(_END)
            return False
        except Exception as e:
            log.warning("generation failed", exc_info=True)
            job.pieces.put(e)
            return False
        if piece is not None:
            job.pieces.put(piece)
        return True
