"""Reference texts for `finsent tune`: texts that stand for what the desk reads every day and wants
labelled as before. Tuning keeps the base model's label distribution on some of them (training.py's keep
term) and measures, on the others, how many labels the tuned model changes (forgetting.py).

Where they come from: `--reference FILE` (any format `finsent classify` reads; a gold column optional), or,
when tuning the default model with no file given, a seeded sample of the model's own training data
(FinGPT/fingpt-sentiment-train, the set the model card names), downloaded once through huggingface-hub and
read from its cache afterwards. Plain data here: no torch, no model.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..engine.labels import DEFAULT_PROMPT_PRESET, LabelScheme, default_schemes
from .examples import MAX_PROMPT_TOKENS

DEFAULT_REFERENCE_REPO = "FinGPT/fingpt-sentiment-train"
DEFAULT_REFERENCE_PATTERNS = ("*.parquet", "**/*.parquet")  # its one split, data/train-*.parquet
DEFAULT_REFERENCE_COLUMN = "input"
DEFAULT_REFERENCE_ROWS = 400  # sampled, seeded: enough for agreement to within a few points, cheap to train on
HELD_OUT_SHARE = 0.4  # of the reference texts, measured only (never trained on)
MIN_HELD_OUT = 10
READ_CHUNK_ROWS = 4096


class ReferenceError(ValueError):
    """The reference texts cannot be used as asked: one line for the user."""


@dataclass(frozen=True)
class Reference:
    texts: list[str]
    golds: list[str | None] | None  # gold labels in the tuned scheme, when the reference has a label column
    source: dict  # for the manifest: the file (path, sha256, column) or the hub set (repo, commit, rows)
    train: list[int]  # indices of the texts whose base labels training keeps
    held_out: list[int]  # indices of the texts forgetting is measured on


def read_reference_file(path: Path, column: str, label_column: str | None, scheme: str, sheet: str | None = None,
                        encoding: str | None = None, delimiter: str | None = None) -> tuple[list[str], list | None]:
    """(texts, gold labels or None) of a reference file; rows with an empty text are left out."""
    from ..jobs.errors import JobError
    from ..jobs.tables.formats import open_table

    if not Path(path).is_file():
        raise ReferenceError(f"--reference {path}: no such file")
    common = {"sheet": sheet, "encoding": encoding, "delimiter": delimiter}
    try:
        texts = [value for chunk in open_table(path, column, **common).texts(READ_CHUNK_ROWS) for value in chunk]
        golds = None
        if label_column:
            golds = [value for chunk in open_table(path, label_column, **common, text_only=False).texts(READ_CHUNK_ROWS)
                     for value in chunk]
    except JobError as e:
        raise ReferenceError(f"--reference {path}: {e}") from None
    kept = [i for i, text in enumerate(texts) if isinstance(text, str) and text.strip()]
    if not kept:
        raise ReferenceError(f"--reference {path}: no row has a text in column {column!r}")
    kept_golds = _gold_labels([golds[i] for i in kept], scheme, path) if golds is not None else None
    return [texts[i] for i in kept], kept_golds


def _gold_labels(values: list, scheme: str, path: Path) -> list[str | None]:
    """Gold values read as `finsent eval` reads them, in the tuned scheme (7-label gold collapsed for 3)."""
    from ..quality.gold_labels import COLLAPSE_7_TO_3, GoldLabelError, read_gold_labels

    present = [v for v in values if v is not None and str(v).strip() != ""]
    try:
        reading = read_gold_labels(Counter(_key(v) for v in present))
    except GoldLabelError as e:
        raise ReferenceError(f"--reference {path}: --reference-label-column: {e}") from None
    if reading.scheme == "3" and scheme == "7":
        raise ReferenceError(f"--reference {path}: its gold labels have 3 classes; they can measure --scheme 3, not 7")
    labels = [reading.label_of(_key(v)) if v is not None and str(v).strip() != "" else None for v in values]
    if reading.scheme == "7" and scheme == "3":
        labels = [COLLAPSE_7_TO_3[label] if label else None for label in labels]
    return labels


def _key(value):
    return value if isinstance(value, (str, int, float)) else str(value)


def split_reference(count: int, seed: int) -> tuple[list[int], list[int]]:
    """(trained on, held out): a seeded shuffle, HELD_OUT_SHARE held out (at least MIN_HELD_OUT, and at
    least one text left to train on)."""
    if count < MIN_HELD_OUT + 1:
        raise ReferenceError(f"the reference has {count} text{'s' if count != 1 else ''}; at least "
                             f"{MIN_HELD_OUT + 1} are needed (some to keep, {MIN_HELD_OUT} to measure on)")
    order = list(range(count))
    random.Random(seed * 7_919 + 17).shuffle(order)
    held = min(count - 1, max(MIN_HELD_OUT, round(count * HELD_OUT_SHARE)))
    return sorted(order[held:]), sorted(order[:held])


def reference_prompts(texts: list[str], scheme: str, tokenize, preset: str = DEFAULT_PROMPT_PRESET,
                      where: str = "--reference") -> list[list[int]]:
    """Each text as the engine prompts it (token ids). A prompt over MAX_PROMPT_TOKENS is refused, with
    its position, before any training: the engine would cut it."""
    labelling: LabelScheme = default_schemes()[scheme]
    prompts = []
    for number, text in enumerate(texts, start=1):
        prompt = tokenize(labelling.prompt(text, preset), True)
        if len(prompt) > MAX_PROMPT_TOKENS:
            raise ReferenceError(f"{where}: text {number} is too long ({len(prompt):,} prompt tokens; at most "
                                 f"{MAX_PROMPT_TOKENS:,}, as the server reads them)")
        prompts.append(prompt)
    return prompts


def label_answers(scheme: str, tokenize) -> tuple[tuple[str, ...], list[list[int]]]:
    """(the scheme's labels, each label's continuation as tokens), as training_examples writes answers."""
    labels = default_schemes()[scheme].labels
    return labels, [tokenize(LabelScheme.continuation(label), False) for label in labels]


# -- the default: a sample of the model's own training data, from the hub -------------------------------
def _pins_path() -> Path:
    from ..model_files import cache_dir

    return cache_dir() / "reference-revisions.json"


def _pinned_commit(repo_id: str) -> str | None:
    try:
        return json.loads(_pins_path().read_text()).get(repo_id)
    except (OSError, ValueError, AttributeError):
        return None


def _pin(repo_id: str, commit: str) -> None:
    from ..files import write_json_atomically

    path = _pins_path()
    try:
        pins = json.loads(path.read_text()) if path.exists() else {}
        pins[repo_id] = commit
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(path, pins)
    except (OSError, ValueError):
        pass  # unpinned: the next run resolves "main" again, and the manifest still names the commit used


def default_reference(seed: int, quiet: bool = False, rows: int = DEFAULT_REFERENCE_ROWS) -> tuple[list[str], dict]:
    """(texts, source) of the default reference: `rows` texts sampled (seeded) from the model's training set.
    The revision is pinned at the first download: the commit "main" resolved to is kept in the cache folder
    and asked for by every later run, so the same seed gives the same texts. Raises ReferenceError (one
    line) when the set can neither be downloaded nor found in the hub cache."""
    import pyarrow.parquet as pq

    from ..hub_datasets import HubDatasetError, download_dataset_files

    pinned = _pinned_commit(DEFAULT_REFERENCE_REPO)
    try:
        folder = download_dataset_files(DEFAULT_REFERENCE_REPO, pinned or "main", list(DEFAULT_REFERENCE_PATTERNS),
                                        f"the default reference texts ({DEFAULT_REFERENCE_REPO})", quiet)
    except HubDatasetError as e:
        raise ReferenceError(str(e)) from None
    files = sorted(p for p in folder.rglob("*.parquet"))
    if not files:
        raise ReferenceError(f"{DEFAULT_REFERENCE_REPO} at {folder.name[:12]} holds no Parquet file: give --reference")
    texts = []
    for path in files:
        table = pq.read_table(path)
        if DEFAULT_REFERENCE_COLUMN not in table.column_names:
            raise ReferenceError(f"{DEFAULT_REFERENCE_REPO}: {path.name} has no column {DEFAULT_REFERENCE_COLUMN!r} "
                                 f"(it has {', '.join(table.column_names)}): the set changed upstream; give --reference")
        texts += [t for t in table.column(DEFAULT_REFERENCE_COLUMN).to_pylist() if isinstance(t, str) and t.strip()]
    if not texts:
        raise ReferenceError(f"{DEFAULT_REFERENCE_REPO}: no text in column {DEFAULT_REFERENCE_COLUMN!r}; give --reference")
    if pinned is None:
        _pin(DEFAULT_REFERENCE_REPO, folder.name)
    picked = sorted(random.Random(seed).sample(range(len(texts)), min(rows, len(texts))))
    source = {"repo": DEFAULT_REFERENCE_REPO, "commit": folder.name, "column": DEFAULT_REFERENCE_COLUMN,
              "rows_in_set": len(texts), "rows_sampled": len(picked), "seed": seed}
    return [texts[i] for i in picked], source
