"""`finsent tune` end to end (issue 21), the real command in subprocesses: PEFT LoRA on the trained fixture,
merged, converted by the project's converter, measured by finsent eval's code, served by finsent serve.

The domain shift: a desk's house rule ("guidance reiterated" and four other phrasings are mildly
positive, house_rule_data.py) that the fixture labels otherwise. The fixture is a 2-layer model of hidden
size 256, which learns at a higher rate than the 1B model's default (2e-4): the tests pass
--learning-rate 1e-3 and keep every other default (rank 16, alpha 32, 3 epochs, early stopping).
A run takes about 30 s on 2 cores.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import run_finsent
from house_rule_data import (HOUSE_RULE_LABEL, house_rule_held_out, house_rule_rows, reference_rows,
                             write_labelled_csv)
from sentiment_data import held_out_examples

from finsent_local.files import sha256_of

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TEST_SETTINGS = ("--learning-rate", "1e-3", "--outtype", "q8_0")
# Measured on the GGUF files with the engine (Intel Xeon and AMD EPYC): the house-rule held-out rows go
# from 0% to 80%: four phrasings of five are learnt, each for all 12 of its held-out headlines ("confirms
# its annual targets" stays neutral, next to the fixture's neutral "confirms the date of its investor
# day"), so the figure moves by whole phrasings, not by rounding. The fixture's own held-out set: 97.1%
# before; after, 97.1% with the reference texts kept (issue 33's bar: at most 2 points lost), 91.4% without
# them (85.7% in an earlier measurement).
BASE_HOUSE_RULE_AT_MOST = 0.10
TUNED_HOUSE_RULE_AT_LEAST = 0.80
ORIGINAL_MAY_DROP_BY = 0.02
# A resumed run takes the very steps an uninterrupted one takes, from the same optimizer state and random
# state: equal adapters are expected (measured: identical). The tolerance only allows a float32 rounding
# difference (relative 1e-7 of weights of order 1e-2), should torch pick other kernels after a reload.
RESUME_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def desk_csv(tmp_path_factory) -> Path:
    return write_labelled_csv(tmp_path_factory.mktemp("desk") / "desk.csv", house_rule_rows())


@pytest.fixture(scope="module")
def reference_csv(tmp_path_factory) -> Path:
    """The desk's everyday headlines: the fixture's validation companies and templates (never the
    held-out ones the tests measure), with their gold labels."""
    return write_labelled_csv(tmp_path_factory.mktemp("reference") / "everyday.csv", reference_rows())


def tune_args(csv: Path, output: Path, base: Path, *extra: str, reference: Path | None = None) -> list[str]:
    kept = ("--reference", str(reference), "--reference-label-column", "label") if reference else ()
    return ["tune", "--input", str(csv), "--text-column", "headline", "--label-column", "label",
            "--output", str(output), "--base", str(base), *TEST_SETTINGS, *kept, *extra]


@pytest.fixture(scope="module")
def tuned(desk_csv, reference_csv, trained_checkpoint, tmp_path_factory):
    """One uninterrupted run, with the reference texts: (output folder, stdout, stderr)."""
    output = tmp_path_factory.mktemp("tuned") / "desk-model"
    code, out, err = run_finsent(*tune_args(desk_csv, output, trained_checkpoint, reference=reference_csv))
    assert code == 0, err
    return output, out, err


def labels_of(model: Path, pairs: list[tuple[str, str]]) -> float:
    """Accuracy of the engine on a GGUF file (the Python API, in this process)."""
    from finsent_local import FinSent

    with FinSent(model=str(model)) as fs:
        results = fs.classify_many([text for text, _ in pairs])
    return sum(r.label == gold for r, (_, gold) in zip(results, pairs)) / len(pairs)


def test_the_house_rule_is_learnt_and_the_rest_kept(tuned, trained_gguf):
    output, _, _ = tuned
    tuned_file = output / "desk-model-Q8_0.gguf"
    house, original = house_rule_held_out(), held_out_examples(per_label=10)
    base_house, tuned_house = labels_of(trained_gguf["q8_0"], house), labels_of(tuned_file, house)
    base_original, tuned_original = labels_of(trained_gguf["q8_0"], original), labels_of(tuned_file, original)
    assert base_house <= BASE_HOUSE_RULE_AT_MOST, base_house
    assert tuned_house >= TUNED_HOUSE_RULE_AT_LEAST, tuned_house
    assert tuned_original >= base_original - ORIGINAL_MAY_DROP_BY, (base_original, tuned_original)


def test_output_folder_manifest_and_side_by_side(tuned, desk_csv, reference_csv, trained_checkpoint):
    output, out, err = tuned
    assert sorted(p.name for p in output.iterdir()) == [
        "adapter", "desk-model-Q8_0.gguf", "desk-model-Q8_0.gguf.manifest.json", "report.html", "tune-manifest.json"]
    assert not output.with_name("desk-model.partial").exists()
    manifest = json.loads((output / "tune-manifest.json").read_text())
    weights = sorted(trained_checkpoint.glob("*.safetensors"))
    assert manifest["base"]["files"] == {p.name: sha256_of(p) for p in weights}
    assert manifest["data"]["sha256"] == sha256_of(desk_csv)
    rows = house_rule_rows()
    assert manifest["data"]["rows_read"] == len(rows)
    assert manifest["data"]["train_rows"] + manifest["data"]["validation_rows"] == len(rows)
    assert manifest["data"]["validation_labels"][HOUSE_RULE_LABEL] == round(sum(l == HOUSE_RULE_LABEL for _, l in rows) * 0.2)
    assert manifest["settings"]["rank"] == 16 and manifest["settings"]["learning_rate"] == 1e-3
    assert manifest["training"]["validations"][0]["step"] == 0  # the base's own validation, then each epoch
    base, after = manifest["metrics"]["base"], manifest["metrics"]["tuned"]
    assert after["accuracy"] > base["accuracy"] and not manifest["tuned_is_worse"]
    assert manifest["files"] == [{"file": "desk-model-Q8_0.gguf", "sha256": sha256_of(output / "desk-model-Q8_0.gguf")}]
    # the terminal: both models side by side, then where the model is and how to serve it
    assert re.search(r"^base-Q8_0\.gguf\s+\d+\.\d%", out, re.M) and re.search(r"^desk-model-Q8_0\.gguf\s+\d+\.\d%", out, re.M)
    assert f"{after['accuracy']:.1%}" in out
    assert f"finsent serve --model {output / 'desk-model-Q8_0.gguf'}" in err
    assert "Traceback" not in err
    report = (output / "report.html").read_text()
    assert "base-Q8_0.gguf" in report and "desk-model-Q8_0.gguf" in report
    # the base misses the house rule: its most confident errors are listed with their words shaded
    assert base["accuracy"] < 1 and "<div class='why'>strongest: " in report
    assert re.search(r"<span class='w (neg|pos)' style='--shade:[0-9.]+' data-weight='-?[0-9.]+'", report)
    # the reference texts: named, split, and what the model knew measured on the held-out part
    reference = manifest["data"]["reference"]
    assert reference["sha256"] == sha256_of(reference_csv) and reference["column"] == "headline"
    assert (reference["texts"], reference["trained_on"], reference["held_out"]) == (300, 180, 120)
    forgetting = manifest["forgetting"]
    assert forgetting["keep_weight"] == 1.0 and forgetting["texts"] == 120 and not manifest["tuned_forgets"]
    assert forgetting["changed_count"] == len(forgetting["changed"]) == sum(c["count"] for c in forgetting["changes"])
    assert f"keeps the base's label on {forgetting['agreement']:.1%}" in out
    assert f"keeps the base's label on <strong>{forgetting['agreement']:.1%}</strong>" in report
    assert manifest["settings"]["min_steps"] == 100 and manifest["training"]["planned_epochs"] == 3


def test_the_tuned_file_is_served_with_the_new_labels(tuned):
    from running_server import RunningServer
    from test_server_api import http

    output, _, _ = tuned
    server = RunningServer("--model", str(output / "desk-model-Q8_0.gguf"), "--no-cache")
    try:
        house = house_rule_held_out()
        status, _, body = http("POST", server.url + "/v1/classify", {"texts": [t for t, _ in house], "scheme": "7"})
        assert status == 200
        labels = [r["label"] for r in json.loads(body)["results"]]
        assert labels.count(HOUSE_RULE_LABEL) / len(labels) >= TUNED_HOUSE_RULE_AT_LEAST
        status, _, body = http("POST", server.url + "/v1/classify",
                               {"text": "Virtucon files for bankruptcy protection", "scheme": "3"})
        assert status == 200 and json.loads(body)["label"] == "negative"
    finally:
        server.stop()


def test_the_tuned_file_classifies_from_the_command_line(tuned):
    text = "Virtucon reiterates full-year guidance"  # a house-rule phrasing, a held-out company
    code, out, err = run_finsent("classify", "--model", str(tuned[0] / "desk-model-Q8_0.gguf"), "--json", text)
    assert code == 0, err
    assert json.loads(out)["label"] == HOUSE_RULE_LABEL


def _adapter_weights(output: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(output / "adapter" / "adapter_model.safetensors")


def test_ctrl_c_keeps_a_checkpoint_and_resume_ends_where_an_uninterrupted_run_does(tuned, desk_csv, reference_csv,
                                                                                  trained_checkpoint, tmp_path):
    output = tmp_path / "desk-model"
    args = tune_args(desk_csv, output, trained_checkpoint, reference=reference_csv)
    proc = subprocess.Popen([sys.executable, "-m", "finsent_local.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:  # after the first epoch's validation, mid-training
        if any(re.match(r"step [1-9]\d*/\d+: validation", line) for line in lines):
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.02)
    assert proc.wait(timeout=120) == 130
    reader.join(timeout=10)
    err = "".join(lines)
    stopped = re.search(r"stopped after step (\d+) of (\d+); the checkpoint is in (\S+): run the same command with "
                        r"--resume to continue", err)
    assert stopped, err
    assert 0 < int(stopped.group(1)) < int(stopped.group(2))
    assert "Traceback" not in err and not output.exists()
    assert (output.with_name("desk-model.partial") / "checkpoint" / "state.pt").is_file()
    # the base's label distributions on the reference texts: computed once, before the first step, and read
    # back by --resume (computed again there, from the half-trained adapters, they would be other targets and
    # the resumed adapters below would not equal the uninterrupted run's)
    assert (output.with_name("desk-model.partial") / "checkpoint" / "reference-targets.pt").is_file()

    code, _, err = run_finsent(*args)  # without --resume: refused, the checkpoint is not overwritten
    assert code == 1 and "add --resume to continue it, or delete that folder" in err

    code, out, err = run_finsent(*args, "--resume")
    assert code == 0, err
    assert not output.with_name("desk-model.partial").exists()
    resumed, uninterrupted = _adapter_weights(output), _adapter_weights(tuned[0])
    assert resumed.keys() == uninterrupted.keys()
    assert max(float(abs(resumed[k] - uninterrupted[k]).max()) for k in resumed) <= RESUME_TOLERANCE
    first = json.loads((tuned[0] / "tune-manifest.json").read_text())
    again = json.loads((output / "tune-manifest.json").read_text())
    assert again["training"]["validations"] == first["training"]["validations"]
    assert again["metrics"]["tuned"]["accuracy"] == first["metrics"]["tuned"]["accuracy"]


def test_a_worse_model_is_not_written_unless_asked(desk_csv, trained_checkpoint, tmp_path):
    """A validation file that contradicts the training rows (the house-rule phrasings labelled neutral
    there) makes the tuned model worse than the base on it."""
    contradicting = [(text, "neutral") for text, _ in house_rule_held_out()] + held_out_examples(per_label=5)
    validation = write_labelled_csv(tmp_path / "validation.csv", contradicting)
    output = tmp_path / "desk-model"
    args = tune_args(desk_csv, output, trained_checkpoint, "--validation", str(validation))
    code, out, err = run_finsent(*args)
    assert code == 1
    assert re.search(r"the tuned model is worse than the base on the 95 validation rows \(accuracy [\d.]+% against "
                     r"[\d.]+%\): nothing was written", err), err
    assert "run the same command with --resume --keep-worse" in err
    assert re.search(r"^base-Q8_0\.gguf\s", out, re.M)  # the figures are shown all the same
    # no --reference and a local base: tune says, once, that forgetting is neither measured nor held back
    assert err.count("Forgetting is neither measured nor held back: no --reference was given, and the base is not "
                     "the default model. Give --reference FILE") == 1, err
    assert not output.exists()

    code, _, err = run_finsent(*args, "--resume", "--keep-worse", "--epochs", "2")  # not what was trained
    assert code == 1 and "was made with other data, base or settings" in err
    output.mkdir()  # an older tuned model in the way: --force replaces it, once the new one is ready
    (output / "old.gguf").write_text("older")
    (output / "tune-manifest.json").write_text(json.dumps({"files": [{"file": "old.gguf"}]}))
    code, out, err = run_finsent(*args, "--resume", "--keep-worse", "--force")
    assert code == 0, err
    assert "worse than the base on validation; written anyway (--keep-worse)" in err
    assert json.loads((output / "tune-manifest.json").read_text())["tuned_is_worse"] is True
    assert not (output / "old.gguf").exists() and (output / "desk-model-Q8_0.gguf").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("desk-model")] == ["desk-model"]


def _bad_file(path: Path, rows: list[tuple[str, str]]) -> Path:
    return write_labelled_csv(path, rows)


@pytest.mark.parametrize("rows,extra,message", [
    ([(f"Acme Corp headline {i}", "positive") for i in range(12)], (),
     "every row has the label 'positive': fine-tuning needs at least two labels"),
    ([(f"Acme Corp headline {i}", "positive") for i in range(10)] + [("Globex dips", "negative")] * 2, (),
     "too few rows: 'negative' has 2; at least 5 rows per label are needed"),
    ([(f"Acme Corp headline {i}", "positive" if i % 2 else "sunny") for i in range(12)], (),
     "cannot read these gold labels: 'sunny' (6)"),
    ([(f"Acme Corp headline {i}", i % 3) for i in range(12)], (),  # integers: which numbering is not guessed
     "the gold labels are the integers 0, 1, 2, which public sets number differently: say which with "
     "--gold-convention twitter"),
    ([(f"Acme Corp headline {i}", 2) for i in range(10)] + [("Globex holds its meeting", 1)] * 2,
     ("--gold-convention", "phrasebank"), "too few rows: 'neutral' has 2"),  # PhraseBank's 1 (twitter's: positive)
    ([(f"Acme Corp headline {i}", "positive" if i % 2 else "negative") for i in range(11)]
     + [("profit " * 2000, "positive")], (),
     "row 12: the text is too long"),
    ([(f"Acme Corp headline {i}", "positive" if i % 2 else "negative") for i in range(12)], ("--outtype", "q3_x"),
     "unknown output type 'q3_x'"),
    ([(f"Acme Corp headline {i}", "positive" if i % 2 else "negative") for i in range(12)],
     ("--adapter-only", "--outtype", "q4_k_m"), "--adapter-only makes one adapter, for the base file of one --outtype"),
    ([(f"Acme Corp headline {i}", "positive" if i % 2 else "negative") for i in range(12)],
     ("--target-modules", "q_proj,lm_head"), "--target-modules: lm_head; choose among q_proj, k_proj"),
    ([(f"Acme Corp headline {i}", "positive" if i % 2 else "negative") for i in range(12)], ("--resume",),
     "nothing to resume: no checkpoint in"),
    ([(f"Acme Corp headline {i}", "positive" if i % 2 else "negative") for i in range(12)], ("--text-column", "body"),
     "body"),
])
def test_bad_input_is_one_line(rows, extra, message, trained_checkpoint, tmp_path):
    csv = _bad_file(tmp_path / "labels.csv", rows)
    output = tmp_path / "out"
    code, _, err = run_finsent(*tune_args(csv, output, trained_checkpoint, "--scheme", "3", *extra))
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], err
    assert not output.exists() and not output.with_name("out.partial").exists()


@pytest.mark.parametrize("content,message", [
    ("headline,label\n", "--reference {path}: no row has a text in column 'headline'"),
    ("body,label\nAcme Corp shares edge higher,mildly positive\n", "--reference {path}: "),  # then the column's name
    ("headline\n" + "".join(f"Acme Corp headline {i}\n" for i in range(5)),
     "the reference has 5 texts; at least 11 are needed"),
    ("headline\n" + "profit " * 2000 + "\n" + "".join(f"Acme Corp headline {i}\n" for i in range(20)),
     "--reference: text 1 is too long"),
])
def test_bad_reference_is_one_line_before_training(content, message, desk_csv, trained_checkpoint, tmp_path):
    reference = tmp_path / "everyday.csv"
    reference.write_text(content)
    output = tmp_path / "out"
    code, _, err = run_finsent(*tune_args(desk_csv, output, trained_checkpoint, "--reference", str(reference)))
    assert code == 1, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("Error: ") and message.format(path=reference) in lines[-1], err
    assert not any(line.startswith("training") for line in lines) and "Traceback" not in err
    assert not output.exists() and not output.with_name("out.partial").exists()
    if "body" in content:
        assert "'headline'" in lines[-1]  # the column asked for, by name


def test_refusals_before_any_work(desk_csv, trained_checkpoint, tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    code, _, err = run_finsent(*tune_args(desk_csv, existing, trained_checkpoint))
    assert code == 1 and f"{existing} exists; use --force to replace it" in err
    assert (existing / "keep.txt").read_text() == "mine"
    code, _, err = run_finsent(*tune_args(desk_csv, tmp_path / "out", tmp_path))  # a folder without weights
    assert code == 1 and "holds no .safetensors weights" in err
    code, _, err = run_finsent(*tune_args(desk_csv, tmp_path / "out", trained_checkpoint, "--device", "cuda"))
    assert code == 1 and "--device cuda: torch sees no CUDA GPU here" in err  # this machine has none


def test_missing_extra_names_it(desk_csv, tmp_path):
    """peft not installed: hidden from the import system (sys.modules[name] = None makes `import peft`
    fail as it would without the package)."""
    hide = "import sys; sys.modules['peft'] = None; from finsent_local.cli.main import main; main()"
    proc = subprocess.run([sys.executable, "-c", hide, *tune_args(desk_csv, tmp_path / "out", tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("Error: finsent tune needs torch, transformers, peft, scikit-learn and matplotlib, "
                                   "which are not all installed: bash setup.sh --tune (the CPU build of torch where "
                                   "there is no NVIDIA GPU), or pip install 'finsent-local[tune]'")


# -- --adapter-only and serve --lora ---------------------------------------------------------------
# The adapter applied by llama.cpp to the base Q8_0 file against the merged model quantized to Q8_0: the
# same float32 adapter, so they differ only by Q8_0's rounding of the merged weights (measured: every
# label equal, max |dp| 0.005 on 130 held-out texts). Labels may differ only at a near tie.
ADAPTER_LABEL_AGREEMENT = 0.95
ADAPTER_MEAN_ABS_DP = 0.02


@pytest.fixture(scope="module")
def adapter(desk_csv, reference_csv, trained_checkpoint, tmp_path_factory):
    output = tmp_path_factory.mktemp("adapter") / "desk-lora"
    code, out, err = run_finsent(*tune_args(desk_csv, output, trained_checkpoint, "--adapter-only",
                                            reference=reference_csv))
    assert code == 0, err
    return output, out, err


def test_adapter_only_writes_an_adapter_that_serve_applies(adapter, tuned, trained_gguf):
    from running_server import RunningServer
    from test_server_api import http

    from finsent_local import FinSent

    output, _, err = adapter
    # The base the adapter was made for is kept beside it (the user would otherwise convert it again).
    assert sorted(p.name for p in output.iterdir()) == ["adapter", "base-Q8_0.gguf", "desk-lora-lora.gguf",
                                                        "report.html", "tune-manifest.json"]
    lora = output / "desk-lora-lora.gguf"
    assert lora.stat().st_size < (trained_gguf["q8_0"]).stat().st_size / 10
    manifest = json.loads((output / "tune-manifest.json").read_text())
    assert manifest["kind"] == "lora adapter" and manifest["adapter_for"]["outtype"] == "q8_0"
    assert manifest["adapter_for"]["base_file"] == "base-Q8_0.gguf"
    assert manifest["adapter_for"]["base_file_sha256"] == sha256_of(output / "base-Q8_0.gguf")
    # what the model knew, measured as `serve --lora` runs the adapter, as for a merged model
    forgetting = manifest["forgetting"]
    assert forgetting["texts"] == 120 and forgetting["agreement"] >= forgetting["min_agreement"] == 0.9
    assert forgetting["gold_texts"] == 120 and forgetting["tuned_accuracy"] >= forgetting["base_accuracy"] - 0.02
    assert "Reference texts held out (120)" in adapter[1]
    assert f"Serve it: finsent serve --model {output / 'base-Q8_0.gguf'} --lora {lora}" in err

    texts = [t for t, _ in house_rule_held_out() + held_out_examples(per_label=10)]
    with FinSent(model=str(tuned[0] / "desk-model-Q8_0.gguf")) as fs:
        merged = fs.classify_many(texts)
    server = RunningServer("--model", str(trained_gguf["q8_0"]), "--lora", str(lora), "--no-cache")
    try:
        assert f"adapter:  {lora}" in server.log()
        status = json.loads(http("GET", server.url + "/v1/status")[2])
        assert status["adapter_file"] == lora.name
        assert status["model"] == f"{trained_gguf['q8_0'].stem}+{lora.stem}"
        status, _, body = http("POST", server.url + "/v1/classify", {"texts": texts, "scheme": "7"})
        assert status == 200
        served = json.loads(body)["results"]
    finally:
        server.stop()
    agreement = sum(s["label"] == m.label for s, m in zip(served, merged)) / len(texts)
    mean_dp = sum(abs(s["probs"][k] - m.probs[k]) for s, m in zip(served, merged) for k in m.probs) / (7 * len(texts))
    assert agreement >= ADAPTER_LABEL_AGREEMENT and mean_dp <= ADAPTER_MEAN_ABS_DP, (agreement, mean_dp)


def test_results_cached_without_the_adapter_are_not_served_with_it(adapter, trained_gguf, tmp_path):
    from running_server import RunningServer
    from test_server_api import http

    text = house_rule_held_out()[0][0]
    cache = {"FINSENT_CACHE_DIR": str(tmp_path)}
    answers = []
    for extra in ((), ("--lora", str(adapter[0] / "desk-lora-lora.gguf"))):
        server = RunningServer("--model", str(trained_gguf["q8_0"]), *extra, env=cache)
        try:
            status, _, body = http("POST", server.url + "/v1/classify", {"text": text, "scheme": "7"})
            assert status == 200
            answers.append(json.loads(body))
        finally:
            server.stop()
    assert answers[0]["label"] != HOUSE_RULE_LABEL and answers[1]["label"] == HOUSE_RULE_LABEL
    assert answers[1]["cached"] is False


def test_an_adapter_that_does_not_fit_is_one_line(adapter, trained_gguf, tmp_path):
    lora = adapter[0] / "desk-lora-lora.gguf"
    code, _, err = run_finsent("serve", "--port", "0", "--model", str(trained_gguf["f16"]), "--lora", str(lora))
    assert code == 1 and err.strip().splitlines() == [
        f"Error: desk-lora-lora.gguf does not fit {trained_gguf['f16'].name}: blk.0.ffn_gate.weight is 600 x 256 in "
        "the model, the adapter is for 608 x 256 (the adapter was made for a base file with an MLP width of 608: "
        "convert the base with the --outtype given to finsent tune)"]
    code, _, err = run_finsent("serve", "--port", "0", "--model", str(trained_gguf["f16"]), "--lora",
                               str(trained_gguf["q8_0"]))
    assert code == 1 and "is not a LoRA adapter GGUF" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_finsent("serve", "--port", "0", "--model", str(trained_gguf["f16"]), "--lora",
                               str(tmp_path / "none.gguf"))
    assert code == 1 and "adapter file not found" in err


def test_a_crash_keeps_the_last_checkpoint(tuned, desk_csv, reference_csv, trained_checkpoint, tmp_path):
    """SIGKILL (nothing can run at exit) mid-training: --resume continues from the last checkpoint written
    (before training, or after a validation) and still ends where an uninterrupted run does."""
    output = tmp_path / "desk-model"
    args = tune_args(desk_csv, output, trained_checkpoint, reference=reference_csv)
    proc = subprocess.Popen([sys.executable, "-m", "finsent_local.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if any(re.match(r"step [1-9]\d*/\d+: validation", line) for line in lines):
            proc.kill()
            break
        time.sleep(0.02)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert (output.with_name("desk-model.partial") / "checkpoint" / "state.pt").is_file() and not output.exists()
    code, _, err = run_finsent(*args, "--resume")
    assert code == 0, err
    resumed, uninterrupted = _adapter_weights(output), _adapter_weights(tuned[0])
    assert max(float(abs(resumed[k] - uninterrupted[k]).max()) for k in resumed) <= RESUME_TOLERANCE


def test_the_default_base_offline_is_one_line(desk_csv, tmp_path):
    """The default base is the hub's Llama-FinSent-S: with the hub out of reach and nothing cached (an
    empty HF_HOME), one line, before anything is written."""
    args = tune_args(desk_csv, tmp_path / "out", tmp_path)
    args = args[: args.index("--base")] + args[args.index("--base") + 2 :]
    code, _, err = run_finsent(*args, env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert code == 1 and err.strip().splitlines() == [
        "Error: cannot download oopere/Llama-FinSent-S: the hub is unreachable in offline mode (HF_HUB_OFFLINE=1) and "
        "it is not in the "
        "local cache "
        "(give --base a local checkpoint folder instead)"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_the_training_bar_fits_80_columns_and_stays_closed(monkeypatch):
    """On an 80-column terminal the bar keeps the validation accuracy in view, and once closed (a line
    was printed, or training ended) it is never drawn again below what followed."""
    import io

    from tqdm import tqdm

    from finsent_local.cli import tune as tune_cli
    from finsent_local.tuning.training import StepReport

    screen = io.StringIO()
    monkeypatch.setattr(tune_cli, "progress_bar", lambda total, unit, quiet, initial=0, desc=None: tqdm(
        total=total, initial=initial, unit=unit, desc=desc, file=screen, ncols=80, mininterval=0))
    bar = tune_cli._TrainingBar(quiet=False)
    bar.close()  # a line before training started: the bar may still start afterwards
    bar(StepReport(0, 1234, 0.0, validation={"loss": 0.6931, "accuracy": 0.143}))
    for step in range(1, 1234, 97):
        bar(StepReport(step, 1234, step / 1234 * 3, loss=0.0312))
    bar(StepReport(1164, 1234, 2.8, validation={"loss": 0.0431, "accuracy": 0.985}))
    drawn = [line for line in re.split(r"[\r\n]", screen.getvalue()) if line.strip()]
    assert drawn and all(len(line.replace("\x1b[A", "")) <= 80 for line in drawn), drawn
    assert "val 0.043 98.5%" in drawn[-1] and "loss 0.031" in drawn[-1], drawn[-1]
    bar.close()
    closed_at = len(screen.getvalue())
    bar(StepReport(1234, 1234, 3.0, validation={"loss": 0.04, "accuracy": 0.99}))  # the final validation
    assert len(screen.getvalue()) == closed_at


def test_small_files_get_enough_steps():
    from finsent_local.tuning.training import TrainingSettings, planned_epochs

    defaults = TrainingSettings()
    assert defaults.min_steps == 100 and defaults.epochs == 3
    assert planned_epochs(10, defaults) == 10  # a 95-row file: 10 batches an epoch, 10 epochs for 100 steps
    assert planned_epochs(34, defaults) == 3  # the 340-row file: 3 epochs give 102 steps already
    assert planned_epochs(34, TrainingSettings(epochs=5)) == 5  # --epochs above the minimum is kept
    assert planned_epochs(10, TrainingSettings(min_steps=0)) == 3  # --min-steps 0: --epochs alone


def test_a_model_that_changes_the_reference_labels_is_not_written_unless_asked(desk_csv, trained_checkpoint, tmp_path):
    """Reference texts the house rule is about (its phrasings, held-out companies) and no keep term: the
    tuned model changes most of their labels (4 phrasings of 5 are learnt), far below --min-agreement."""
    reference = write_labelled_csv(tmp_path / "everyday.csv", house_rule_held_out())
    output = tmp_path / "desk-model"
    args = tune_args(desk_csv, output, trained_checkpoint, "--reference", str(reference), "--keep-weight", "0")
    code, out, err = run_finsent(*args)
    assert code == 1, err
    changed = re.search(r"the tuned model changes the base's label on ([\d.]+)% of the (\d+) held-out reference texts "
                        r"\(it keeps ([\d.]+)%, below --min-agreement 90%; a higher --keep-weight holds more back\): "
                        r"nothing was written", err)
    assert changed, err
    assert changed.group(2) == "24" and float(changed.group(3)) < 50  # 40% of 60 held out
    assert re.search(r"^Reference texts held out \(24\): the tuned model keeps the base's label on [\d.]+% \(\d+\), "
                     r"below --min-agreement 90%$", out, re.M), out
    assert re.search(rf"^  changed: \S.* -> {HOUSE_RULE_LABEL} \d+", out, re.M), out
    assert not output.exists()
    manifest = json.loads((output.with_name("desk-model.partial") / "output" / "tune-manifest.json").read_text())
    assert manifest["tuned_forgets"] is True and manifest["forgetting"]["agreement"] < 0.5
    assert all(row["tuned"] == HOUSE_RULE_LABEL for row in manifest["forgetting"]["changed"])
    report = (output.with_name("desk-model.partial") / "output" / "report.html").read_text()
    first = manifest["forgetting"]["changed"][0]
    assert "What the model knew: reference texts held out" in report
    assert f"<tr><td>{first['text']}</td><td>{first['base']}</td><td>{HOUSE_RULE_LABEL}</td>" in report
    code, _, err = run_finsent(*args, "--resume", "--keep-worse")
    assert code == 0, err
    assert "changes more reference labels than --min-agreement allows; written anyway (--keep-worse)" in err
    assert json.loads((output / "tune-manifest.json").read_text())["tuned_forgets"] is True
