"""The file job on a real local Ray cluster (started as the command starts one: 127.0.0.1 only, 2 CPUs,
shared by these tests) with the trained fixture model: the labels equal the single-machine job's on
the same file, through the Python entry point and through `finsent classify --ray ADDRESS`; CSV and
JSON Lines read as the single-machine job reads them; an output folder that is not ours is never
deleted; no Ray port listens beyond loopback."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from conftest import run_finsent
from sentiment_data import held_out_examples

# ray is imported only once init_ray has set up the environment for a loopback cluster (see init_ray)
if importlib.util.find_spec("ray") is None:
    pytest.skip("Ray Data is installed by `bash setup.sh --dev` (the cluster extra)", allow_module_level=True)

ROWS = 600


def _headline(i: int) -> str:
    texts = [text for text, _ in held_out_examples(per_label=4)]
    return f"{texts[i % len(texts)]} ({i})" if i % 40 else ""


def test_a_local_cluster_listens_on_loopback_only(trained_gguf, tmp_path):
    """`--ray local` (and `--ray` with no RAY_ADDRESS) starts its own cluster: while the job runs, every
    listening socket of the command and of the Ray processes under it is on 127.0.0.1. Runs before the
    module's cluster starts, so the command's cluster is the only one."""
    import csv
    import os
    import subprocess
    import sys
    import time

    from listening_sockets import is_loopback, listening_addresses, process_tree

    with open(tmp_path / "news.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["id", "headline"], *([f"{i:03d}", _headline(i + 1)] for i in range(40))])
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-m", "finsent_local.cli", "classify", "--model", str(trained_gguf["q8_0"]),
                             "--input", str(tmp_path / "news.csv"), "--column", "headline", "--output",
                             str(tmp_path / "out"), "--ray", "--quiet"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen: set[str] = set()
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:
        seen |= listening_addresses(process_tree(proc.pid))
        time.sleep(0.2)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    assert len(seen) >= 3, seen  # the GCS, the raylet and the workers were seen listening
    assert [a for a in seen if not is_loopback(a)] == [], seen


@pytest.fixture(scope="module")
def ray_cluster():
    from finsent_local.jobs.ray_job import init_ray

    init_ray("local", num_cpus=2)
    import ray
    import ray.data

    ray.data.DataContext.get_current().execution_options.preserve_order = True
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def news(tmp_path_factory, trained_gguf):
    """A Parquet file of headlines (some blank), and the single-machine job's output for it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("ray-news")
    texts = [text for text, _ in held_out_examples(per_label=4)]
    headlines = [f"{texts[i % len(texts)]} ({i})" if i % 40 else "" for i in range(ROWS)]
    pq.write_table(pa.table({"id": list(range(ROWS)), "headline": headlines}), folder / "news.parquet",
                   row_group_size=150)
    code, _, stderr = run_finsent("classify", "--model", str(trained_gguf["q8_0"]), "--input",
                                  str(folder / "news.parquet"), "--column", "headline", "--output",
                                  str(folder / "single.parquet"), "--scheme", "3", "--no-cache",
                                  env={"FINSENT_CACHE_DIR": str(folder / "cache")})
    assert code == 0, stderr
    return folder / "news.parquet", pq.read_table(folder / "single.parquet")


NEAR_TIE = 5e-3  # as in test_file_jobs.py: where two labels are closer, other batches may pick either


def _assert_same_labels(ray_table, single_table) -> None:
    assert ray_table.column("id").to_pylist() == list(range(ROWS))  # every row, in order
    assert ray_table.column("error").to_pylist() == single_table.column("error").to_pylist()
    single = single_table.to_pylist()
    for got, want in zip(ray_table.column("label").to_pylist(), single):
        if got != want["label"]:
            probs = {k[2:]: v for k, v in want.items() if k.startswith("p_")}
            assert probs[got.replace(" ", "_")] >= max(probs.values()) - NEAR_TIE, (got, want)
    for a, b in zip(ray_table.column("score").to_pylist(), single_table.column("score").to_pylist()):
        assert (a is None and b is None) or abs(a - b) < 5e-3  # llama.cpp may batch differently


def test_classify_dataset_matches_the_single_machine_job(ray_cluster, news, trained_gguf):
    import pyarrow as pa
    import ray
    import ray.data

    from finsent_local.jobs.ray_job import classify_dataset

    source, single = news
    scored = classify_dataset(ray.data.read_parquet(str(source)), "headline", model=trained_gguf["q8_0"], scheme="3",
                              actors=2, threads_per_actor=1)
    table = pa.concat_tables(ray.get(ref) for ref in scored.to_arrow_refs())
    assert table.schema.names == ["id", "headline", "label", "score", "p_negative", "p_neutral", "p_positive", "error"]
    _assert_same_labels(table, single)


def test_command_on_the_cluster(ray_cluster, news, trained_gguf, tmp_path):
    import pyarrow.parquet as pq

    source, single = news
    out = tmp_path / "scored"
    code, _, stderr = run_finsent("classify", "--model", str(trained_gguf["q8_0"]), "--input", str(source),
                                  "--column", "headline", "--output", str(out), "--scheme", "3",
                                  "--ray", ray_cluster, "--actors", "2")
    assert code == 0, stderr[-3000:]
    assert "Ray: 2 actor(s) x 1 thread(s), 2 CPUs in the cluster" in stderr
    files = sorted(out.glob("*.parquet"))
    assert files and stderr.strip().splitlines()[-1] == f"Wrote {len(files)} file{'s' * (len(files) > 1)} to {out}"
    _assert_same_labels(pq.read_table(out), single)

    code, _, stderr = run_finsent("classify", "--model", str(trained_gguf["q8_0"]), "--input", str(source),
                                  "--column", "headline", "--output", str(out), "--ray", ray_cluster)
    assert code == 1 and stderr.strip().splitlines()[-1].startswith(f"Error: {out} exists; use --force")


def test_a_model_missing_on_the_nodes_is_one_line(ray_cluster, news, tmp_path):
    source, _ = news
    code, _, stderr = run_finsent("classify", "--model", str(tmp_path / "nowhere.gguf"), "--input", str(source),
                                  "--column", "headline", "--output", str(tmp_path / "out"), "--ray", ray_cluster)
    assert code == 1
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: the Ray job failed: model file not found: {tmp_path / 'nowhere.gguf'} "
                           "(from --model) (details in Ray's logs"), stderr[-3000:]
    assert "Traceback" not in stderr  # the actor's traceback stays in Ray's log files
    _assert_unfinished(tmp_path / "out")


def _assert_unfinished(out):
    """A failed job's folder says so: its manifest unfinished, no _SUCCESS, and reading it is refused."""
    from finsent_local.jobs.ray_job import MANIFEST_NAME, SUCCESS_NAME, input_files, unfinished_output
    from finsent_local.jobs.tables import TableError

    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["finished"] is False and not (out / SUCCESS_NAME).exists()
    assert unfinished_output(out)
    with pytest.raises(TableError, match="did not finish"):
        input_files(out)


def test_an_output_is_finished_only_after_its_last_block(tmp_path):
    """The reported defect: `finished: true` was written in a `finally`, so a failed job looked whole."""
    from finsent_local.jobs.ray_job import (MANIFEST_NAME, SUCCESS_NAME, claim_output_folder, input_files,
                                            mark_output_finished, record_output_files, unfinished_output)

    out = tmp_path / "scored"
    claim_output_folder(out)
    (out / "part-0.parquet").write_bytes(b"PAR1")
    files = record_output_files(out)  # what the `finally` does, after a failure too
    assert json.loads((out / MANIFEST_NAME).read_text()) == {"written_by": "finsent classify --ray",
                                                             "finished": False, "files": ["part-0.parquet"]}
    assert unfinished_output(out)
    mark_output_finished(out, files)
    assert json.loads((out / MANIFEST_NAME).read_text())["finished"] is True and (out / SUCCESS_NAME).is_file()
    assert not unfinished_output(out) and input_files(out) == [out / "part-0.parquet"]
    claim_output_folder(out)  # a rerun with --force: the earlier files, _SUCCESS included, are gone
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME] and unfinished_output(out)


def test_missing_column_lists_the_columns(ray_cluster, news, trained_gguf, tmp_path):
    source, _ = news
    code, _, stderr = run_finsent("classify", "--model", str(trained_gguf["q8_0"]), "--input", str(source),
                                  "--column", "title", "--output", str(tmp_path / "out"), "--ray", ray_cluster)
    assert code == 1 and stderr.strip().splitlines()[-1] == (
        "Error: no column 'title' in the dataset; its columns: 'id', 'headline'")
    assert not Path(tmp_path / "out").exists()


def test_the_cluster_listens_on_loopback_only(ray_cluster):
    import os

    import ray

    from listening_sockets import is_loopback, listening_addresses, process_tree

    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    assert ray_cluster.startswith("127.0.0.1:")
    seen = listening_addresses(process_tree(os.getpid()))
    assert ray_cluster.split(":")[-1] in {a.rsplit(":", 1)[1] for a in seen}  # the GCS is among them
    assert [a for a in seen if not is_loopback(a)] == [], seen


# -- CSV and JSON Lines, read as the single-machine job reads them --------------------------------------------
def _single_machine(source: Path, output: Path, model: Path, *args: str) -> None:
    code, _, stderr = run_finsent("classify", "--model", str(model), "--input", str(source), "--column", "headline",
                                  "--output", str(output), "--no-cache", *args,
                                  env={"FINSENT_CACHE_DIR": str(output.parent / "cache")})
    assert code == 0, stderr


def test_csv_on_ray_keeps_every_value_as_text(ray_cluster, trained_gguf, tmp_path):
    """"007" stays "007", a date stays as written, and a column of numbers that turns to text after the
    first megabyte (pyarrow's first block) neither changes type nor fails the job."""
    import csv

    rows = [["id", "day", "code", "headline", "body"]]
    for i in range(300):
        rows.append([f"{i:03d}", f"2024-01-{1 + i % 28:02d}", "n/a" if i == 290 else str(i), _headline(i),
                     "x" * 5000])
    source = tmp_path / "in" / "news.csv"
    source.parent.mkdir()
    with open(source, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    _single_machine(source, tmp_path / "single.csv", trained_gguf["q8_0"])
    out = tmp_path / "scored"
    code, _, stderr = run_finsent("classify", "--model", str(trained_gguf["q8_0"]), "--input", str(source), "--column",
                                  "headline", "--output", str(out), "--ray", ray_cluster)
    assert code == 0, stderr[-3000:]
    scored = []
    for path in sorted(out.glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            part = list(csv.reader(f))
        scored += part[1:]
        header = part[0]
    with open(tmp_path / "single.csv", newline="", encoding="utf-8") as f:
        single = list(csv.reader(f))
    assert header == single[0]
    assert [row[:5] for row in scored] == rows[1:]  # every value as written, rows in order
    for got, want in zip(scored, single[1:]):
        assert got[-1] == want[-1]  # the same errors
        assert got[5] == want[5] or abs(float(got[6]) - float(want[6])) < 5e-3  # near ties may swap labels


def test_json_lines_on_ray_match_the_single_machine_job(ray_cluster, trained_gguf, tmp_path):
    import json

    lines = []
    for i in range(200):
        record = {"id": i, "headline": _headline(i) or None, "n": i if i < 150 else f"n{i}"}
        lines.append(json.dumps(record))
    lines[10] = "{not json at all"
    lines[20] = '{"id": 20, "headline": "Hooli shares jump \\ud83d", "n": 20}'  # a lone surrogate
    lines[30] = json.dumps({"id": 30, "headline": "Line\u2028separator inside a text", "n": 30}, ensure_ascii=False)
    lines[40] = json.dumps({"id": 40, "headline": 42})
    source = tmp_path / "news.jsonl"
    source.write_text("\n".join(lines[:100]) + "\n\n" + "\n".join(lines[100:]) + "\n", encoding="utf-8")
    _single_machine(source, tmp_path / "single.jsonl", trained_gguf["q8_0"])
    out = tmp_path / "scored"
    code, _, stderr = run_finsent("classify", "--model", str(trained_gguf["q8_0"]), "--input", str(source), "--column",
                                  "headline", "--output", str(out), "--ray", ray_cluster)
    assert code == 0, stderr[-3000:]
    # split at "\n" only: str.splitlines would also split at the U+2028 inside record 30
    got = [json.loads(line) for path in sorted(out.glob("*.jsonl")) for line in path.read_text("utf-8").split("\n")
           if line]
    want = [json.loads(line) for line in (tmp_path / "single.jsonl").read_text("utf-8").split("\n") if line]
    assert len(got) == len(want) == 200
    assert got[10] == {**got[10], "input_line": "{not json at all", "error": "the line is not a JSON object"}
    assert got[20]["headline"] == "Hooli shares jump \ud83d" and got[40]["error"] == "text must be a string"
    for a, b in zip(got, want):
        assert {k: v for k, v in a.items() if k != "score" and not k.startswith("p_") and k != "label"} == \
            {k: v for k, v in b.items() if k != "score" and not k.startswith("p_") and k != "label"}
        assert a["label"] == b["label"] or abs(a["score"] - b["score"]) < 5e-3


def test_json_lines_on_ray_are_the_lines_of_the_single_machine_job(ray_cluster, tmp_path):
    """Ray's JSON Lines reader splits a file where the file job does (tables.split_json_lines): at \\n and
    \\r\\n, not at a lone \\r or U+2028 (no model needed: only the read)."""
    import json

    import ray.data

    from finsent_local.jobs.ray_job import _read
    from finsent_local.jobs.tables import JsonLinesTable

    records = [json.dumps({"id": i, "headline": f"Line\u2028{i}"}, ensure_ascii=False) for i in range(3)]
    for name, ending in [("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")]:
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"\xef\xbb\xbf" + (ending.join(records) + ending + ending).encode())
        got = [row["text"] for row in _read(ray.data, path, "json", None).take_all()]
        want = [line for _, line in JsonLinesTable(path, "headline")._records()]
        assert got == want == (records if name != "cr" else ["\r".join(records) + "\r"]), name


# -- --force never deletes what is not ours -----------------------------------------------------------------------
def _force(source: Path, out: Path, model: Path) -> tuple[int, str]:
    code, _, stderr = run_finsent("classify", "--model", str(model), "--input", str(source), "--column", "headline",
                                  "--output", str(out), "--ray", "127.0.0.1:1", "--force")
    return code, stderr.strip().splitlines()[-1]


def test_force_refuses_outputs_that_touch_the_input(news, trained_gguf, tmp_path):
    source, _ = news  # a file in its own folder
    model = trained_gguf["q8_0"]
    for out, how in ((source.parent, "holds"), (source, "is"), (source.parent.parent, "holds")):
        code, last = _force(source, out, model)
        assert code == 1 and last == f"Error: --output {out} {how} the input {source}; choose another --output", last
        assert source.is_file()
    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "a.parquet").write_bytes(source.read_bytes())
    code, last = _force(folder, folder / "scored", model)
    assert code == 1 and "lies inside the input" in last and (folder / "a.parquet").is_file()


def test_force_deletes_only_what_an_earlier_run_wrote(ray_cluster, news, trained_gguf, tmp_path):
    source, _ = news
    model = trained_gguf["q8_0"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_text("months of work")
    code, last = _force(source, mine, model)
    assert code == 1 and last.startswith(f"Error: {mine} exists and was not made by `finsent classify --ray`, so it "
                                         "is left as it is"), last
    assert (mine / "thesis.docx").read_text() == "months of work"

    out = tmp_path / "scored"
    args = ("classify", "--model", str(model), "--input", str(source), "--column", "headline", "--output", str(out),
            "--ray", ray_cluster, "--quiet")
    code, _, stderr = run_finsent(*args)
    assert code == 0, stderr[-3000:]
    first = sorted(p.name for p in out.glob("*.parquet"))
    code, _, stderr = run_finsent(*args, "--force")
    assert code == 0, stderr[-3000:]
    second = sorted(p.name for p in out.glob("*.parquet"))
    assert second and not set(first) & set(second)  # the earlier run's files are gone, the new ones there
    (out / "notes.txt").write_text("mine")
    code, _, stderr = run_finsent(*args, "--force")
    assert code == 1 and "also holds what `finsent classify --ray` did not write (notes.txt)" in stderr
    assert (out / "notes.txt").read_text() == "mine" and sorted(p.name for p in out.glob("*.parquet")) == second


# -- documents ----------------------------------------------------------------------------------------------------
def test_documents_on_ray_match_the_single_machine_job(ray_cluster, trained_gguf, tmp_path):
    """--split sentences on the cluster: one row per document with the single-machine job's document
    columns and values; through classify_dataset, --about keeps the sentences naming the entity."""
    import csv

    import pyarrow as pa
    import ray
    import ray.data
    from long_documents import NEGATIVE, NEUTRAL, POSITIVE

    from finsent_local.jobs.ray_job import classify_dataset

    documents = [" ".join([POSITIVE[i % 2], NEGATIVE[(i + 1) % 2], NEUTRAL[0]][: 1 + i % 3]) if i % 7 else ""
                 for i in range(40)]
    source = tmp_path / "docs.csv"
    with open(source, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["id", "headline"], *([f"{i:03d}", d] for i, d in enumerate(documents))])
    _single_machine(source, tmp_path / "single.csv", trained_gguf["q8_0"], "--split", "sentences")
    out = tmp_path / "scored"
    code, _, stderr = run_finsent("classify", "--model", str(trained_gguf["q8_0"]), "--input", str(source), "--column",
                                  "headline", "--output", str(out), "--split", "sentences", "--ray", ray_cluster)
    assert code == 0, stderr[-3000:]
    scored = []
    for path in sorted(out.glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            scored += list(csv.DictReader(f))
    with open(tmp_path / "single.csv", newline="", encoding="utf-8") as f:
        single = list(csv.DictReader(f))
    assert list(scored[0]) == list(single[0]) == ["id", "headline", "label", "score", "weighted_score",
                                                  "non_neutral_share", "sentences", "most_positive_sentence",
                                                  "most_negative_sentence", "error"]
    assert [r["id"] for r in scored] == [f"{i:03d}" for i in range(40)]
    for got, want in zip(scored, single):
        assert (got["error"], got["sentences"]) == (want["error"], want["sentences"])
        if not want["error"]:
            assert abs(float(got["score"]) - float(want["score"])) < 5e-3
            assert got["label"] == want["label"]
            assert float(got["non_neutral_share"]) == float(want["non_neutral_share"])  # "1" from Arrow, "1.0" here

    about = classify_dataset(ray.data.from_items([{"body": d} for d in documents[1:4]]), "body",
                             model=trained_gguf["q8_0"], split="sentences", about="Virtucon|Dunder Mifflin")
    arrow = pa.concat_tables(ray.get(ref) for ref in about.to_arrow_refs())
    for name in ("sentences", "most_positive_sentence", "most_negative_sentence"):  # counts, not floats
        assert arrow.schema.field(name).type == pa.int64(), (name, arrow.schema)
    table = arrow.to_pylist()
    assert [row["sentences"] for row in table] == [2, 0, 1]  # the sentences naming one of them
    assert table[1]["label"] == "no mention" and table[1]["error"] == ""
