"""`finsent convert` as a user runs it: bad inputs get one line and a non-zero exit, and nothing is written."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import gguf
import pytest

from conftest import run_finsent


def _copy_checkpoint(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".complete"))
    return dst


def _assert_clean_failure(code: int, stderr: str, out_dir: Path, *expected_words: str) -> None:
    assert code != 0
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr  # one line, no traceback
    assert lines[0].startswith("Error: ")
    for word in expected_words:
        assert word in lines[0]
    leftovers = [p.name for p in out_dir.iterdir()] if out_dir.exists() else []
    assert not [name for name in leftovers if name.endswith(".gguf") or name.startswith(".finsent-convert")], leftovers


def test_converts_and_writes_manifest(tmp_path, tied_f16_checkpoint):
    code, stdout, stderr = run_finsent("convert", str(tied_f16_checkpoint), "--outtype", "q8_0",
                                       "--outfile", str(tmp_path / "m.gguf"), "--no-verify", "-q")
    assert code == 0, stderr
    assert stdout.strip() == str(tmp_path / "m.gguf")
    assert json.loads((tmp_path / "m.gguf.manifest.json").read_text())["outtype"] == "q8_0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf", "m.gguf.manifest.json"]


def test_existing_output_needs_force(tmp_path, tied_f16_checkpoint):
    target = tmp_path / "m.gguf"
    target.write_bytes(b"precious")
    code, _, stderr = run_finsent("convert", str(tied_f16_checkpoint), "--outtype", "f16", "--outfile", str(target), "--no-verify")
    assert code != 0 and "--force" in stderr
    assert target.read_bytes() == b"precious"
    code, _, stderr = run_finsent("convert", str(tied_f16_checkpoint), "--outtype", "f16", "--outfile", str(target),
                                  "--no-verify", "--force", "-q")
    assert code == 1 and "exists and is not a GGUF file, so --force will not replace it" in stderr  # not a model: kept
    assert target.read_bytes() == b"precious"
    target.write_bytes(b"GGUF" + bytes(60))  # an earlier model: --force replaces it
    code, _, stderr = run_finsent("convert", str(tied_f16_checkpoint), "--outtype", "f16", "--outfile", str(target),
                                  "--no-verify", "--force", "-q")
    assert code == 0, stderr
    assert target.read_bytes()[:4] == b"GGUF" and target.stat().st_size > 64


def test_non_llama_architecture(tmp_path, tied_f16_checkpoint):
    ckpt = _copy_checkpoint(tied_f16_checkpoint, tmp_path / "ckpt")
    config = json.loads((ckpt / "config.json").read_text())
    config.update(architectures=["MistralForCausalLM"], model_type="mistral")
    (ckpt / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    out.mkdir()
    code, _, stderr = run_finsent("convert", str(ckpt), "--outfile", str(out / "m.gguf"), "--no-verify")
    _assert_clean_failure(code, stderr, out, "MistralForCausalLM", "LlamaForCausalLM")


def test_missing_config(tmp_path, tied_f16_checkpoint):
    ckpt = _copy_checkpoint(tied_f16_checkpoint, tmp_path / "ckpt")
    (ckpt / "config.json").unlink()
    code, _, stderr = run_finsent("convert", str(ckpt), "--outfile", str(tmp_path / "m.gguf"), "--no-verify")
    _assert_clean_failure(code, stderr, tmp_path, "config.json")


def test_missing_shard(tmp_path):
    import fixture_models

    ckpt = _copy_checkpoint(fixture_models.tiny_checkpoint(fixture_models.TINY_VARIANTS[2]), tmp_path / "ckpt")
    next(ckpt.glob("model-00002-*.safetensors")).unlink()
    code, _, stderr = run_finsent("convert", str(ckpt), "--outfile", str(tmp_path / "m.gguf"), "--no-verify")
    _assert_clean_failure(code, stderr, tmp_path, "missing")


def test_truncated_safetensors(tmp_path, tied_f16_checkpoint):
    ckpt = _copy_checkpoint(tied_f16_checkpoint, tmp_path / "ckpt")
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    code, _, stderr = run_finsent("convert", str(ckpt), "--outfile", str(tmp_path / "m.gguf"), "--no-verify")
    _assert_clean_failure(code, stderr, tmp_path, "truncated or corrupt")


def test_garbage_safetensors_header(tmp_path, tied_f16_checkpoint):
    ckpt = _copy_checkpoint(tied_f16_checkpoint, tmp_path / "ckpt")
    (ckpt / "model.safetensors").write_bytes(struct.pack("<Q", 40) + b"{not json at all" + b"\0" * 100)
    code, _, stderr = run_finsent("convert", str(ckpt), "--outfile", str(tmp_path / "m.gguf"), "--no-verify")
    _assert_clean_failure(code, stderr, tmp_path, "corrupt safetensors header")


def test_unsupported_dtype(tmp_path, tied_f16_checkpoint):
    ckpt = _copy_checkpoint(tied_f16_checkpoint, tmp_path / "ckpt")
    weights = ckpt / "model.safetensors"
    data = bytearray(weights.read_bytes())
    header_len = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + header_len])
    name = "model.layers.0.input_layernorm.weight"
    header[name]["dtype"] = "I16"  # same width as F16, so offsets stay valid
    new_header = json.dumps(header, separators=(",", ":")).encode().ljust(header_len)
    assert len(new_header) == header_len
    weights.write_bytes(data[:8] + new_header + data[8 + header_len :])
    code, _, stderr = run_finsent("convert", str(ckpt), "--outfile", str(tmp_path / "m.gguf"), "--no-verify")
    _assert_clean_failure(code, stderr, tmp_path, "I16")


def test_nan_weights_fail_verification_and_leave_nothing(tmp_path, tied_f16_checkpoint):
    """A failure after files were written (here: verification) still leaves no final file."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    ckpt = _copy_checkpoint(tied_f16_checkpoint, tmp_path / "ckpt")
    tensors = load_file(ckpt / "model.safetensors")
    tensors["model.layers.1.mlp.down_proj.weight"][0, 0] = np.nan
    save_file(tensors, ckpt / "model.safetensors", metadata={"format": "pt"})
    out = tmp_path / "out"
    out.mkdir()
    code, _, stderr = run_finsent("convert", str(ckpt), "--outtype", "f32", "--outfile", str(out / "m.gguf"), "--verify", "-q")
    _assert_clean_failure(code, stderr, out, "verification failed", "NaN")


@pytest.mark.parametrize("args, words", [
    (["--outtype", "q3_k"], ["unknown output type"]),
    (["--outtype", "f16,q8_0"], ["{outtype}"]),
])
def test_bad_options(tmp_path, tied_f16_checkpoint, args, words):
    code, _, stderr = run_finsent("convert", str(tied_f16_checkpoint), "--outfile", str(tmp_path / "m.gguf"), "--no-verify", *args)
    _assert_clean_failure(code, stderr, tmp_path, *words)


def test_no_such_source(tmp_path):
    code, _, stderr = run_finsent("convert", str(tmp_path / "nowhere" / "x y"), "--outfile", str(tmp_path / "m.gguf"))
    _assert_clean_failure(code, stderr, tmp_path, "no such directory")


def test_hub_unreachable_is_one_line(tmp_path):
    code, _, stderr = run_finsent("convert", "oopere/Llama-FinSent-S", "--outfile", str(tmp_path / "m.gguf"),
                                  env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    _assert_clean_failure(code, stderr, tmp_path, "oopere/Llama-FinSent-S", "unreachable")


def test_hub_source_from_cache_records_provenance(tmp_path, tied_f16_checkpoint):
    """FAKE HUB: the hub cannot be reached here, so its local cache is laid out by hand (the layout
    huggingface-hub itself writes) and the real download code runs offline against it."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--oopere--Llama-FinSent-S"
    _copy_checkpoint(tied_f16_checkpoint, repo / "snapshots" / commit)
    (repo / "snapshots" / commit / "README.md").write_text("---\nlicense: llama3.2\n---\n# card\n")
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    out = tmp_path / "out"
    out.mkdir()
    code, _, stderr = run_finsent("convert", "oopere/Llama-FinSent-S", "--outtype", "f16", "--outfile", str(out / "m.gguf"),
                                  "--no-verify", "-q", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert code == 0, stderr
    reader = gguf.GGUFReader(out / "m.gguf")
    assert reader.fields["general.source.repo_id"].contents() == "oopere/Llama-FinSent-S"
    assert reader.fields["general.source.revision"].contents() == commit
    assert reader.fields["general.license"].contents() == "llama3.2"
    assert json.loads((out / "m.gguf.manifest.json").read_text())["revision"] == commit


def test_interrupted_run_leaves_nothing(tmp_path, tied_f16_checkpoint):
    """Ctrl-C while the outputs are being checked (they exist only in the work folder then)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "finsent_local.cli", "convert", str(tied_f16_checkpoint),
                             "--outtype", "f16,q8_0", "--outfile", str(out / "m-{outtype}.gguf"), "--verify"],
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    seen = ""
    deadline = time.time() + 120
    while "verifying" not in seen and time.time() < deadline:
        seen += proc.stderr.readline()
    assert "verifying" in seen
    assert any(p.name.startswith(".finsent-convert-") for p in out.iterdir())  # work in progress
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130
    assert "Interrupted." in rest and "Traceback" not in rest
    assert list(out.iterdir()) == []


def test_several_outputs_appear_together_or_not_at_all(tmp_path, tied_f16_checkpoint, monkeypatch):
    """The second output fails its check after the first passed: neither appears."""
    from finsent_local.convert import pipeline, verify
    from finsent_local.convert.errors import ConversionError

    checked = []

    def agreement_fails_the_second_time(reference, written):
        checked.append(written)
        return 1.0 if len(checked) == 1 else 0.0  # an injected verification failure

    monkeypatch.setattr(verify, "label_agreement", agreement_fails_the_second_time)
    out = tmp_path / "out"
    out.mkdir()
    request = pipeline.ConvertRequest(source=str(tied_f16_checkpoint), outtypes=["q8_0", "q4_0"],
                                      outfile=str(out / "m-{outtype}.gguf"), verify=True, quiet=True)
    with pytest.raises(ConversionError, match="q4_0"):
        pipeline.convert(request)
    assert len(checked) == 2 and list(out.iterdir()) == []


def test_failure_while_moving_outputs_takes_back_the_first(tmp_path, tied_f16_checkpoint, monkeypatch):
    import os

    from finsent_local.convert import pipeline

    real_replace = os.replace
    moves = []

    def second_move_fails(src, dst):
        if str(dst).endswith(".gguf"):
            moves.append(dst)
            if len(moves) == 2:
                raise OSError(28, "No space left on device (injected)")
        return real_replace(src, dst)

    monkeypatch.setattr(pipeline.os, "replace", second_move_fails)
    out = tmp_path / "out"
    out.mkdir()
    request = pipeline.ConvertRequest(source=str(tied_f16_checkpoint), outtypes=["f16", "q8_0"],
                                      outfile=str(out / "m-{outtype}.gguf"), verify=False, quiet=True)
    with pytest.raises(OSError):
        pipeline.convert(request)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("kill_after_s", [0.5, 2.0, 4.0])
def test_sigkill_leaves_no_output_and_the_next_run_cleans_up(tmp_path, tied_f16_checkpoint, kill_after_s):
    """SIGKILL cannot be caught: whatever the moment, no file appears under an output name, and the
    work folder it leaves is removed by the next conversion into that folder."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    out.mkdir()
    args = [sys.executable, "-m", "finsent_local.cli", "convert", str(tied_f16_checkpoint), "--outtype", "f16,q8_0",
            "--outfile", str(out / "m-{outtype}.gguf"), "--verify", "-q"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    time.sleep(kill_after_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    finals = [p.name for p in out.iterdir() if not p.name.startswith(".finsent-convert-")]
    if finals:  # the run had finished before the kill: then both outputs are complete
        assert sorted(finals) == ["m-F16.gguf", "m-F16.gguf.manifest.json", "m-Q8_0.gguf", "m-Q8_0.gguf.manifest.json"]
        return
    code, _, stderr = run_finsent("convert", str(tied_f16_checkpoint), "--outtype", "f16",
                                  "--outfile", str(out / "again.gguf"), "--no-verify", "-q")
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["again.gguf", "again.gguf.manifest.json"]


def test_each_verification_is_named_once_and_manifests_are_readable_like_models(tmp_path, tied_f16_checkpoint):
    """`--outtype f16,q8_0` checks two files against transformers (the F16 output and Q8_0's padded
    quantizer input): each line names its file, none repeats; the manifest gets the model's permissions."""
    import os
    import re
    import stat

    out = tmp_path / "out"
    out.mkdir()
    code, _, stderr = run_finsent("convert", str(tied_f16_checkpoint), "--outtype", "f16,q8_0", "--outfile",
                                  str(out / "m-{outtype}.gguf"), "--verify")
    assert code == 0, stderr
    checks = re.findall(r"^verifying (.+): logits against transformers$", stderr, flags=re.MULTILINE)
    assert checks[0] == "F16" and re.fullmatch(r"Q8_0's quantizer input \(F16, MLP padded to \d+\)", checks[1]), checks
    assert len(checks) == len(set(checks)) == 2
    umask = os.umask(0)
    os.umask(umask)
    for model in ("m-F16.gguf", "m-Q8_0.gguf"):
        model_mode = stat.S_IMODE((out / model).stat().st_mode)
        manifest_mode = stat.S_IMODE((out / f"{model}.manifest.json").stat().st_mode)
        assert manifest_mode == 0o644 & ~umask and manifest_mode & 0o044 == model_mode & 0o044, (model, oct(manifest_mode))
