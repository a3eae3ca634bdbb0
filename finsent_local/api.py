"""FinSent from Python: notebooks and scripts, in this process or against a running server.

    from finsent_local import FinSent

    fs = FinSent()                                   # the default model, in this process
    fs = FinSent(model="finsent-s.gguf", scheme="3")  # a given file
    fs = FinSent.connect("http://127.0.0.1:8000")    # a running `finsent serve`

    fs.label("Profit soared 40%")                    # 'strong positive'
    fs.classify("Profit soared 40%")                 # Result(label=..., score=..., probs={...}, ...)
    fs.classify_many(texts)                          # [Result, ...]; errors per item, never raised
    fs.classify_series(df["headline"])               # a DataFrame on the same index
    fs.document(release_text)                        # sentence labels and the document result
    fs.explain("Acme cuts guidance").strongest()     # [Word('cuts', weight=-0.41, ...), ...]: why the label

Both kinds give the same results: the in-process one calls the same classification service as the
server (the same validation, result cache and batched engine), the connected one asks the server.
One engine thread serves every caller, so an object may be used from many threads at once.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is optional
    import pandas

BATCH_TEXTS = 256  # texts per call into the service or per request: the server's own per-request limit
PROGRESS_FROM = BATCH_TEXTS  # inputs longer than one batch get a progress bar (unless progress=False)


class FinSentError(Exception):
    """A problem with one text (label(), score()) or with the model or server as a whole."""


@dataclass(frozen=True)
class Result:
    """One text's answer: its label, score in [-1, 1] and probabilities, or an error (label None)."""

    text: Any
    label: str | None = None
    score: float | None = None
    probs: dict[str, float] = field(default_factory=dict)
    truncated: bool = False  # the text was longer than the model's prompt budget and was cut
    error: str | None = None  # what was wrong with this text, as one sentence
    error_code: str | None = None  # the server's code for it: empty_text, invalid_text, text_too_long...

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Word:
    """A word (or pair of words) of an explained text and what removing it does to the answer."""

    text: str
    start: int  # offsets into the text, in characters (Python string indices)
    end: int
    weight: float  # the score with the word minus without it: > 0 pushed towards positive
    label_weight: float  # the label's probability with the word minus without it: > 0 supported the label
    label_without: str  # the label the text gets without it


@dataclass(frozen=True)
class Explanation(Result):
    """A Result with its words, in text order (empty for an error)."""

    unit: str = "word"
    words: tuple[Word, ...] = ()

    def strongest(self, k: int = 3) -> list[Word]:
        """The k words that moved the score most, strongest first."""
        from .engine.occlusion import strongest

        ranked = strongest([{"weight": w.weight, "label_weight": w.label_weight, "i": i}
                            for i, w in enumerate(self.words)], k)
        return [self.words[r["i"]] for r in ranked]


@contextmanager
def _server_errors():
    """A client error (the server stopped, a deadline passed) as one FinSentError for the whole call.
    The client module is imported only when one is raised: an in-process object never needs it."""
    try:
        yield
    except Exception as e:
        from .client import ClientError

        if isinstance(e, ClientError):
            raise FinSentError(str(e)) from None
        raise


def _missing(value) -> bool:
    """None, NaN (pandas' missing value) and pandas.NA: an empty cell, not a text."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def _result(text, answer: dict) -> Result:
    if "error" in answer:
        return Result(text, error=answer["error"].get("message", "not classified"), error_code=answer["error"].get("code"))
    return Result(text, answer["label"], answer["score"], dict(answer["probs"]), bool(answer.get("truncated")))


def _explanation(text, answer: dict) -> Explanation:
    if "error" in answer:
        return Explanation(text, error=answer["error"].get("message", "not explained"),
                           error_code=answer["error"].get("code"))
    words = tuple(Word(w["text"], w["start"], w["end"], w["weight"], w["label_weight"], w["label_without"])
                  for w in answer["words"])
    return Explanation(text, answer["label"], answer["score"], dict(answer["probs"]), bool(answer.get("truncated")),
                       unit=answer.get("unit", "word"), words=words)


class _InProcess:
    """The classification service in this process (what `finsent serve` runs)."""

    def __init__(self, service, model_path):
        self.service = service
        self.model_path = model_path

    def labels(self, scheme: str) -> tuple[str, ...]:
        return self.service.schemes[scheme].labels

    def classify(self, texts: list, scheme: str) -> list[dict]:
        return self.service.classify(texts, scheme)

    def explain(self, texts: list, scheme: str, unit: str) -> list[dict]:
        return self.service.explain(texts, scheme, unit)

    def document(self, text: str, scheme: str, about, explain: bool = False) -> dict:
        from .jobs.documents import DocumentTooLarge, about_names, classify_document

        try:
            return classify_document(text, scheme, self.service, about_names(about), explain=explain)
        except DocumentTooLarge as e:
            raise FinSentError(str(e)) from None

    def close(self) -> None:
        self.service.close()


class _ServiceView:
    """What the evaluation asks of a classification service (schemes, classify, close), over either kind
    of backend; closing it leaves the backend open."""

    def __init__(self, backend):
        self.backend = backend
        self.schemes = {name: _Labels(backend.labels(name)) for name in ("3", "7")}

    def classify(self, texts: list, scheme: str) -> list[dict]:
        return self.backend.classify(texts, scheme)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class _Labels:
    labels: tuple[str, ...]


class _Connected:
    """A running FinSent server, over HTTP (each request with its own deadline)."""

    def __init__(self, client, document_client):
        self.client = client
        self.document_client = document_client
        self._labels: dict[str, tuple[str, ...]] | None = None

    def labels(self, scheme: str) -> tuple[str, ...]:
        if self._labels is None:
            status = self.client.status()
            self._labels = {name: tuple(s["labels"]) for name, s in status.get("schemes", {}).items()}
        return self._labels[scheme]

    def classify(self, texts: list, scheme: str) -> list[dict]:
        return _strings_sent(texts, lambda send: self.client.classify(send, scheme))

    def explain(self, texts: list, scheme: str, unit: str) -> list[dict]:
        # the documents client: its deadline is long enough for an explanation's request
        return _strings_sent(texts, lambda send: self.document_client.explain(send, scheme, unit))

    def document(self, text: str, scheme: str, about, explain: bool = False) -> dict:
        return self.document_client.document(text, scheme, about=about, explain=explain)

    def close(self) -> None:
        pass


def _strings_sent(texts: list, ask) -> list[dict]:
    """ask(the string items) for the strings; a non-string item is answered here as the in-process
    service answers it (the server would refuse a whole request for one such item)."""
    results: list[dict | None] = [None] * len(texts)
    send = []
    for i, text in enumerate(texts):
        if isinstance(text, str):
            send.append(i)
        else:
            results[i] = {"error": {"code": "invalid_text", "message": "text must be a string"}}
    if send:
        for i, answer in zip(send, ask([texts[i] for i in send])):
            results[i] = answer
    return results  # type: ignore[return-value]


class FinSent:
    """Financial sentiment with Llama-FinSent-S: `FinSent(...)` runs the model in this process,
    `FinSent.connect(url)` uses a running server; both have the same methods and give the same results.

    scheme: "7" (strong negative ... strong positive) or "3" (negative, neutral, positive), the default
    for every method (each also takes `scheme=`). Use it as a context manager, or call close(), to
    free the model's memory at once; a forgotten object is closed when it is garbage-collected.
    """

    def __init__(self, model: str | None = None, scheme: str = "7", *, threads: int = 0, gpu: str = "auto",
                 prompt: str = "card", cache: bool = True, progress: bool = True):
        """Load `model` (a GGUF file; default: $FINSENT_MODEL, else the default model, downloaded and
        converted on first use as `finsent serve` does). gpu: "auto", "on" or "off". cache: keep results
        in the persistent result cache (shared with the CLI and the server)."""
        from .engine.availability import engine_missing

        missing = engine_missing()
        if missing:  # a client-only install: FinSent.connect(url) works there
            raise FinSentError(missing + "; or use FinSent.connect(url) with a running server")
        from .engine.classifier import EngineOptions
        from .engine.llama_runtime import gpu_layers
        from .engine.service import open_service
        from .first_run import ModelUnavailable, ensure_model
        from .limits import Limits
        from .model_files import result_cache_path

        try:
            n_gpu_layers = gpu_layers(gpu)
        except ValueError as e:  # not a choice, or GpuUnavailable
            raise FinSentError(str(e)) from None
        try:
            path = ensure_model(model)
        except ModelUnavailable as e:
            raise FinSentError(str(e)) from None
        options = EngineOptions(prompt_preset=prompt, n_threads=threads, n_gpu_layers=n_gpu_layers)
        try:
            service = open_service(path, options, result_cache_path() if cache else None, Limits(max_wait_s=None))
        except Exception as e:
            raise FinSentError(f"cannot load {path}: {e}") from None
        self._setup(_InProcess(service, path), scheme, progress)
        self.model_path = path

    @classmethod
    def connect(cls, url: str = "http://127.0.0.1:8000", api_key: str | None = None, scheme: str = "7", *,
                timeout: float = 60.0, progress: bool = True) -> FinSent:
        """Use the FinSent server at `url` (`finsent serve`); `timeout` is each request's deadline."""
        from .client import FinSentClient

        with _server_errors():
            client = FinSentClient(url, api_key, connect_timeout=2.0, timeout=timeout)
            documents = FinSentClient(url, api_key, connect_timeout=2.0, timeout=max(timeout, 300.0))
            client.health()
        self = cls.__new__(cls)
        self._setup(_Connected(client, documents), scheme, progress)
        self.model_path = None
        return self

    def _setup(self, backend, scheme: str, progress: bool) -> None:
        self._backend = backend
        self.scheme = self._scheme(scheme)
        self.progress = progress
        self._closed = False
        self._lock = threading.Lock()
        # Closed when garbage-collected too: the engine thread and llama.cpp's memory are not leaked.
        self._finalizer = weakref.finalize(self, backend.close)

    # -- lifetime --------------------------------------------------------------------------------------
    def close(self) -> None:
        """Free the model (in-process) and stop the engine thread. Calls after this raise FinSentError."""
        with self._lock:
            self._closed = True
        self._finalizer()

    def __enter__(self) -> FinSent:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise FinSentError("this FinSent object is closed; make a new one")

    # -- labels --------------------------------------------------------------------------------------------
    def labels(self, scheme: str | None = None) -> tuple[str, ...]:
        """The scheme's labels, from most negative to most positive."""
        self._check_open()
        try:
            with _server_errors():
                return self._backend.labels(self._scheme(scheme))
        except KeyError:
            raise FinSentError("the server has no labels yet (its model is still loading); try again shortly") from None

    def _scheme(self, scheme) -> str:
        value = str(scheme if scheme is not None else self.scheme).strip()
        if value not in ("3", "7"):
            raise FinSentError(f'scheme must be "3" or "7", not {scheme!r}')
        return value

    # -- one text ------------------------------------------------------------------------------------------
    def classify(self, text: str, scheme: str | None = None) -> Result:
        """One text's Result (a problem with the text is in its `error`, not raised)."""
        return self.classify_many([text], scheme, progress=False)[0]

    def label(self, text: str, scheme: str | None = None) -> str:
        """The label of one text; raises FinSentError when the text cannot be classified."""
        return self._answer(text, scheme).label  # type: ignore[return-value]

    def score(self, text: str, scheme: str | None = None) -> float:
        """The score of one text, from -1 (strong negative) to 1 (strong positive); raises FinSentError
        when the text cannot be classified."""
        return self._answer(text, scheme).score  # type: ignore[return-value]

    def _answer(self, text, scheme) -> Result:
        result = self.classify(text, scheme)
        if not result.ok:
            raise FinSentError(result.error)
        return result

    # -- many texts ----------------------------------------------------------------------------------------
    def classify_many(self, texts: Iterable, scheme: str | None = None, *, stream: bool = False,
                      progress: bool | None = None) -> list[Result] | Iterator[Result]:
        """A Result per item of `texts` (any iterable), in order, batched and cached. An item that is not
        a usable text (empty, None, NaN, a number, too long) gets a Result with its `error`; nothing is
        raised for one item. With stream=True, an iterator that reads `texts` a batch at a time (for
        inputs bigger than memory); else a list."""
        self._check_open()
        results = self._stream(texts, self._scheme(scheme), self.progress if progress is None else progress)
        return results if stream else list(results)

    def _stream(self, texts: Iterable, scheme: str, progress: bool) -> Iterator[Result]:
        total = len(texts) if hasattr(texts, "__len__") else None
        bar = _progress_bar(total, progress)
        try:
            batch: list = []
            for text in texts:
                batch.append(text)
                if len(batch) == BATCH_TEXTS:
                    yield from self._batch(batch, scheme)
                    bar.update(len(batch))
                    batch = []
            if batch:
                yield from self._batch(batch, scheme)
                bar.update(len(batch))
        finally:
            bar.close()

    def _batch(self, texts: list, scheme: str) -> list[Result]:
        self._check_open()
        asked = ["" if _missing(t) else t for t in texts]  # a missing value is an empty text
        with _server_errors():
            answers = self._backend.classify(asked, scheme)
        return [_result(text, answer) for text, answer in zip(texts, answers)]

    # -- explanations --------------------------------------------------------------------------------------
    def explain(self, texts: str | Iterable, scheme: str | None = None, *, unit: str = "word"):
        """Why each text got its label: an Explanation (a Result with `words`: each word's weight, what
        removing it does to the score and to the label's probability) per text, in order; for one
        string, its Explanation. Each word costs about one classification of the text, so explain the
        texts you need to justify, not a whole column. unit: "word", or "phrase" for pairs of adjacent
        words. Problems with a text are in its `error`, as for classify_many."""
        from .engine.occlusion import UNIT_KINDS

        self._check_open()
        if unit not in UNIT_KINDS:
            raise FinSentError(f'unit must be "word" or "phrase", not {unit!r}')
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        asked = ["" if _missing(t) else t for t in items]
        with _server_errors():
            answers = self._backend.explain(asked, self._scheme(scheme), unit)
        results = [_explanation(text, answer) for text, answer in zip(items, answers)]
        return results[0] if single else results

    # -- pandas --------------------------------------------------------------------------------------------
    def classify_series(self, series: pandas.Series, scheme: str | None = None, *,
                        progress: bool | None = None, prefix: str = "") -> pandas.DataFrame:
        """A DataFrame on `series`' index with the columns label, score, p_<label> (one per label) and
        error (missing where classified). Missing values (None, NaN) and non-texts give error rows."""
        pd = _pandas()
        from .jobs.tables import probability_column

        scheme_name = self._scheme(scheme)
        labels = self.labels(scheme_name)
        results = self.classify_many(series.tolist(), scheme_name, progress=progress)
        columns: dict[str, list] = {f"{prefix}label": [r.label for r in results],
                                    f"{prefix}score": [r.score for r in results]}
        for name in labels:
            columns[probability_column(name, prefix)] = [r.probs.get(name) if r.ok else None for r in results]
        columns[f"{prefix}error"] = [r.error for r in results]
        frame = pd.DataFrame(columns, index=series.index)
        for name in columns:
            if name.endswith("score") or name.startswith(f"{prefix}p_"):
                frame[name] = frame[name].astype("float64")
        return frame

    # -- documents ------------------------------------------------------------------------------------------
    def document(self, text: str, scheme: str | None = None, about: str | list[str] | None = None, *,
                 explain: bool = False) -> dict:
        """A long text (press release, transcript, filing) as sentences: {"document": {label, score,
        length_weighted_score, non_neutral_share, label_counts, most_positive, most_negative, ...},
        "sentences": [{index, start, end, text, label, score, probs}, ...]}, as POST /v1/documents
        answers. `about`: only the sentences naming one of these ("Acme|Acme Corp" or a list).
        explain=True: the most positive and most negative sentences also get their `words`, as
        explain() gives them (as dicts: start, end, text, weight, label_weight, label_without)."""
        self._check_open()
        with _server_errors():
            return self._backend.document(text, self._scheme(scheme), about, explain)

    # -- evaluation -----------------------------------------------------------------------------------------
    def evaluate(self, texts: Iterable, gold: Iterable, scheme: str | None = None, *, label_map: dict | None = None,
                 gold_convention: str | None = None, neutral_band: float | None = None,
                 seed: int | None = None) -> dict:
        """How right the labels are: `finsent eval`'s figures (accuracy, F1 per label, confusion matrix,
        calibration, 95% intervals) for `texts` against their `gold` labels (as many of each), read with
        the same conventions (label names, bearish/bullish, -1/0/1, scores...; `gold_convention`
        "twitter" or "phrasebank" for 0/1/2, as --gold-convention; `label_map` for other values). Rows
        with an empty text or gold label are skipped and counted. Returns what `finsent eval --json`
        writes, with this model as its one model. Needs scikit-learn (the [eval] extra)."""
        self._check_open()
        texts, gold = list(texts), list(gold)
        if len(texts) != len(gold):
            raise FinSentError(f"texts and gold must be as long as each other: {len(texts):,} texts, "
                               f"{len(gold):,} gold labels")
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise FinSentError("evaluate needs scikit-learn: pip install 'finsent-local[eval]'") from None
        from pathlib import Path

        from .quality.evaluation import EvalError, EvalRequest, evaluate_rows, labelled_rows
        from .quality.gold_labels import NEUTRAL_BAND, GoldLabelError
        from .quality.metrics import DEFAULT_SEED
        from .quality.report import metrics_json

        name = str(self.model_path) if self.model_path else self._backend.client.base_url
        request = EvalRequest(Path("(in memory)"), "text", "gold", [Path(name)], scheme=self._scheme(scheme),
                              label_map=label_map, neutral_band=NEUTRAL_BAND if neutral_band is None else neutral_band,
                              seed=DEFAULT_SEED if seed is None else seed, gold_convention=gold_convention)
        kept_texts, golds, numbers, skipped = labelled_rows(texts, gold)
        try:
            with _server_errors():  # the view asks for the labels first: a stopped server is said as such
                view = _ServiceView(self._backend)
                evaluation = evaluate_rows(request, kept_texts, golds, numbers, skipped, [], lambda path, prompt: view)
        except (EvalError, GoldLabelError) as e:
            raise FinSentError(str(e)) from None
        return metrics_json(evaluation)

    def __repr__(self) -> str:
        where = f"model={str(self.model_path)!r}" if self.model_path else f"url={self._backend.client.base_url!r}"
        return f"FinSent({where}, scheme={self.scheme!r}{', closed' if self._closed else ''})"


def _pandas():
    try:
        import pandas
    except ImportError:
        raise FinSentError("classify_series needs pandas: pip install pandas") from None
    return pandas


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int | None, wanted: bool):
    """tqdm.auto's bar (a widget in Jupyter, text in a terminal) for inputs longer than one batch."""
    if not wanted or (total is not None and total <= PROGRESS_FROM):
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="text", smoothing=0.1)
