"""May this command write here? output_place's rules, and every command that writes files held to them
through the real `finsent` command: nothing that a command did not make is ever replaced or deleted.

These refusals all happen before any model is loaded, so the tests need no model (tune's base is a
folder that does not need to hold weights: the place is checked first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_finsent

from finsent_local.output_place import (FileOutput, FolderOutput, OutputRefused, check_outputs, is_gguf,
                                        made_by_manifest, touching_input)


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


# -- the rules ----------------------------------------------------------------------------------------------------
def test_an_output_never_equals_holds_or_lies_inside_an_input(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    gold = data / "gold.csv"
    gold.write_text("text,label\n")
    assert touching_input(gold, [gold]) == gold  # is
    assert touching_input(data, [gold]) == gold  # holds
    assert touching_input(tmp_path, [gold]) == gold  # holds, further up
    assert touching_input(data / "out", [data]) == data  # lies inside a folder read whole
    assert touching_input(tmp_path / "other.csv", [gold, data]) is None
    link = tmp_path / "gold-link.csv"
    link.hardlink_to(gold)  # the same file under another name
    assert touching_input(link, [gold]) == gold
    with pytest.raises(OutputRefused, match=r"^--predictions .*gold.csv is the input .*gold.csv; choose another "
                                            r"--predictions$"):
        check_outputs([FileOutput(gold, "--predictions")], [gold], force=True)
    with pytest.raises(OutputRefused, match=r"^--output .*data holds the input .*gold.csv"):
        check_outputs([FolderOutput(data, "--output", "finsent tune", lambda f: set())], [gold], force=True)


def test_two_outputs_never_name_the_same_file(tmp_path):
    same = tmp_path / "figures.out"
    with pytest.raises(OutputRefused, match=r"^--report and --json name the same place"):
        check_outputs([FileOutput(same, "--report"), FileOutput(tmp_path / "." / "figures.out", "--json")])
    check_outputs([FileOutput(tmp_path / "a.html", "--report"), FileOutput(tmp_path / "a.json", "--json")])


def test_force_replaces_a_file_only_of_the_commands_kind(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    gguf = tmp_path / "old.gguf"
    gguf.write_bytes(b"GGUF" + bytes(20))
    output = lambda path: FileOutput(path, "--outfile", "a GGUF file", is_gguf)  # noqa: E731
    with pytest.raises(OutputRefused, match=r"exists; use --force to replace it$"):
        check_outputs([output(gguf)])
    check_outputs([output(gguf)], force=True)  # a GGUF file: --force may replace it
    with pytest.raises(OutputRefused, match=r"exists and is not a GGUF file, so --force will not replace it"):
        check_outputs([output(weights)], force=True)
    with pytest.raises(OutputRefused, match=r"is a folder; give a file name$"):
        check_outputs([output(tmp_path)], force=True)


def test_force_replaces_a_folder_only_when_made_here_and_holding_nothing_else(tmp_path):
    made = made_by_manifest("made.json", lambda manifest: manifest["files"])
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "thesis.docx").write_text("months of work")
    output = FolderOutput(folder, "--output", "finsent tune", made)
    with pytest.raises(OutputRefused, match=r"exists; use --force to replace it$"):
        check_outputs([output])
    with pytest.raises(OutputRefused, match=r"was not made by `finsent tune`, so it is left as it is"):
        check_outputs([output], force=True)
    (folder / "made.json").write_text(json.dumps({"files": ["model.gguf"]}))
    (folder / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(OutputRefused, match=r"also holds what `finsent tune` did not write \(thesis.docx\)"):
        check_outputs([output], force=True)
    (folder / "thesis.docx").unlink()
    check_outputs([output], force=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    check_outputs([FolderOutput(empty, "--output", "finsent tune", made)])  # an empty folder is free to fill
    with pytest.raises(OutputRefused, match=r"^no folder .*nowhere for --output$"):
        check_outputs([FolderOutput(tmp_path / "nowhere" / "out", "--output", "finsent tune", made)])


# -- every command --------------------------------------------------------------------------------------------------
@pytest.fixture
def desk(tmp_path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    gold = data / "desk.csv"
    gold.write_text("headline,label\nProfit rose,positive\nSales fell,negative\n")
    return gold


def test_eval_never_writes_over_the_labelled_file_or_one_output_over_another(desk, tmp_path):
    before = desk.read_bytes()
    args = ["eval", "--input", str(desk), "--text-column", "headline", "--label-column", "label", "--force"]
    code, _, stderr = run_finsent(*args, "--predictions", str(desk))
    assert code == 1 and _last_line(stderr) == (f"Error: --predictions {desk} is the input {desk}; choose another "
                                                "--predictions"), stderr
    same = tmp_path / "figures"
    code, _, stderr = run_finsent(*args, "--report", str(same), "--json", str(same))
    assert code == 1 and _last_line(stderr) == f"Error: --report and --json name the same place ({same}); give each its own"
    assert desk.read_bytes() == before and not same.exists()


def test_tune_force_never_deletes_the_folder_holding_its_input(desk, tmp_path):
    """The reported defect: `--input data/desk.csv --output data --force` left data/ holding the new model."""
    (desk.parent / "notes.txt").write_text("mine")
    base = tmp_path / "base"
    base.mkdir()
    code, _, stderr = run_finsent("tune", "--input", str(desk), "--text-column", "headline", "--label-column", "label",
                                  "--output", str(desk.parent), "--base", str(base), "--force")
    assert code == 1 and _last_line(stderr) == (f"Error: --output {desk.parent} holds the input {desk}; choose another "
                                                "--output"), stderr
    assert desk.is_file() and (desk.parent / "notes.txt").read_text() == "mine"
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    code, _, stderr = run_finsent("tune", "--input", str(desk), "--text-column", "headline", "--label-column", "label",
                                  "--output", str(other), "--base", str(base), "--force")
    assert code == 1 and "was not made by `finsent tune`, so it is left as it is" in _last_line(stderr), stderr
    assert (other / "keep.txt").read_text() == "mine"


def test_tune_leaves_a_work_folder_it_did_not_make(desk, tmp_path):
    """tune empties `<output>.partial` when not resuming: only when it carries tune's mark."""
    mine = tmp_path / "model.partial"
    mine.mkdir()
    (mine / "draft.txt").write_text("mine")
    base = tmp_path / "base"
    base.mkdir()
    code, _, stderr = run_finsent("tune", "--input", str(desk), "--text-column", "headline", "--label-column", "label",
                                  "--output", str(tmp_path / "model"), "--base", str(base))
    assert code == 1 and f"{mine} exists and was not made by `finsent tune`" in _last_line(stderr), stderr
    assert (mine / "draft.txt").read_text() == "mine"


def test_classify_never_writes_over_its_input(desk):
    before = desk.read_bytes()
    code, _, stderr = run_finsent("classify", "--input", str(desk), "--column", "headline", "--output", str(desk),
                                  "--force")
    assert code == 1 and _last_line(stderr) == f"Error: --output {desk} is the input {desk}; choose another --output"
    assert desk.read_bytes() == before


def test_a_file_jobs_work_folder_is_never_one_it_did_not_make(tmp_path):
    from finsent_local.jobs.errors import JobError
    from finsent_local.jobs.file_job import JobIdentity, WorkFolder

    work = WorkFolder(tmp_path / "out.csv")
    work.path.mkdir()
    (work.path / "mine.txt").write_text("mine")
    source = tmp_path / "in.csv"
    source.write_text("a\nb\n")
    with pytest.raises(JobError, match="was not made by `finsent classify`; move it"):
        work.claim(JobIdentity.of(source, "a", None, "7", "sha", "card"))
    assert (work.path / "mine.txt").read_text() == "mine"


def test_convert_force_replaces_only_a_gguf_file_and_never_the_checkpoints_own(tied_f16_checkpoint, tmp_path):
    notes = tmp_path / "notes.gguf"
    notes.write_text("not a model")
    code, _, stderr = run_finsent("convert", str(tied_f16_checkpoint), "--outtype", "f16", "--outfile", str(notes),
                                  "--no-verify", "--force")
    assert code == 1 and f"{notes} exists and is not a GGUF file, so --force will not replace it" in stderr, stderr
    assert notes.read_text() == "not a model"
    config = tied_f16_checkpoint / "config.json"
    before = config.read_bytes()
    code, _, stderr = run_finsent("convert", str(tied_f16_checkpoint), "--outtype", "f16", "--outfile", str(config),
                                  "--no-verify", "--force")
    assert code == 1 and f"--outfile {config} is the input {config}" in stderr, stderr
    assert config.read_bytes() == before


def test_freeze_output_replaces_only_a_workbook(tmp_path):
    book = tmp_path / "book.xlsx"
    book.write_bytes(b"PK\x03\x04")  # refused before the workbook is even read
    notes = tmp_path / "notes.xlsx"
    notes.write_text("mine")
    code, _, stderr = run_finsent("excel", "freeze", str(book), "--output", str(notes), "--force",
                                  "--url", "http://127.0.0.1:9")
    assert code == 1 and _last_line(stderr) == (f"Error: {notes} exists and is not an Excel workbook, so --force will "
                                                "not replace it; choose another --output"), stderr
    assert notes.read_text() == "mine"


def test_certs_export_never_replaces_another_kind_of_file(tmp_path):
    env = {"FINSENT_TLS_DIR": str(tmp_path / "tls")}
    key = tmp_path / "id_rsa"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    code, _, stderr = run_finsent("certs", "--export", str(key), "--force", env=env)
    assert code == 1 and _last_line(stderr) == (f"Error: {key} exists and is not a PEM certificate, so --force will "
                                                "not replace it; choose another --export"), stderr
    assert key.read_text() == "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    exported = tmp_path / "ca.pem"
    code, _, stderr = run_finsent("certs", "--export", str(exported), env=env)
    assert code == 0 and exported.read_text().startswith("-----BEGIN CERTIFICATE-----"), stderr
    code, _, stderr = run_finsent("certs", "--export", str(exported), env=env)  # the same file again: fine
    assert code == 0, stderr
