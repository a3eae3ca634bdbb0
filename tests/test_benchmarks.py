"""The benchmark sets as FinGPT's benchmark code makes them: the splits equal the datasets library's own
train_test_split on stand-ins of each set's real size, format and columns; gold labels, instructions and
scores as FinGPT's fpb.py / fiqa.py / tfns.py / nwgi.py compute them (scikit-learn's f1_score on the label
strings); the published figures as FinGPT's README prints them. No model, no network."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import benchmark_sets  # noqa: E402

from finsent_local.engine.labels import LABELS_3, LABELS_7, default_schemes  # noqa: E402
from finsent_local.quality.benchmark_data import read_columns, split_files  # noqa: E402
from finsent_local.quality.benchmarks import (BENCHMARKS, BenchmarkError, benchmark_test_set,  # noqa: E402
                                              chosen_benchmarks, fiqa_band, split_test_indices)


def _snapshot(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """A folder laid out as huggingface-hub's snapshot of those files."""
    folder = tmp_path / "snapshots" / ("c" * 40)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def _ours(tmp_path: Path, name: str, files: dict[str, bytes]):
    benchmark = BENCHMARKS[name]
    folder = _snapshot(tmp_path / name, files)
    found = split_files(benchmark, folder)
    return benchmark, found, benchmark_test_set(benchmark, read_columns(benchmark, found), {"commit": folder.name})


def _fingpt_test_split(name: str, found: dict[str, list[Path]], cache: Path):
    """The test set as FinGPT's code makes it with the datasets library (its load_dataset readers for the
    files, concatenate_datasets, train_test_split)."""
    import datasets

    builder = {".parquet": "parquet", ".csv": "csv"}
    splits = [datasets.load_dataset(builder[paths[0].suffix], data_files=[str(p) for p in paths], split="train",
                                    cache_dir=str(cache)) for paths in found.values()]
    dataset = datasets.concatenate_datasets(splits) if len(splits) > 1 else splits[0]
    if name == "fpb":
        return dataset.train_test_split(seed=42)["test"]
    if name == "fiqa":
        return dataset.train_test_split(0.226, seed=42)["test"]
    return dataset  # TFNS' validation and NWGI's test are used as they are


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_the_test_sets_equal_what_fingpts_datasets_calls_give(tmp_path, name):
    """Real sizes: FPB 4,846 rows -> 1,212; FiQA 961 + 102 + 150 -> 275; TFNS 2,388; NWGI 4,047."""
    pytest.importorskip("datasets")
    files = {"fpb": lambda: benchmark_sets.fpb_files(4846), "fiqa": lambda: benchmark_sets.fiqa_files(
        benchmark_sets.REAL_SIZES["fiqa"]), "tfns": lambda: benchmark_sets.tfns_files(2388),
        "nwgi": lambda: benchmark_sets.nwgi_files(4047)}[name]()
    benchmark, found, ours = _ours(tmp_path, name, files)
    theirs = _fingpt_test_split(name, found, tmp_path / "datasets-cache")
    assert len(ours.texts) == {"fpb": 1212, "fiqa": 275, "tfns": 2388, "nwgi": 4047}[name]
    assert ours.texts == theirs[benchmark.text_column]  # the same rows in the same order
    assert ours.gold_3 == [benchmark.gold_rule(v) for v in theirs[benchmark.label_column]]


@pytest.mark.parametrize("rows, test_size", [(4846, None), (4846, 0.25), (1213, 0.226), (7, 0.226), (1, 0.5)])
def test_split_indices_equal_datasets_train_test_split(rows, test_size):
    datasets = pytest.importorskip("datasets")
    dataset = datasets.Dataset.from_dict({"i": list(range(rows))})
    if test_size is None:  # datasets' default, as fpb.py calls it
        expected = dataset.train_test_split(seed=42)["test"]["i"] if rows > 1 else []
        test_size = 0.25
    else:
        expected = dataset.train_test_split(test_size, seed=42)["test"]["i"] if rows > 1 else [0]
    assert split_test_indices(rows, test_size) == expected


def test_gold_labels_and_instructions_follow_fingpts_code():
    assert [BENCHMARKS["fpb"].gold_rule(v) for v in (0, 1, 2)] == ["negative", "neutral", "positive"]
    assert [BENCHMARKS["tfns"].gold_rule(v) for v in (0, 1, 2)] == ["negative", "positive", "neutral"]
    # fiqa.py's make_label: the band edges belong to neutral (-0.1) and positive (0.1)
    assert [fiqa_band(s) for s in (-0.5, -0.1000001, -0.1, 0.0, 0.0999, 0.1, 0.7)] == [
        "negative", "negative", "neutral", "neutral", "neutral", "positive", "positive"]
    # nwgi.py's dic: the mild labels are neutral, not their sign
    assert [BENCHMARKS["nwgi"].gold_rule(v) for v in LABELS_7] == [
        "negative", "negative", "neutral", "neutral", "neutral", "positive", "positive"]
    fiqa = BENCHMARKS["fiqa"]
    assert [fiqa.subject_rule(v) for v in ("post", "headline")] == ["tweet", "news"]
    assert BENCHMARKS["tfns"].subject_rule(None) == "tweet"
    assert BENCHMARKS["fpb"].subject_rule(None) == BENCHMARKS["nwgi"].subject_rule(None) == "news"


@pytest.mark.parametrize("subject", ["news", "tweet"])
def test_the_train_prompt_is_fingpts_context(subject):
    """format_example's context ("Instruction: ...\\nInput: ...\\nAnswer: ") followed by the answer is the
    engine's train prompt followed by the label's continuation (the space belongs to the label's token)."""
    text = "Acme {beats} estimates"
    instruction = f"What is the sentiment of this {subject}? Please choose an answer from {{negative/neutral/positive}}."
    fingpt_context = f"Instruction: {instruction}\nInput: {text}\nAnswer: "
    scheme = default_schemes()["3"].instruction_about(subject)
    for label in LABELS_3:
        assert scheme.prompt(text, "train") + scheme.continuation(label) == fingpt_context + label
    assert "this tweet?" not in default_schemes()["3"].prompt(text, "card")  # the model's own prompts stay as they are


def test_a_model_whose_prompts_ask_otherwise_cannot_ask_about_a_tweet():
    scheme = default_schemes()["3"]
    other = type(scheme)(scheme.name, scheme.labels, scheme.values, {"card": "Classify: {text}\nAnswer:"})
    with pytest.raises(ValueError, match="do not ask"):
        other.instruction_about("tweet")


def test_the_test_rows_carry_their_subjects_and_source_indices(tmp_path):
    _, _, rows = _ours(tmp_path, "fiqa", benchmark_sets.fiqa_files({"train": 30, "validation": 5, "test": 9}))
    assert len(rows.texts) == 10 and rows.source["rows_before_split"] == 44  # ceil(0.226 * 44)
    assert rows.source_rows == split_test_indices(44, 0.226)
    # the stand-in's odd rows are posts: the instruction asks about a tweet there
    assert rows.subjects == ["tweet" if i % 2 else "news" for i in rows.source_rows]


def _fingpt_scores(gold: list[str], predicted: list[str]) -> dict:
    """What FinGPT's benchmark code prints: sklearn on the label strings, no labels argument."""
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": accuracy_score(gold, predicted), "macro_f1": f1_score(gold, predicted, average="macro"),
            "weighted_f1": f1_score(gold, predicted, average="weighted")}


class _AnswerService:
    """A classification service answering each text with a fixed 3-label distribution."""

    def __init__(self, answers: dict[str, list[float]], opened: list, subject: str | None):
        self.answers, self.schemes = answers, {"3": SimpleNamespace(labels=LABELS_3),
                                               "7": SimpleNamespace(labels=LABELS_7)}
        opened.append(subject)

    def classify(self, texts, scheme):
        assert scheme == "3"
        return [{"label": LABELS_3[int(np.argmax(self.answers[t]))], "score": 0.0,
                 "probs": dict(zip(LABELS_3, self.answers[t]))} for t in texts]

    def close(self):
        pass


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_equal_fingpts_sklearn_calls_and_every_row_asks_its_subject(tmp_path, seed):
    """A benchmark run on random answers: accuracy, macro and weighted F1 as FinGPT's f1_score calls give
    them, including answers that never use a label; each model opened once per subject, news then tweet."""
    from finsent_local.quality.benchmark_run import benchmark_request, run_benchmark

    _, _, rows = _ours(tmp_path, "fiqa", benchmark_sets.fiqa_files({"train": 300, "validation": 40, "test": 60}))
    rng = np.random.default_rng(seed)
    answers = {t: list(rng.dirichlet([1.0, 0.2 if seed == 2 else 1.0, 1.0])) for t in rows.texts}
    opened: list = []
    request = benchmark_request(rows, [Path("m.gguf")], ["train"], "3", 0, None, 0)
    result = run_benchmark(rows, request, lambda path, prompt, subject: _AnswerService(answers, opened, subject),
                           lambda name, total: (lambda n: None))
    predicted = [LABELS_3[int(np.argmax(answers[t]))] for t in rows.texts]
    metrics = result.evaluation.metrics[0]
    expected = _fingpt_scores(rows.gold_3, predicted)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-12), key
    assert sorted(opened) == ["news", "tweet"]
    assert result.seven_labels is None


def test_nwgi_is_also_scored_on_its_7_labels(tmp_path):
    from finsent_local.quality.benchmark_run import benchmark_request, run_benchmark

    _, _, rows = _ours(tmp_path, "nwgi", benchmark_sets.nwgi_files(60))
    truth = dict(zip(rows.texts, rows.gold_7))

    class Seven(_AnswerService):
        def classify(self, texts, scheme):
            labels = LABELS_7 if scheme == "7" else LABELS_3
            out = []
            for text in texts:  # the truth's sign in 3 labels (so mild ones are "wrong" FinGPT's way)
                label = truth[text] if scheme == "7" else ("neutral" if truth[text] == "neutral" else truth[text].split()[-1])
                out.append({"label": label, "score": 0.0, "probs": {l: float(l == label) for l in labels}})
            return out

    request = benchmark_request(rows, [Path("m.gguf")], ["train"], "3", 0, None, 0)
    result = run_benchmark(rows, request, lambda path, prompt, subject: Seven({}, [], subject),
                           lambda name, total: (lambda n: None))
    assert result.seven_labels.metrics[0]["accuracy"] == 1.0 and result.seven_labels.gold.scheme == "7"
    predicted = ["neutral" if l == "neutral" else l.split()[-1] for l in rows.gold_7]
    assert result.evaluation.metrics[0]["weighted_f1"] == pytest.approx(
        _fingpt_scores(rows.gold_3, predicted)["weighted_f1"])
    assert result.evaluation.metrics[0]["accuracy"] < 1.0  # mildly positive counted neutral in gold, positive predicted


def test_the_published_figures_are_fingpts_readme_table():
    table = {name: {f.model: f.value for f in b.published} for name, b in BENCHMARKS.items()}
    assert table == {
        "fpb": {"FinGPT v3.3": 0.882, "GPT-4": 0.833, "BloombergGPT": 0.511, "FinBERT": 0.880},
        "fiqa": {"FinGPT v3.3": 0.874, "GPT-4": 0.630, "BloombergGPT": 0.751, "FinBERT": 0.596},
        "tfns": {"FinGPT v3.3": 0.903, "GPT-4": 0.808, "BloombergGPT": None, "FinBERT": 0.733},
        "nwgi": {"FinGPT v3.3": 0.643, "GPT-4": None, "BloombergGPT": None, "FinBERT": 0.538}}
    assert {f.metric for b in BENCHMARKS.values() for f in b.published} == {"weighted F1"}


def test_benchmark_names():
    assert [b.name for b in chosen_benchmarks(["nwgi", "FPB", "fpb"])] == ["fpb", "nwgi"]
    assert [b.name for b in chosen_benchmarks(["all", "tfns"])] == ["fpb", "fiqa", "tfns", "nwgi"]
    with pytest.raises(BenchmarkError, match="no benchmark 'fqia'; use one of fpb, fiqa, tfns, nwgi, all"):
        chosen_benchmarks(["fqia"])


def test_upstream_changes_are_one_line_each(tmp_path):
    """A renamed column, a label value FinGPT's code does not read, a split file that is gone."""
    files = benchmark_sets.fiqa_files({"train": 4, "validation": 2, "test": 2})
    import pyarrow.parquet as pq

    path = _snapshot(tmp_path / "a", files) / "data/test-00000-of-00001.parquet"
    pq.write_table(pq.read_table(path).rename_columns(
        ["_id", "sentence", "snippets", "target", "score", "aspects", "format", "label"]), path)
    with pytest.raises(BenchmarkError) as raised:
        read_columns(BENCHMARKS["fiqa"], split_files(BENCHMARKS["fiqa"], path.parents[1]))
    assert "test file test-00000-of-00001.parquet has no column sentiment_score" in str(raised.value)
    assert "its upstream files changed" in str(raised.value) and "\n" not in str(raised.value)

    bad = benchmark_sets.parquet_bytes({"sentence": ["a", "b", "c", "d"], "label": [3, 3, 3, 3]})
    folder = _snapshot(tmp_path / "b", {"sentences_50agree/train/0000.parquet": bad})
    columns = read_columns(BENCHMARKS["fpb"], split_files(BENCHMARKS["fpb"], folder))
    with pytest.raises(BenchmarkError, match=r"has a label 3 that FinGPT's fpb.py does not read \(0 negative, 1 "
                                             r"neutral, 2 positive\): its upstream files changed"):
        benchmark_test_set(BENCHMARKS["fpb"], columns, {"commit": "c" * 40})

    folder = _snapshot(tmp_path / "c", {"data/train-0.parquet": b"x"})
    with pytest.raises(BenchmarkError, match="has no file sent_valid.csv for its validation split"):
        split_files(BENCHMARKS["tfns"], folder)
