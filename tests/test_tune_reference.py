"""`finsent tune`'s default reference texts (issue 33): with the default base and no --reference, a seeded
sample of the model's own training data (FinGPT/fingpt-sentiment-train) comes from the hub through
huggingface-hub, is cached, pinned to the commit it first resolved to, and read offline afterwards.

The hub is tests/hub_stand_in.py on loopback (the named fake: the hub cannot be reached from here); it
serves the trained fixture as oopere/Llama-FinSent-S and a stand-in of the data set's Parquet file with
its columns (input, output, instruction).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_finsent
from house_rule_data import house_rule_rows, reference_rows, write_labelled_csv
from hub_stand_in import HubStandIn

from finsent_local.tuning.reference import DEFAULT_REFERENCE_REPO

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DATA_FILE = "data/train-00000-of-00001-5c6b2c8a.parquet"  # where push_to_hub puts a one-file split


def _parquet(rows: list[tuple[str, str]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"input": [t for t, _ in rows], "output": [label for _, label in rows],
                      "instruction": ["What is the sentiment of this news? Please choose an answer from "
                                      "{negative/neutral/positive}."] * len(rows)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@pytest.fixture
def hub(trained_checkpoint):
    with HubStandIn(trained_checkpoint) as stand_in:
        stand_in.commit = stand_in.add_dataset(DEFAULT_REFERENCE_REPO, {DATA_FILE: _parquet(reference_rows())})
        yield stand_in


def _env(hub: HubStandIn, tmp_path: Path, **more) -> dict:
    return {**hub.env(tmp_path / "hf"), "FINSENT_CACHE_DIR": str(tmp_path / "cache"), "FINSENT_MODEL": "", **more}


SAMPLE = ("import json, sys; from finsent_local.tuning.reference import default_reference, ReferenceError\n"
          "try:\n    texts, source = default_reference(0, quiet=True)\n"
          "    print(json.dumps({'texts': texts, 'source': source}))\n"
          "except ReferenceError as e:\n    print(e, file=sys.stderr); sys.exit(1)\n")


def _sample(env: dict) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", SAMPLE], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)


def test_the_default_reference_comes_from_the_hub_is_pinned_and_read_offline(hub, tmp_path):
    desk = write_labelled_csv(tmp_path / "desk.csv", house_rule_rows())
    output = tmp_path / "desk-model"
    env = _env(hub, tmp_path)
    code, out, err = run_finsent("tune", "--input", str(desk), "--text-column", "headline", "--label-column", "label",
                                 "--output", str(output), "--learning-rate", "1e-3", "--outtype", "q8_0", "-q",
                                 env=env, timeout=600)  # no --base: the default model, from the stand-in
    assert code == 0, err
    assert "Forgetting is neither measured" not in err
    manifest = json.loads((output / "tune-manifest.json").read_text())
    reference = manifest["data"]["reference"]
    assert reference["repo"] == DEFAULT_REFERENCE_REPO and reference["commit"] == hub.commit
    assert reference["column"] == "input" and reference["rows_in_set"] == len(reference_rows())
    assert reference["texts"] == reference["rows_sampled"] == len(reference_rows())  # fewer than 400 in the set
    assert reference["held_out"] == 120 and reference["trained_on"] == 180
    forgetting = manifest["forgetting"]
    assert forgetting["texts"] == 120 and forgetting["agreement"] >= forgetting["min_agreement"]
    assert "gold_texts" not in forgetting  # the default reference carries no gold column for this scheme
    assert "Reference texts held out (120): the tuned model keeps the base's label on" in out
    assert [p.split("/")[-1] for p in hub.dataset_gets(DEFAULT_REFERENCE_REPO)] == [DATA_FILE.split("/")[-1]]
    pins = json.loads((tmp_path / "cache" / "reference-revisions.json").read_text())
    assert pins == {DEFAULT_REFERENCE_REPO: hub.commit}

    # Pinned: a new commit upstream does not change the sample; and with no network, the cache serves it.
    hub.add_dataset(DEFAULT_REFERENCE_REPO, {DATA_FILE: _parquet(reference_rows()[:50])})
    online = _sample(env)
    assert online.returncode == 0, online.stderr
    offline = _sample({**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert offline.returncode == 0, offline.stderr
    first, again = json.loads(online.stdout), json.loads(offline.stdout)
    assert first == again and first["source"]["commit"] == hub.commit and len(first["texts"]) == 300


def test_an_unreachable_hub_without_a_cache_is_one_line_naming_what_to_download(tmp_path):
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "",
           "FINSENT_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_DISABLE_XET": "1"}
    done = _sample(env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cannot download the default reference texts (FinGPT/fingpt-sentiment-train): ")
    assert "hf download FinGPT/fingpt-sentiment-train --repo-type dataset --revision main" in lines[0]
    assert str(tmp_path / "hf" / "hub" / "datasets--FinGPT--fingpt-sentiment-train") in lines[0]


def test_a_set_whose_column_changed_upstream_is_one_line(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    with HubStandIn() as hub:
        buffer = io.BytesIO()
        pq.write_table(pa.table({"sentence": ["Acme rises"] * 20}), buffer)
        hub.add_dataset(DEFAULT_REFERENCE_REPO, {DATA_FILE: buffer.getvalue()})
        done = _sample(_env(hub, tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip() == (f"{DEFAULT_REFERENCE_REPO}: {DATA_FILE.split('/')[-1]} has no column 'input' (it has "
                                   "sentence): the set changed upstream; give --reference")
