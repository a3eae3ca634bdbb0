"""The field's four financial sentiment benchmarks, defined as FinGPT's benchmark code makes them
(AI4Finance-Foundation/FinGPT, fingpt/FinGPT_Benchmark/benchmarks/fpb.py, fiqa.py, tfns.py, nwgi.py): where
the rows come from, which split is the test set, how gold labels are read and what the instruction asks.
The published figures (FinGPT's README table) are here too, kept apart from anything measured.

The split is datasets' `Dataset.train_test_split(test_size, seed=42)` computed here without the datasets
library (it would be a large install for five lines): for a float test size, datasets takes
n_test = ceil(test_size * rows) and the test rows are the first n_test of
`numpy.random.default_rng(seed).permutation(rows)`, in that order (datasets 2.x to 5.x, arrow_dataset.py).
tests/test_benchmarks.py compares the indices with datasets' own split on sets of each benchmark's size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ..engine.labels import LABELS_7

FINGPT_SOURCE = "AI4Finance-Foundation/FinGPT, fingpt/FinGPT_Benchmark/benchmarks/"
SPLIT_SEED = 42  # every FinGPT split


class BenchmarkError(ValueError):
    """A benchmark cannot be read as asked (unknown name, upstream files changed): one line for the user."""


@dataclass(frozen=True)
class PublishedFigure:
    """A figure someone else measured and published: shown beside ours, never mixed with them."""

    model: str
    value: float | None  # None: not published for this set
    metric: str = "weighted F1"
    source: str = "FinGPT README (AI4Finance-Foundation/FinGPT), sentiment analysis table"


@dataclass(frozen=True)
class Benchmark:
    name: str  # what --benchmark takes
    title: str  # as FinGPT's table names it
    description: str
    repo_id: str  # a dataset repo on the Hugging Face hub
    revision: str  # the branch or ref its rows are read from
    splits: tuple[str, ...]  # read and concatenated in this order
    file_patterns: tuple[str, ...]  # a split's files: the first pattern ("{split}" filled in) that finds any
    text_column: str
    label_column: str
    gold_rule: Callable  # upstream label value -> one of LABELS_3, FinGPT's way
    gold_rule_text: str  # the same in words (README, report)
    test_size: float | None  # None: the split is the test set as it is
    subject_column: str | None = None  # the column the instruction's subject is read from
    subject_rule: Callable = field(default=lambda value: "news")  # its value -> "news" or "tweet"
    subject_text: str = 'every row: "What is the sentiment of this news?"'
    seven_labels: bool = False  # gold in the 7 labels: also scored on them (the project's own figures)
    fingpt_file: str = ""
    published: tuple[PublishedFigure, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The upstream columns FinGPT's code reads."""
        return tuple(c for c in (self.text_column, self.label_column, self.subject_column) if c)

    @property
    def split_text(self) -> str:
        joined = " + ".join(self.splits) + (" (concatenated)" if len(self.splits) > 1 else "")
        if self.test_size is None:
            return f"split {joined}, all of it"
        size = "the default test size 0.25" if self.test_size == 0.25 else f"test size {self.test_size}"
        return f"split {joined}, then the test part of train_test_split ({size}, seed {SPLIT_SEED})"


def split_test_indices(rows: int, test_size: float | None, seed: int = SPLIT_SEED) -> list[int]:
    """The row indices of the test set, in datasets' order (see the module docstring); every row in order
    when the split is used as it is."""
    import numpy as np

    if test_size is None:
        return list(range(rows))
    n_test = math.ceil(test_size * rows)
    return [int(i) for i in np.random.default_rng(seed).permutation(rows)[:n_test]]


def _published(*values: float | None) -> tuple[PublishedFigure, ...]:
    """The README table's rows in its model order: FinGPT v3.3, GPT-4, BloombergGPT, FinBERT."""
    return tuple(PublishedFigure(model, value) for model, value in
                 zip(("FinGPT v3.3", "GPT-4", "BloombergGPT", "FinBERT"), values))


def _mapped(mapping: dict, what: str) -> Callable:
    def rule(value):
        try:
            return mapping[value]
        except (KeyError, TypeError):
            raise BenchmarkError(f"{what} {value!r}") from None
    return rule


def fiqa_band(score) -> str:
    """fiqa.py's make_label: below -0.1 negative, from -0.1 up to 0.1 neutral, from 0.1 positive."""
    if not isinstance(score, (int, float)) or score != score:
        raise BenchmarkError(f"sentiment score {score!r}")
    return "negative" if score < -0.1 else "neutral" if score < 0.1 else "positive"


# nwgi.py's dic: the mild labels count as neutral (not as their sign).
NWGI_TO_3 = {"strong negative": "negative", "moderately negative": "negative", "mildly negative": "neutral",
             "neutral": "neutral", "mildly positive": "neutral", "moderately positive": "positive",
             "strong positive": "positive"}

BENCHMARKS = {
    "fpb": Benchmark(
        "fpb", "FPB", "Financial PhraseBank (Malo et al., 2014), sentences with at least 50% annotator agreement",
        "takala/financial_phrasebank", "refs/convert/parquet", ("train",), ("sentences_50agree/{split}/*.parquet",),
        "sentence", "label", _mapped({0: "negative", 1: "neutral", 2: "positive"}, "label"),
        "0 negative, 1 neutral, 2 positive", 0.25, fingpt_file="fpb.py",
        published=_published(0.882, 0.833, 0.511, 0.880)),
    "fiqa": Benchmark(
        "fiqa", "FiQA-SA", "FiQA 2018 task 1, aspect-based sentiment of headlines and microblog posts",
        "pauri32/fiqa-2018", "main", ("train", "validation", "test"),
        ("data/{split}-*", "data/{split}.*", "{split}-*", "{split}.*"),
        "sentence", "sentiment_score", fiqa_band,
        "sentiment_score < -0.1 negative, -0.1 <= score < 0.1 neutral, >= 0.1 positive", 0.226,
        subject_column="format", subject_rule=lambda value: "tweet" if value == "post" else "news",
        subject_text='format "post": "What is the sentiment of this tweet?"; otherwise "... of this news?"',
        fingpt_file="fiqa.py", published=_published(0.874, 0.630, 0.751, 0.596)),
    "tfns": Benchmark(
        "tfns", "TFNS", "Twitter Financial News Sentiment (zeroshot), finance tweets",
        "zeroshot/twitter-financial-news-sentiment", "main", ("validation",), ("sent_valid.csv",),
        "text", "label", _mapped({0: "negative", 1: "positive", 2: "neutral"}, "label"),
        "0 negative (bearish), 1 positive (bullish), 2 neutral", None,
        subject_rule=lambda value: "tweet", subject_text='every row: "What is the sentiment of this tweet?"',
        fingpt_file="tfns.py", published=_published(0.903, 0.808, None, 0.733)),
    "nwgi": Benchmark(
        "nwgi", "NWGI", "News With GPT Instructions: news labelled in 7 classes by GPT",
        "oliverwang15/news_with_gpt_instructions", "main", ("test",), ("data/{split}-*", "{split}.*"),
        "news", "label", _mapped(NWGI_TO_3, "label"),
        "strong and moderately negative: negative; mildly negative, neutral, mildly positive: neutral; "
        "moderately and strong positive: positive", None, seven_labels=True, fingpt_file="nwgi.py",
        published=_published(0.643, None, None, 0.538)),
}
BENCHMARK_CHOICES = (*BENCHMARKS, "all")


def chosen_benchmarks(names) -> list[Benchmark]:
    """--benchmark's values (repeatable, `all`) as the benchmarks in their table order, each once."""
    wanted = []
    for name in names:
        key = str(name).strip().casefold()
        if key == "all":
            wanted.extend(BENCHMARKS)
        elif key in BENCHMARKS:
            wanted.append(key)
        else:
            raise BenchmarkError(f"no benchmark {name!r}; use one of {', '.join(BENCHMARK_CHOICES)}")
    return [BENCHMARKS[k] for k in BENCHMARKS if k in wanted]


@dataclass
class BenchmarkRows:
    """A benchmark's test set, ready to evaluate."""

    benchmark: Benchmark
    texts: list[str]
    gold_3: list[str]  # FinGPT's 3-label gold
    gold_7: list[str] | None  # the 7 labels as upstream has them (NWGI)
    subjects: list[str]  # what each row's instruction asks about
    source_rows: list[int]  # each row's index in the concatenated splits (datasets' indices)
    source: dict  # repo, revision, commit, files, rows before the split


def benchmark_test_set(benchmark: Benchmark, columns: dict[str, list], source: dict) -> BenchmarkRows:
    """The test set from the concatenated splits' columns: split, gold labels and subjects as FinGPT makes them."""
    rows = len(columns[benchmark.text_column])
    chosen = split_test_indices(rows, benchmark.test_size)
    what = f"{benchmark.title} ({benchmark.repo_id} at {source.get('commit', benchmark.revision)[:12]})"
    try:
        gold_3 = [benchmark.gold_rule(columns[benchmark.label_column][i]) for i in chosen]
    except BenchmarkError as e:
        raise BenchmarkError(f"{what} has a {e} that FinGPT's {benchmark.fingpt_file} does not read "
                             f"({benchmark.gold_rule_text}): its upstream files changed") from None
    gold_7 = None
    if benchmark.seven_labels:
        gold_7 = [columns[benchmark.label_column][i] for i in chosen]
        unknown = sorted({str(v) for v in gold_7} - set(LABELS_7))
        if unknown:
            raise BenchmarkError(f"{what} has labels outside the 7 ({', '.join(unknown[:5])}): its upstream files changed")
    subjects = [benchmark.subject_rule(columns[benchmark.subject_column][i] if benchmark.subject_column else None)
                for i in chosen]
    texts = [columns[benchmark.text_column][i] for i in chosen]
    return BenchmarkRows(benchmark, texts, gold_3, gold_7, subjects, chosen, {**source, "rows_before_split": rows})

