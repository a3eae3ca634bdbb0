"""The file job on a real local Ray cluster (`ray.init(num_cpus=2)`, shared by these tests) with the
trained fixture model: the labels equal the single-machine job's on the same file, through the
Python entry point and through `finsent classify --ray ADDRESS`."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_finsent
from sentiment_data import held_out_examples

ray = pytest.importorskip("ray", reason="Ray Data is installed by `bash setup.sh --dev` (the cluster extra)")

ROWS = 600


@pytest.fixture(scope="module")
def ray_cluster():
    import ray.data

    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
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
    import ray.data

    from finsent_local.ray_job import classify_dataset

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
    assert files and stderr.strip().splitlines()[-1] == f"Wrote {len(files)} file(s) to {out}"
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


def test_missing_column_lists_the_columns(ray_cluster, news, trained_gguf, tmp_path):
    source, _ = news
    code, _, stderr = run_finsent("classify", "--model", str(trained_gguf["q8_0"]), "--input", str(source),
                                  "--column", "title", "--output", str(tmp_path / "out"), "--ray", ray_cluster)
    assert code == 1 and stderr.strip().splitlines()[-1] == (
        "Error: no column 'title' in the dataset; its columns: 'id', 'headline'")
    assert not Path(tmp_path / "out").exists()
