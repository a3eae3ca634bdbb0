"""The conversion as a whole: source -> float GGUF -> (llama.cpp quantizer) -> verify -> final names.

Everything is written in a private work folder beside the outputs and moved to its final name only
after every step (verification included) succeeded, so a failed or interrupted run never leaves a file
under a final name.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from finsent_local.files import write_text_atomically
from finsent_local.output_place import FileOutput, OutputRefused, check_outputs, checkpoint_files, is_gguf
from finsent_local.engine.llama_runtime import LlamaRuntimeError, quantize_model

from . import verify
from .checkpoint import Checkpoint
from .errors import ConversionError
from .gguf_output import Provenance, check_tensors, write_float_gguf
from .llama_layout import plan_tensors
from .manifest import build_manifest, manifest_path
from .outtypes import OUT_TYPES, OutType, round_up
from .progress import Progress
from .source import license_of, resolve_source
from .vocab import read_vocab

# The float type a quantizer input is written in, by the checkpoint's own dtype: no precision is lost.
_INTERMEDIATE_FOR_SOURCE = {"F32": "f32", "F16": "f16", "BF16": "bf16"}
MIN_LABEL_AGREEMENT = 0.9


@dataclass
class ConvertRequest:
    source: str
    outtypes: list[str]
    outfile: str | None = None  # may contain {outtype}; required to when several types are asked
    revision: str | None = None
    pad_ffn: bool | None = None  # None: pad for block-quantized outputs
    verify: bool | None = None  # None: when torch and transformers are importable
    force: bool = False
    quiet: bool = False
    threads: int = 0


@dataclass
class ConvertedFile:
    outtype: str
    path: Path
    size_bytes: int
    sha256: str
    ffn_width: int
    verification: dict = field(default_factory=dict)


def check_outtypes(names: list[str]) -> None:
    """Known output types, each once."""
    for name in names:
        if name not in OUT_TYPES:
            raise ConversionError(f"unknown output type {name!r}; choose from {', '.join(OUT_TYPES)}")
    if len(set(names)) != len(names):
        raise ConversionError("an output type is given twice")


def output_paths(request: ConvertRequest, model_name: str) -> dict[str, Path]:
    check_outtypes(request.outtypes)
    pattern = request.outfile or f"{model_name}-{{outtype}}.gguf"
    if len(request.outtypes) > 1 and "{outtype}" not in pattern:
        raise ConversionError("with several --outtype values, --outfile must contain {outtype}")
    paths = {t: Path(pattern.replace("{outtype}", t.upper())).expanduser().resolve() for t in request.outtypes}
    # A GGUF file may go into the checkpoint's own folder (llama.cpp's habit), never over one of its files;
    # --force replaces only a GGUF file (a mistyped --outfile model.safetensors is refused, not overwritten).
    try:
        check_outputs([FileOutput(path, "--outfile", "a GGUF file", is_gguf) for path in paths.values()],
                      checkpoint_files(Path(request.source)), request.force)
    except OutputRefused as e:
        raise ConversionError(str(e)) from None
    for path in paths.values():  # the sha256 manifest beside each file: replaced only when this tool wrote it
        beside = manifest_path(path)
        if (beside.exists() or beside.is_symlink()) and not _is_our_manifest(beside):
            raise ConversionError(f"{beside} exists and was not written by `finsent convert`; move it, or choose "
                                  "another --outfile")
    return paths


def _is_our_manifest(path: Path) -> bool:
    """A `<output>.manifest.json` the converter wrote (a tool key naming this project)."""
    import json

    try:
        return str(json.loads(path.read_text(encoding="utf-8")).get("tool", "")).startswith("finsent-local")
    except (OSError, ValueError, AttributeError):
        return False


def ffn_width_for(outtype: OutType, intermediate: int, pad_ffn: bool | None) -> int:
    if pad_ffn is False or outtype.block_size == 1:
        return intermediate
    return round_up(intermediate, outtype.block_size)


WORK_PREFIX = ".finsent-convert-"


def remove_stale_work_folders(folder: Path) -> None:
    """Work folders left by a run that was killed (SIGKILL, power loss: nothing could clean up) are
    named after their process id; remove those whose process is gone."""
    for path in folder.glob(f"{WORK_PREFIX}*"):
        pid = path.name[len(WORK_PREFIX):].split("-", 1)[0]
        if path.is_dir() and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process there: keep the folder
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else; or a platform without signal 0
        return True
    return True


class _Run:
    def __init__(self, request: ConvertRequest, progress: Progress):
        self.request = request
        self.progress = progress
        self._logit_reports: dict[Path, verify.LogitReport] = {}  # one reference comparison per float file

    def execute(self) -> list[ConvertedFile]:
        request = self.request
        source_name = Path(request.source.rstrip("/")).name
        # Check outputs before downloading gigabytes.
        paths = output_paths(request, source_name)
        source = resolve_source(request.source, request.revision, request.quiet)
        self.source = source
        self.checkpoint = Checkpoint(source.path)
        config = self.checkpoint.config
        self.vocab = read_vocab(source.path, config)
        check_tensors(self.checkpoint, plan_tensors(config, self.checkpoint.has("lm_head.weight"), config.intermediate_size))
        self.provenance = Provenance(
            name=source_name, source_repo=source.repo_id, revision=source.revision, license=license_of(source)
        )
        do_verify = request.verify if request.verify is not None else verify.reference_available()
        if do_verify and not verify.reference_available():
            raise ConversionError("--verify needs torch and transformers: pip install 'finsent-local[convert]'")

        out_dir = next(iter(paths.values())).parent
        remove_stale_work_folders(out_dir)
        work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=out_dir))
        self.work = work
        self._floats: dict[tuple[int, str | None], Path] = {}  # (ffn width, output name) -> float GGUF
        try:
            results = []
            for name, final in paths.items():
                outtype = OUT_TYPES[name]
                width = ffn_width_for(outtype, config.intermediate_size, request.pad_ffn)
                written = self._produce(outtype, width)
                details = self._verify(outtype, width, written) if do_verify else {"skipped": True}
                results.append((name, final, written, width, details))
            # Every output is made and verified; hash them all, then move them into place together, so
            # that all outputs appear or none does.
            manifests = [self._manifest(name, final, written, width, details)
                         for name, final, written, width, details in results]
            return self._move_into_place(results, manifests)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _float_gguf(self, width: int, outtype_name: str | None = None) -> Path:
        """A float GGUF with this MLP width: a requested float output (outtype_name given), or the
        quantizer's input in the checkpoint's own precision, written once per width and reused."""
        key = (width, outtype_name)
        if key in self._floats:
            return self._floats[key]
        name = outtype_name or _INTERMEDIATE_FOR_SOURCE[self.checkpoint.source_dtype()]
        outtype = OUT_TYPES[name]
        config = self.checkpoint.config
        plans = plan_tensors(config, self.checkpoint.has("lm_head.weight"), width)
        path = self.work / f"{name}-ffn{width}.gguf"
        total = sum(int(np.prod(p.shape)) for p in plans)
        with self.progress.bar(total, f"converting to {name.upper()}", unit="param") as bar:
            sizes = {p.gguf_name: int(np.prod(p.shape)) for p in plans}
            write_float_gguf(path, self.checkpoint, self.vocab, plans, outtype, width, self.provenance,
                             on_tensor=lambda tensor: bar.update(sizes[tensor]))
        self._floats[key] = path
        return path

    def _produce(self, outtype: OutType, width: int) -> Path:
        if not outtype.needs_quantizer:
            return self._float_gguf(width, outtype.name)
        source = self._float_gguf(width)
        destination = self.work / f"{outtype.name}-ffn{width}.gguf"
        with self.progress.bar(0, f"quantizing to {outtype.name.upper()}", unit="tensor") as bar:
            def on_tensor(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            try:
                quantize_model(source, destination, int(outtype.file_type), self.request.threads, on_tensor)
            except LlamaRuntimeError as e:
                raise ConversionError(str(e)) from None
        return destination

    def _verify(self, outtype: OutType, width: int, written: Path) -> dict:
        if outtype.needs_quantizer:
            reference = self._float_gguf(width)
            source_type = _INTERMEDIATE_FOR_SOURCE[self.checkpoint.source_dtype()]
            padded = f", MLP padded to {width}" if width != self.checkpoint.config.intermediate_size else ""
            # Another file than a float output of the same type (when padded): named so the two checks
            # do not read as one check run twice.
            details = self._logit_check(reference, source_type,
                                        f"{outtype.name.upper()}'s quantizer input ({source_type.upper()}{padded})")
            self.progress.info(f"verifying {outtype.name.upper()}: labels against the unquantized file")
            agreement = verify.label_agreement(reference, written)
            details["label_agreement"] = round(agreement, 4)
            self.progress.info(f"  label agreement with unquantized: {agreement:.1%}")
            if agreement < MIN_LABEL_AGREEMENT:
                raise ConversionError(
                    f"verification failed for {outtype.name}: labels agree with the unquantized model on only "
                    f"{agreement:.0%} of the test sentences (need {MIN_LABEL_AGREEMENT:.0%})"
                )
            return details
        return self._logit_check(written, outtype.name)

    def _logit_check(self, gguf_path: Path, outtype_name: str, what: str | None = None) -> dict:
        cache = self._logit_reports
        if gguf_path not in cache:
            self.progress.info(f"verifying {what or outtype_name.upper()}: logits against transformers")
            report = verify.compare_logits(self.source.path, gguf_path)
            self.progress.info(
                f"  max |logit diff| {report.max_abs_diff:.3g} (logits up to {report.logit_scale:.3g}), "
                f"top-1 agreement {report.top1_agreement:.1%} over {report.positions} positions"
            )
            verify.check_logits(report, outtype_name)
            cache[gguf_path] = report
        report = cache[gguf_path]
        return {
            "reference": "transformers float32",
            "compared_file_type": outtype_name,
            "max_abs_logit_diff": round(report.max_abs_diff, 6),
            "top1_agreement": round(report.top1_agreement, 4),
        }

    def _manifest(self, name: str, final: Path, written: Path, width: int, details: dict) -> dict:
        return build_manifest(written, final.name, {
            "outtype": name,
            "source": self.source.repo_id or str(self.source.path),
            "revision": self.source.revision,
            "ffn_width": width,
            "ffn_width_original": self.checkpoint.config.intermediate_size,
            "verification": details,
        })

    def _move_into_place(self, results: list, manifests: list[dict]) -> list[ConvertedFile]:
        placed: list[Path] = []
        try:
            for (_, final, written, _, _), manifest in zip(results, manifests):
                os.replace(written, final)
                placed.append(final)
                # Readable like the model beside it (0644 under the usual umask): it holds no secret.
                write_text_atomically(manifest_path(final), json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                                      mode=0o644)
                placed.append(manifest_path(final))
        except BaseException:
            for path in placed:  # an error half-way: take back what was already placed
                path.unlink(missing_ok=True)
            raise
        converted = []
        for (name, final, _, width, details), manifest in zip(results, manifests):
            self.progress.info(f"wrote {final} ({manifest['size_bytes'] / 1e6:.1f} MB)")
            converted.append(ConvertedFile(name, final, manifest["size_bytes"], manifest["sha256"], width, details))
        return converted


def convert(request: ConvertRequest, progress: Progress | None = None) -> list[ConvertedFile]:
    return _Run(request, progress or Progress(request.quiet)).execute()
