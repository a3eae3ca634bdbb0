"""The benchmark sets' data path: tests/hub_stand_in.py's dataset repos through huggingface-hub's own client,
then finsent's benchmark reader (download once, cache, offline, one-line failures)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hub_stand_in import HubStandIn  # noqa: E402


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    """A stand-in hub with no model repo, and huggingface-hub pointed at it (its constants are read at import,
    so they are set too)."""
    import huggingface_hub.constants as constants

    with HubStandIn() as hub:
        for key, value in hub.env(tmp_path / "hf").items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        yield hub


def test_the_stand_in_serves_dataset_revisions_through_huggingface_hub(hub_env):
    import huggingface_hub
    from huggingface_hub import errors

    converted = hub_env.add_dataset("takala/financial_phrasebank", {"sentences_50agree/train/0000.parquet": b"rows"},
                                    revision="refs/convert/parquet")
    main = hub_env.add_dataset("takala/financial_phrasebank", {"README.md": b"card", "data/x.zip": b"zip"})
    assert converted != main
    path = huggingface_hub.hf_hub_download("takala/financial_phrasebank", "sentences_50agree/train/0000.parquet",
                                           repo_type="dataset", revision="refs/convert/parquet")
    assert Path(path).read_bytes() == b"rows" and f"/snapshots/{converted}/" in path
    assert any("/resolve/refs%2Fconvert%2Fparquet/" in p for p in hub_env.dataset_gets("takala/financial_phrasebank"))
    folder = huggingface_hub.snapshot_download("takala/financial_phrasebank", repo_type="dataset",
                                               allow_patterns=["data/*"])
    assert Path(folder).name == main and sorted(p.name for p in Path(folder).rglob("*") if p.is_file()) == ["x.zip"]
    assert huggingface_hub.HfApi().list_repo_files("takala/financial_phrasebank", repo_type="dataset") == [
        "README.md", "data/x.zip"]
    with pytest.raises(errors.RevisionNotFoundError):
        huggingface_hub.hf_hub_download("takala/financial_phrasebank", "README.md", repo_type="dataset",
                                        revision="no-such-branch")
    with pytest.raises(errors.RepositoryNotFoundError):
        huggingface_hub.hf_hub_download("nobody/nothing", "README.md", repo_type="dataset")
    with pytest.raises(errors.EntryNotFoundError):
        huggingface_hub.hf_hub_download("takala/financial_phrasebank", "missing.csv", repo_type="dataset")


# -- the benchmark reader against the stand-in ------------------------------------------------------------
import benchmark_sets  # noqa: E402

SMALL = {"fpb": {"train": 160}, "fiqa": {"train": 40, "validation": 10, "test": 10}, "tfns": {"validation": 40},
         "nwgi": {"test": 40}}


def test_sets_are_downloaded_once_then_read_offline_from_the_cache(hub_env, monkeypatch):
    import huggingface_hub.constants as constants

    from finsent_local.quality.benchmark_data import load_benchmark
    from finsent_local.quality.benchmarks import BENCHMARKS

    commits = benchmark_sets.serve_benchmarks(hub_env, SMALL)
    online = {name: load_benchmark(b, quiet=True) for name, b in BENCHMARKS.items()}
    for name, rows in online.items():
        assert rows.source["commit"] == commits[name] and rows.source["revision"] == BENCHMARKS[name].revision
    assert online["fpb"].source["files"] == {"train": ["sentences_50agree/train/0000.parquet"]}
    assert online["fiqa"].source["files"] == {s: [f"data/{s}-00000-of-00001.parquet"] for s in ("train", "validation", "test")}
    assert online["tfns"].source["files"] == {"validation": ["sent_valid.csv"]}  # sent_train.csv is never fetched
    assert not any("sent_train" in p for p in hub_env.dataset_gets("zeroshot/twitter-financial-news-sentiment"))
    assert [len(r.texts) for r in online.values()] == [40, 14, 40, 40]

    gets = len([r for r in hub_env.requests if r[0] == "GET" and "/resolve/" in r[1]])
    again = load_benchmark(BENCHMARKS["fiqa"], quiet=True)  # online again: nothing downloaded twice
    assert len([r for r in hub_env.requests if r[0] == "GET" and "/resolve/" in r[1]]) == gets
    assert again.texts == online["fiqa"].texts

    hub_env.requests.clear()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = {name: load_benchmark(b, quiet=True) for name, b in BENCHMARKS.items()}
    assert hub_env.requests == []  # the stand-in was never asked
    for name in BENCHMARKS:
        assert offline[name].texts == online[name].texts and offline[name].gold_3 == online[name].gold_3
        assert offline[name].source == online[name].source


def test_an_unreachable_hub_says_what_to_download_and_where(hub_env, monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    from finsent_local.quality.benchmark_data import load_benchmark
    from finsent_local.quality.benchmarks import BENCHMARKS, BenchmarkError

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(BenchmarkError) as raised:
        load_benchmark(BENCHMARKS["fpb"], quiet=True)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("cannot download the FPB benchmark set: the hub is unreachable")
    assert ("hf download takala/financial_phrasebank --repo-type dataset --revision refs/convert/parquet "
            "--include 'sentences_50agree/train/*.parquet'") in message
    assert str(tmp_path / "hf" / "hub" / "datasets--takala--financial_phrasebank") in message


def test_a_set_the_hub_no_longer_has_is_one_line(hub_env):
    from finsent_local.quality.benchmark_data import load_benchmark
    from finsent_local.quality.benchmarks import BENCHMARKS, BenchmarkError

    hub_env.add_dataset("takala/financial_phrasebank", {"README.md": b"moved"})  # main only: no Parquet conversion
    with pytest.raises(BenchmarkError, match=r"^the FPB benchmark set \(takala/financial_phrasebank\): the hub has no "
                                             r"revision 'refs/convert/parquet' of it any more$"):
        load_benchmark(BENCHMARKS["fpb"], quiet=True)
    with pytest.raises(BenchmarkError, match="no such dataset on the Hugging Face hub"):
        load_benchmark(BENCHMARKS["nwgi"], quiet=True)


# -- the command, with the trained test model ----------------------------------------------------------------
from conftest import run_finsent  # noqa: E402


def test_finsent_eval_benchmark_all_end_to_end_then_offline(trained_gguf, tmp_path):
    """Every set through `finsent eval --benchmark all`: figures equal scikit-learn's on the predictions
    file, revisions recorded, published figures beside the measured ones and marked; then offline."""
    import csv
    import json

    from sklearn.metrics import f1_score

    model = str(trained_gguf["q8_0"])
    with HubStandIn() as hub:
        commits = benchmark_sets.serve_benchmarks(hub, SMALL)
        env = {**hub.env(tmp_path / "hf"), "FINSENT_CACHE_DIR": str(tmp_path / "cache")}
        out = tmp_path / "out"
        out.mkdir()
        code, stdout, stderr = run_finsent("eval", "--benchmark", "all", "--model", model, "--json", str(out / "b.json"),
                                           "--report", str(out / "b.html"), "--predictions", str(out / "p.csv"), env=env)
        assert code == 0, stderr
    figures = json.loads((out / "b.json").read_text())
    by_name = {b["name"]: b for b in figures["benchmarks"]}
    assert list(by_name) == ["fpb", "fiqa", "tfns", "nwgi"]
    for name, b in by_name.items():
        assert b["source"]["commit"] == commits[name] and b["source"]["revision"] in ("main", "refs/convert/parquet")
        assert b["measured"]["scheme_asked"] == "3" and b["measured"]["models"][0]["prompt"] == "train"
        assert {p["model"] for p in b["published"]} == {"FinGPT v3.3", "GPT-4", "BloombergGPT", "FinBERT"}
        assert all(p["source"].startswith("FinGPT README") for p in b["published"])
    assert by_name["fiqa"]["source"]["rows_before_split"] == 60 and by_name["fiqa"]["rows"] == 14
    assert by_name["nwgi"]["measured_7_labels"]["gold"]["scheme"] == "7"
    assert by_name["fpb"]["measured_7_labels"] is None

    with open(out / "p.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for name, b in by_name.items():
        mine = [r for r in rows if r["benchmark"] == name]
        assert len(mine) == b["rows"]
        expected = f1_score([r["gold"] for r in mine], [r["predicted"] for r in mine], average="weighted")
        assert b["measured"]["models"][0]["weighted_f1"] == pytest.approx(expected, abs=1e-12)
    assert by_name["fpb"]["measured"]["models"][0]["accuracy"] >= 0.85  # labels read the right way round

    table = stdout[stdout.index("\nmeasured here\n"):]
    measured, published = table.split("published, not measured here")
    assert re.search(r"trained-sentiment-q8_0\.gguf +1\.000 +0\.\d{3} +", measured) and "0.882" not in measured
    assert re.search(r"\n  FinGPT v3\.3 +0\.882 +0\.874 +0\.903 +0\.643\n", published)
    assert re.search(r"\n  GPT-4 +0\.833 +0\.630 +0\.808 +-\n", published)
    html = (out / "b.html").read_text()
    assert "<tbody class='published'>" in html and html.index("<tbody class='measured'>") < html.index("0.882")
    assert "NWGI on its own 7 labels" in html and "http" not in html.split("</head>")[0].replace("http-equiv", "")

    # Offline from the cache: the same figures, the stand-in gone.
    code, stdout2, stderr = run_finsent("eval", "--benchmark", "fpb", "--benchmark", "tfns", "--model", model,
                                        "--json", str(out / "again.json"),
                                        env={**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert code == 0, stderr
    again = {b["name"]: b for b in json.loads((out / "again.json").read_text())["benchmarks"]}
    assert list(again) == ["fpb", "tfns"]
    for name in again:
        assert again[name]["measured"]["models"][0]["weighted_f1"] == by_name[name]["measured"]["models"][0]["weighted_f1"]
        assert again[name]["source"]["commit"] == commits[name]


@pytest.mark.parametrize("case", ["unknown name", "label map", "unreachable", "changed columns"])
def test_bad_benchmark_input_is_one_line(tmp_path, case):
    with HubStandIn() as hub:
        files = benchmark_sets.tfns_files(20)
        files["sent_valid.csv"] = files["sent_valid.csv"].replace(b"text,label", b"tweet,label", 1)
        hub.add_dataset("zeroshot/twitter-financial-news-sentiment", files)
        env = {**hub.env(tmp_path / "hf"), "FINSENT_CACHE_DIR": str(tmp_path / "cache")}
        args, expected = {
            "unknown name": (["--benchmark", "fqia"], "Error: no benchmark 'fqia'; use one of fpb, fiqa, tfns, nwgi, all"),
            "label map": (["--benchmark", "fpb", "--label-map", "{}"], "Error: --label-map does not apply to --benchmark"),
            "unreachable": (["--benchmark", "nwgi"], "Error: cannot download the NWGI benchmark set: the hub is unreachable"),
            "changed columns": (["--benchmark", "tfns"], "Error: the TFNS set's validation file sent_valid.csv has no "
                                                        "column text (its columns: tweet, label): its upstream files changed"),
        }[case]
        if case == "unreachable":
            env["HF_ENDPOINT"] = "http://127.0.0.1:9"
        code, stdout, stderr = run_finsent("eval", *args, "--model", str(tmp_path / "not-needed.gguf"), env=env)
    assert code == 1 and stdout == ""
    assert stderr.startswith(expected) and stderr.count("\n") == 1, stderr
