"""`finsent eval`'s run: read a labelled file, label its texts with each model, measure.

The file is read by the same readers as `finsent classify` (jobs/tables: every format, encodings,
sheets), texts go through the same classification service (batched, result cache), and each model is
loaded once and answers each distinct text once. Rows are skipped only for an empty text or an empty
gold label (counted). A row that a model cannot classify (a text over the limit...) is left out of
every model's figures, so all models are measured on the same rows, and counted too.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..jobs.file_job import CHUNK_ROWS
from ..jobs.scoring import classify_values
from ..jobs.tables import NotText, open_table
from .gold_labels import (LABEL_SETS, NEUTRAL_BAND, GoldLabelError, GoldReading, collapse_7_to_3,
                          read_gold_labels)
from .metrics import DEFAULT_SEED, Predictions, compare, label_metrics, most_confident_errors


@dataclass(frozen=True)
class EvalRequest:
    input_path: Path
    text_column: str
    label_column: str
    models: list[Path]
    prompts: list[str] = field(default_factory=lambda: ["card"])
    scheme: str = "7"  # the labels the models are asked for
    sheet: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    label_map: dict | None = None
    neutral_band: float = NEUTRAL_BAND
    threads: int = 0
    result_cache: Path | None = None
    seed: int = DEFAULT_SEED
    gold_convention: str | None = None  # --gold-convention: how integer gold labels are numbered


@dataclass
class ModelRun:
    name: str
    model_path: Path
    prompt: str
    predictions: Predictions | None = None  # in the gold labels' set (collapsed when needed)
    model_labels: list[str] = field(default_factory=list)  # per evaluated row, in the model's own set
    texts_per_s: float = 0.0


@dataclass
class Evaluation:
    request: EvalRequest
    gold: GoldReading
    label_names: tuple[str, ...]  # the gold labels' set: what every figure is in
    collapsed: bool  # 7-label predictions read as 3 labels
    texts: list[str]  # evaluated rows
    row_numbers: list[int]  # their 1-based data row in the file
    gold_index: np.ndarray
    skipped: dict[str, int]  # reason -> rows
    runs: list[ModelRun]
    metrics: list[dict] = field(default_factory=list)  # per run
    comparisons: list[dict] = field(default_factory=list)  # per run after the first, against the first
    confident_errors: list[list[int]] = field(default_factory=list)  # per run: evaluated-row indices
    notes: list[str] = field(default_factory=list)  # how the file was read
    subjects: list[str | None] | None = None  # per evaluated row: what its instruction asked about (benchmarks)
    # Per run, once explain_confident_errors has run: evaluated-row index -> its /v1/explain answer, or
    # {"error": {code, message}} when it could not be explained. Empty: not asked (the report shows no shading).
    error_explanations: list[dict[int, dict]] = field(default_factory=list)


class EvalError(ValueError):
    """The evaluation cannot run as asked: one line for the user."""


def _empty(value) -> bool:
    """None, a blank string, NaN (pandas' missing value) or a cell that is not text."""
    return (value is None or isinstance(value, NotText) or (isinstance(value, str) and not value.strip())
            or (isinstance(value, float) and value != value))


def _skip_reason(text, gold) -> str | None:
    """Why a row is not evaluated (counted under this reason), or None."""
    if _empty(text):
        return "empty text"
    if _empty(gold):
        return "empty gold label"
    return None


def read_labelled_rows(request: EvalRequest):
    """(texts, gold values, row numbers, skipped counts, notes) of the rows to evaluate."""
    common = {"sheet": request.sheet, "encoding": request.encoding, "delimiter": request.delimiter}
    text_table = open_table(request.input_path, request.text_column, **common)
    if text_table.format_name == "text lines":
        raise EvalError("a .txt file holds texts only: evaluate a table with a text column and a label column")
    gold_table = open_table(request.input_path, request.label_column, **common, text_only=False)
    pairs = (pair for text_chunk, gold_chunk in zip(text_table.texts(CHUNK_ROWS), gold_table.texts(CHUNK_ROWS))
             for pair in zip(text_chunk, gold_chunk))
    texts, golds, numbers, skipped = _kept_rows(pairs)
    notes = list(dict.fromkeys(text_table.notes + gold_table.notes))
    return texts, golds, numbers, skipped, notes


def _gold_key(value):
    return value if isinstance(value, (str, int, float)) else str(value)


def evaluate(request: EvalRequest, open_service: Callable, on_model: Callable[[str, int], Callable[[int], None]]
             = lambda name, total: (lambda n: None)) -> Evaluation:
    """Run every model over the labelled rows and measure. `open_service(model_path, prompt)` gives a
    ClassificationService (closed here); `on_model(name, texts)` gives the progress callback."""
    if not request.models:
        raise EvalError("no model to evaluate")
    texts, golds, numbers, skipped, notes = read_labelled_rows(request)
    return evaluate_rows(request, texts, golds, numbers, skipped, notes, open_service, on_model)


def labelled_rows(texts: list, golds: list) -> tuple[list, list, list[int], dict]:
    """In-memory rows as read_labelled_rows reads a file's: (texts, gold values, 1-based row numbers,
    skipped counts), rows with an empty text or gold label left out and counted."""
    return _kept_rows(zip(texts, golds))


def _kept_rows(pairs) -> tuple[list, list, list[int], dict]:
    """(text, gold) pairs in row order, streamed: the rows kept, their 1-based numbers, the skipped counts."""
    kept_texts, kept_golds, numbers = [], [], []
    skipped = Counter()
    for row, (text, gold) in enumerate(pairs, start=1):
        reason = _skip_reason(text, gold)
        if reason:
            skipped[reason] += 1
        else:
            kept_texts.append(text)
            kept_golds.append(gold)
            numbers.append(row)
    return kept_texts, kept_golds, numbers, dict(skipped)


def evaluate_rows(request: EvalRequest, texts: list, golds: list, numbers: list[int], skipped: dict, notes: list[str],
                  open_service: Callable, on_model: Callable[[str, int], Callable[[int], None]]
                  = lambda name, total: (lambda n: None), subjects: list[str] | None = None) -> Evaluation:
    """evaluate() on rows already read (a file's, or the Python API's in-memory ones). `subjects`: what each
    row's instruction asks about ("news", "tweet": the benchmarks ask as FinGPT does); given, each model
    is opened once per subject as `open_service(model_path, prompt, subject)`."""
    if not texts:
        raise EvalError("no row has both a text and a gold label" + _skipped_phrase(skipped))
    gold = read_gold_labels(Counter(_gold_key(v) for v in golds), request.label_map, request.neutral_band,
                            request.gold_convention)
    if gold.scheme == "7" and request.scheme == "3":
        raise EvalError("the gold labels have 7 classes but --scheme 3 asks the model for 3: 3 predictions cannot "
                        "be split into 7 (use --scheme 7, or map the gold labels to 3 with --label-map)")
    label_names = LABEL_SETS[gold.scheme]
    collapsed = request.scheme == "7" and gold.scheme == "3"
    gold_index = np.array([label_names.index(gold.label_of(v)) for v in golds])

    runs = [ModelRun(_run_name(path, prompt, request), path, prompt)
            for path in request.models for prompt in request.prompts]
    keys = list(zip(texts, subjects if subjects is not None else [None] * len(texts)))
    unique = list(dict.fromkeys(keys))
    failed = np.zeros(len(texts), dtype=bool)
    answers_by_run = []
    for run in runs:
        answers = _answers(run, unique, request, open_service, on_model(run.name, len(unique)))
        results = [answers[key] for key in keys]
        failed |= np.array([bool(r.error) for r in results])
        answers_by_run.append(results)
    if failed.any():
        skipped["the model could not classify"] = int(failed.sum())
    keep = np.flatnonzero(~failed)
    if not len(keep):
        raise EvalError("the model could not classify any row" + _skipped_phrase(skipped))
    model_labels = LABEL_SETS[request.scheme]
    for run, results in zip(runs, answers_by_run):
        kept = [results[i] for i in keep]
        run.model_labels = [r.label for r in kept]
        run.predictions = _in_gold_labels(kept, model_labels, label_names, collapsed)

    evaluation = Evaluation(request, gold, label_names, collapsed, [texts[i] for i in keep],
                            [numbers[i] for i in keep], gold_index[keep], skipped, runs, notes=notes,
                            subjects=None if subjects is None else [subjects[i] for i in keep])
    for run in runs:
        evaluation.metrics.append(label_metrics(evaluation.gold_index, run.predictions, label_names, request.seed))
        evaluation.confident_errors.append(most_confident_errors(evaluation.gold_index, run.predictions))
    for run in runs[1:]:
        evaluation.comparisons.append(compare(evaluation.gold_index, runs[0].predictions, run.predictions, request.seed))
    return evaluation


def explain_confident_errors(evaluation: Evaluation, open_service: Callable,
                             on_model: Callable[[str, int], Callable[[int], None]]
                             = lambda name, total: (lambda n: None), unit: str = "word") -> None:
    """Why each run's most confident errors got their label: each listed error's text explained by
    occlusion (each word's weight: the score with it minus without it), filled into
    evaluation.error_explanations for the report. Only the listed errors: an explanation costs about one
    classification per word. `open_service` as for evaluate_rows (with the subject when the rows have
    one); the services must have explain(texts, scheme, unit). Nothing here fails the evaluation: a row
    that cannot be explained (a model that will not load, a text over the word limit, an engine error)
    gets {"error": ...} and the report shows it unshaded with the reason."""
    from ..limits import Limits

    evaluation.error_explanations = []
    for run, errors in zip(evaluation.runs, evaluation.confident_errors):
        explained: dict[int, dict] = {}
        evaluation.error_explanations.append(explained)
        progress = on_model(run.name, len(errors))
        subject_of = (lambda i: None) if evaluation.subjects is None else evaluation.subjects.__getitem__
        for subject in dict.fromkeys(subject_of(i) for i in errors):
            rows = [i for i in errors if subject_of(i) == subject]
            try:
                service = (open_service(run.model_path, run.prompt) if subject is None
                           else open_service(run.model_path, run.prompt, subject))
            except Exception as e:  # noqa: BLE001 - the report is still written, with the reason
                explained.update((i, _not_explained(f"the model did not load: {e}")) for i in rows)
                progress(len(rows))
                continue
            try:
                limit = getattr(getattr(service, "limits", None), "max_explain_words", Limits().max_explain_words)
                for i in rows:  # one text at a time: an engine error stays that row's, and progress moves
                    explained[i] = _explanation(service, evaluation.texts[i], evaluation.request.scheme, unit, limit)
                    progress(1)
            finally:
                service.close()


def _not_explained(message: str, code: str = "not_explained") -> dict:
    return {"error": {"code": code, "message": message}}


def _explanation(service, text: str, scheme: str, unit: str, limit: int) -> dict:
    from ..engine.occlusion import units

    count = len(units(text, unit))
    if count > limit:  # /v1/explain's own bound on one request's cost
        return _not_explained(f"{count} words; at most {limit} are explained per text", "too_many_words")
    try:
        return service.explain([text], scheme, unit)[0]
    except Exception as e:  # noqa: BLE001 - one row's failure is that row's note, not the report's end
        return _not_explained(str(e) or type(e).__name__)


def _skipped_phrase(skipped: dict) -> str:
    return (" (" + ", ".join(f"{n:,} with {why}" for why, n in skipped.items()) + ")") if skipped else ""


def _run_name(path: Path, prompt: str, request: EvalRequest) -> str:
    name = Path(path).name
    return f"{name} ({prompt} prompt)" if len(request.prompts) > 1 else name


def _answers(run: ModelRun, unique: list[tuple[str, str | None]], request: EvalRequest, open_service,
             progress) -> dict:
    """Each distinct (text, subject)'s RowResult from this model (loaded once per subject, closed after)."""
    answers = {}
    seconds = 0.0  # classifying only: loading the model is not the texts' time
    for subject in dict.fromkeys(subject for _, subject in unique):
        texts = [text for text, s in unique if s == subject]
        try:
            service = (open_service(run.model_path, run.prompt) if subject is None
                       else open_service(run.model_path, run.prompt, subject))
        except Exception as e:  # a missing or broken file: one line, not a traceback
            raise EvalError(f"cannot load {run.model_path}: {e}") from None
        started = time.perf_counter()
        try:
            for start in range(0, len(texts), CHUNK_ROWS):
                chunk = texts[start : start + CHUNK_ROWS]
                answers.update(((text, subject), result)
                               for text, result in zip(chunk, classify_values(service, chunk, request.scheme)))
                progress(len(chunk))
        finally:
            seconds += time.perf_counter() - started
            service.close()
    run.texts_per_s = len(unique) / max(seconds, 1e-9)
    return answers


def _in_gold_labels(results: list, model_labels: tuple[str, ...], label_names: tuple[str, ...],
                    collapsed: bool) -> Predictions:
    """Predicted label indices and probabilities in the gold labels' set: 7 labels collapsed to 3 by
    gold_labels.collapse_7_to_3 (each sign's probabilities summed, the label that distribution's argmax)."""
    probs = np.array([r.probs for r in results], dtype=float)
    if not collapsed:
        return Predictions(np.array([label_names.index(r.label) for r in results]), probs)
    labels, collapsed_probs = collapse_7_to_3(probs, model_labels)
    return Predictions(labels, collapsed_probs)


__all__ = ["EvalError", "EvalRequest", "Evaluation", "GoldLabelError", "ModelRun", "evaluate",
           "explain_confident_errors", "read_labelled_rows"]
