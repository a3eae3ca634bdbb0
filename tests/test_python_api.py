"""The Python API (finsent_local.FinSent) on the trained model: in this process and against the real
server, the same answers as each other and as `finsent classify`; errors per item; pandas alignment;
streaming; close and reuse; concurrent calls; documents; the notebook in docs/, executed."""

from __future__ import annotations

import csv
import gc
import math
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import run_finsent
from long_documents import NEGATIVE, POSITIVE

from finsent_local import FinSent, FinSentError, Result
from finsent_local.engine import occlusion

ROOT = Path(__file__).resolve().parents[1]
# Between processes (the server, this one, the CLI) llama.cpp may batch the same texts differently, and
# other CPUs pick other kernels: results then differ in the last bits of float16 arithmetic, far below
# this. Where two labels are closer than NEAR_TIE (as in test_file_jobs.py) either may come out.
PROB_TOLERANCE = 2e-3
NEAR_TIE = 5e-3


def _same_label(got: str, want: str, want_probs: dict) -> bool:
    return got == want or want_probs[got] >= max(want_probs.values()) - NEAR_TIE


@pytest.fixture(scope="module")
def local(trained_gguf):
    with FinSent(model=str(trained_gguf["f16"]), cache=False, progress=False) as fs:
        yield fs


@pytest.fixture(scope="module")
def remote(server):
    return FinSent.connect(server.url, progress=False)


def _same(a: list[Result], b: list[Result]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.error == y.error and (x.ok or x.label == y.label is None), (x, y)
        assert not x.ok or _same_label(x.label, y.label, y.probs), (x, y)
        if x.ok:
            assert x.probs.keys() == y.probs.keys()
            assert all(abs(x.probs[k] - y.probs[k]) < PROB_TOLERANCE for k in x.probs)
            assert abs(x.score - y.score) < PROB_TOLERANCE


def test_in_process_server_and_cli_agree(local, remote, held_out, tmp_path):
    texts = [t for t, _ in held_out]
    here, there = local.classify_many(texts), remote.classify_many(texts)
    _same(here, there)
    assert sum(r.label == gold for r, (_, gold) in zip(here, held_out)) >= 0.9 * len(held_out)
    with open(tmp_path / "news.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["headline"], *([t] for t in texts)])
    code, _, stderr = run_finsent("classify", "--model", str(local.model_path), "--input", str(tmp_path / "news.csv"),
                                  "--column", "headline", "--output", str(tmp_path / "out.csv"), "--no-cache")
    assert code == 0, stderr
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert all(_same_label(row["label"], r.label, r.probs) for row, r in zip(rows, here, strict=True))
    assert all(abs(float(row["score"]) - r.score) < PROB_TOLERANCE for row, r in zip(rows, here))
    assert local.labels() == remote.labels() and local.labels("3") == ("negative", "neutral", "positive")


def test_errors_are_per_item_and_never_raised(local, remote):
    items = [POSITIVE[0], "", None, math.nan, 42, "x" * 40_000, "   ", NEGATIVE[0]]
    for fs in (local, remote):
        results = fs.classify_many(items, "3")
        assert [r.error_code for r in results] == [None, "empty_text", "empty_text", "empty_text", "invalid_text",
                                                   "text_too_long", "empty_text", None]
        assert results[0].label == "positive" and results[-1].label == "negative" and results[4].text == 42
        assert results[1].error == "text is empty" and results[1].label is None and not results[1].ok
        with pytest.raises(FinSentError, match="text is empty"):
            fs.label("")
        assert fs.label(NEGATIVE[0], "3") == "negative" and -1 <= fs.score(NEGATIVE[0]) < 0
        with pytest.raises(FinSentError, match='scheme must be "3" or "7"'):
            fs.classify("x", scheme="5")


def test_classify_series_keeps_the_index_and_marks_missing_values(local, remote):
    pd = pytest.importorskip("pandas")
    series = pd.Series([POSITIVE[1], None, NEGATIVE[1], math.nan, 7],
                       index=pd.to_datetime(["2024-03-01", "2024-03-02", "2024-03-02", "2024-03-05", "2024-03-09"]))
    for fs in (local, remote):
        frame = fs.classify_series(series, "3")
        assert frame.index.equals(series.index)
        assert list(frame.columns) == ["label", "score", "p_negative", "p_neutral", "p_positive", "error"]
        assert frame["label"].tolist()[::2][:2] == ["positive", "negative"]
        assert frame["error"].tolist()[1] == "text is empty" and frame["error"].tolist()[3] == "text is empty"
        assert frame["error"].tolist()[4] == "text must be a string" and pd.isna(frame["error"].iloc[0])
        assert frame["score"].dtype == "float64" and math.isnan(frame["score"].iloc[1])
        assert frame[["p_negative", "p_neutral", "p_positive"]].iloc[0].sum() == pytest.approx(1, abs=1e-3)
    seven = local.classify_series(series.dropna(), prefix="fs_")
    assert "fs_p_strong_negative" in seven.columns and len(seven) == 3


def test_without_pandas_only_the_pandas_method_says_so(local, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    with pytest.raises(FinSentError, match="classify_series needs pandas: pip install pandas"):
        local.classify_series([POSITIVE[0]])
    assert local.label(POSITIVE[0], "3") == "positive"


def test_streaming_reads_the_input_a_batch_at_a_time(local):
    from finsent_local.api import BATCH_TEXTS

    pulled = 0

    def texts():
        nonlocal pulled
        for i in range(3 * BATCH_TEXTS + 5):
            pulled += 1
            yield POSITIVE[i % 2] if i % 3 else NEGATIVE[i % 2]

    results = local.classify_many(texts(), "3", stream=True)
    first = next(results)
    assert first.label == "negative" and pulled == BATCH_TEXTS  # not the whole input
    rest = list(results)
    assert len(rest) == 3 * BATCH_TEXTS + 4 and pulled == 3 * BATCH_TEXTS + 5


def test_eight_threads_at_once_get_the_answers_of_one(local, remote, held_out):
    texts = [t for t, _ in held_out]
    for fs in (local, remote):
        alone = fs.classify_many(texts)
        out: dict[int, list[Result]] = {}
        threads = [threading.Thread(target=lambda i=i: out.update({i: fs.classify_many(texts[i::8] + texts)}))
                   for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for i in range(8):
            _same(out[i][len(texts[i::8]):], alone)
            _same(out[i][: len(texts[i::8])], alone[i::8])


def test_close_frees_and_a_new_object_works(trained_gguf):
    before = threading.active_count()
    fs = FinSent(model=str(trained_gguf["q8_0"]), cache=False, progress=False)
    assert threading.active_count() > before  # the engine thread
    assert fs.label(POSITIVE[0], "3") == "positive"
    fs.close()
    fs.close()  # twice is fine
    with pytest.raises(FinSentError, match="closed"):
        fs.classify(POSITIVE[0])
    assert threading.active_count() == before
    forgotten = FinSent(model=str(trained_gguf["q8_0"]), cache=False, progress=False)
    assert forgotten.label(NEGATIVE[0], "3") == "negative"
    del forgotten
    gc.collect()
    assert threading.active_count() == before  # closed when garbage-collected: no thread left behind
    with FinSent(model=str(trained_gguf["q8_0"]), cache=False, progress=False) as again:
        assert again.label(POSITIVE[1], "3") == "positive"


def test_documents_from_both_kinds(local, remote):
    text = " ".join([POSITIVE[0], NEGATIVE[0], POSITIVE[1]])
    here, there = local.document(text, "3"), remote.document(text, "3")
    assert here["document"]["label"] == there["document"]["label"]
    assert [s["label"] for s in here["sentences"]] == [s["label"] for s in there["sentences"]] == \
        ["positive", "negative", "positive"]
    about = remote.document(text, "3", about="Virtucon")
    assert about["document"]["about"]["matched"] == 1
    assert local.document(text, "3", about=["Nobody"])["document"]["label"] == "no mention"
    assert "words" not in here["document"]["most_negative"]
    for kind in (local, remote):
        explained = kind.document(text, "3", explain=True)["document"]
        assert explained["most_negative"]["text"] == NEGATIVE[0]
        words = explained["most_negative"]["words"]
        assert [w["text"] for w in words] == [u.text for u in occlusion.units(NEGATIVE[0])]
        assert min(words, key=lambda w: w["weight"])["weight"] < 0  # something pushed it negative


def test_explain_from_both_kinds(local, remote):
    from finsent_local import Explanation, Word

    texts = ["Virtucon cuts full-year guidance", "", None, 42, "Hooli raises full-year guidance"]
    here, there = local.explain(texts), remote.explain(texts)
    for a, b in zip(here, there, strict=True):
        assert isinstance(a, Explanation) and isinstance(b, Explanation)
        assert (a.error_code, b.error_code) in {(None, None), ("empty_text", "empty_text"),
                                               ("invalid_text", "invalid_text")}
        assert [w.text for w in a.words] == [w.text for w in b.words]
        # weights are differences of two scores: the tolerance of each score, twice
        assert all(abs(x.weight - y.weight) < 2 * PROB_TOLERANCE for x, y in zip(a.words, b.words))
    assert [r.error_code for r in here] == [None, "empty_text", "empty_text", "invalid_text", None]
    assert here[0].label == "moderately negative" and isinstance(here[0].words[0], Word)
    raises = here[4]
    assert [w.text for w in raises.strongest(1)] == ["raises"] and raises.strongest(1)[0].weight > 0.5
    assert raises.strongest(1)[0].label_without != raises.label  # without it, the label changes
    one = local.explain("Hooli raises full-year guidance", "3", unit="phrase")
    assert isinstance(one, Explanation) and one.label == "positive" and one.unit == "phrase"
    assert [w.text for w in one.words] == ["Hooli raises", "raises full-year", "full-year guidance"]
    with pytest.raises(FinSentError, match='unit must be "word" or "phrase"'):
        local.explain("x", unit="letter")


def test_connect_to_nothing_is_one_error():
    with pytest.raises(FinSentError, match="server not running at http://127.0.0.1:9"):
        FinSent.connect("http://127.0.0.1:9")


def test_importing_the_package_loads_no_engine():
    code = ("import sys, finsent_local; assert {'FinSent', 'FinSentError', 'Result'} <= set(dir(finsent_local)); "
            "bad = [m for m in ('llama_cpp', 'pandas', 'torch', 'pyarrow') if m in sys.modules]; "
            "assert not bad, bad; from finsent_local import FinSent; assert 'llama_cpp' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_notebook_runs(trained_gguf, tmp_path, monkeypatch):
    """docs/notebook.ipynb, executed as Jupyter would (nbclient, a real kernel) on the trained model."""
    nbclient = pytest.importorskip("nbclient", reason="bash setup.sh --dev installs nbclient and ipykernel")
    import nbformat

    monkeypatch.setenv("FINSENT_MODEL", str(trained_gguf["q8_0"]))
    monkeypatch.setenv("FINSENT_CACHE_DIR", str(tmp_path / "cache"))
    notebook = nbformat.read(ROOT / "docs" / "notebook.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum(1 for o in outputs if "image/png" in o.get("data", {})) == 2  # the two charts
    shown = "".join(o.get("text", "") for o in outputs)
    assert "negative" in shown  # fs.label(...) printed a label


def test_evaluate_gives_finsent_evals_figures(local, remote, held_out, tmp_path):
    import json

    pytest.importorskip("sklearn")
    texts = [t for t, _ in held_out] + ["", "Hooli schedules its annual general meeting"]
    gold = [g for _, g in held_out] + ["neutral", None]
    here = local.evaluate(texts, gold)
    assert here["rows_evaluated"] == len(held_out) and here["rows_skipped"] == {"empty text": 1, "empty gold label": 1}
    assert here["gold"]["convention"] and here["models"][0]["accuracy"] >= 0.9
    there = remote.evaluate(texts, gold)
    one_row = 1 / len(held_out)  # a near tie may come out the other way in another process
    assert abs(there["models"][0]["accuracy"] - here["models"][0]["accuracy"]) <= one_row + 1e-9
    with open(tmp_path / "gold.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text", "label"], *held_out])
    code, _, stderr = run_finsent("eval", "--input", str(tmp_path / "gold.csv"), "--text-column", "text", "--label-column",
                                  "label", "--model", str(local.model_path), "--json", str(tmp_path / "m.json"),
                                  "--no-cache", "-q")
    assert code == 0, stderr
    cli = json.loads((tmp_path / "m.json").read_text())["models"][0]
    assert abs(cli["accuracy"] - here["models"][0]["accuracy"]) <= one_row + 1e-9
    with pytest.raises(FinSentError, match=r"^cannot read these gold labels: 'sunny' \(1\); map them with --label-map"):
        local.evaluate(["Profit rose"], ["sunny"])


# -- without a model: the API's own rules, on a stand-in backend ------------------------------------------
class _StandIn:
    """What FinSent asks of a backend: every text gets `peak` (a 7-label name) with probability 0.9, or
    every call raises `fails` (a client error: the server stopped)."""

    def __init__(self, peak: dict[str, str] | None = None, fails: Exception | None = None):
        self.peak = peak or {}
        self.fails = fails

    def _check(self):
        if self.fails:
            raise self.fails

    def labels(self, scheme):
        self._check()
        from finsent_local.engine.labels import LABELS_3, LABELS_7

        return LABELS_7 if scheme == "7" else LABELS_3

    def explain(self, texts, scheme, unit):
        self._check()

    def classify(self, texts, scheme):
        self._check()
        labels = self.labels(scheme)
        out = []
        for text in texts:
            probs = {label: 0.1 / (len(labels) - 1) for label in labels}
            probs[self.peak[text]] = 0.9
            out.append({"label": self.peak[text], "score": 0.0, "probs": probs})
        return out

    def document(self, text, scheme, about, explain=False):
        self._check()

    def close(self):
        pass


def _stand_in_finsent(backend) -> FinSent:
    fs = FinSent.__new__(FinSent)
    fs._setup(backend, "7", False)
    fs.model_path = Path("stand-in.gguf")
    return fs


def test_evaluate_refuses_texts_and_gold_of_different_lengths():
    fs = _stand_in_finsent(_StandIn({"Profit rose": "mildly positive", "Sales fell": "mildly negative"}))
    with pytest.raises(FinSentError, match=r"^texts and gold must be as long as each other: 2 texts, 1 gold labels$"):
        fs.evaluate(["Profit rose", "Sales fell"], ["mildly positive"])
    with pytest.raises(FinSentError, match=r": 1 texts, 2 gold labels$"):
        fs.evaluate(iter(["Profit rose"]), iter(["mildly positive", "neutral"]))


def test_evaluate_reads_gold_as_finsent_eval_does():
    pytest.importorskip("sklearn")
    used = ["mildly negative", "neutral", "mildly positive"]
    texts = [f"Headline {i}" for i in range(9)]
    fs = _stand_in_finsent(_StandIn(dict(zip(texts, used * 3))))
    figures = fs.evaluate(texts, used * 3)["models"][0]
    assert figures["macro_f1"] == 1.0 and figures["macro_f1_labels"] == used
    assert figures["per_class"]["strong positive"]["absent"] and figures["per_class"]["strong positive"]["f1"] is None
    # PhraseBank's integers: refused unless named, then read its way (2 is positive, not twitter's neutral)
    fs = _stand_in_finsent(_StandIn(dict(zip(texts, ["strong negative", "neutral", "strong positive"] * 3))))
    with pytest.raises(FinSentError, match="--gold-convention twitter"):
        fs.evaluate(texts, [0, 1, 2] * 3)
    told = fs.evaluate(texts, [0, 1, 2] * 3, gold_convention="phrasebank")
    assert told["gold"]["convention"].startswith("phrasebank") and told["models"][0]["accuracy"] == 1.0


def test_a_client_error_is_one_finsent_error_in_every_method():
    from finsent_local.client import ClientError, ServerNotRunning

    fs = _stand_in_finsent(_StandIn(fails=ServerNotRunning("server not running at http://127.0.0.1:9")))
    calls = [lambda: fs.labels(), lambda: fs.classify_many(["x"]), lambda: fs.label("x"),
             lambda: fs.document("Profit rose. Sales fell."), lambda: fs.evaluate(["x"], ["neutral"]),
             lambda: fs.explain("x")]
    for call in calls:
        with pytest.raises(FinSentError, match=r"^server not running at http://127.0.0.1:9$") as raised:
            call()
        assert type(raised.value) is FinSentError and raised.value.__cause__ is None
    assert issubclass(ServerNotRunning, ClientError)
    # anything else is not dressed up as the server's
    fs = _stand_in_finsent(_StandIn(fails=RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        fs.classify_many(["x"])
