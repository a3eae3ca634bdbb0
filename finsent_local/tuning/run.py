"""`finsent tune` as one job: labelled file -> LoRA training -> merged checkpoint -> GGUF (the project's
converter, verified) -> `finsent eval`'s figures for the base and the tuned model on the validation rows
-> the output folder, or nothing.

Files: everything is made in `<output>.partial/` beside the output folder: the base converted for the
comparison, the training checkpoint (what --resume continues), the merged checkpoint, and the outputs
being made. The output folder appears, whole, by one rename at the very end; the partial folder is then
removed. An interrupted or failed run leaves the output untouched and the partial folder (with its
checkpoint) for --resume.
"""

from __future__ import annotations

import gc
import hashlib
import html
import json
import os
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..files import sha256_of, write_json_atomically, write_text_atomically
from ..output_place import (FolderOutput, OutputRefused, check_folder_output, check_outputs, checkpoint_files,
                            made_by_manifest)
from ..model_files import DEFAULT_REPO
from ..quality.evaluation import EvalRequest, Evaluation, evaluate_rows, explain_confident_errors, read_labelled_rows
from ..quality.gold_labels import NEUTRAL_BAND
from .forgetting import MIN_AGREEMENT
from .examples import VALIDATION_SHARE, LabelledRows, labelled_rows, stratified_split, training_examples
from .reference import Reference, ReferenceError
from .training import TrainingSettings

CHECKPOINT_FOLDER = "checkpoint"
MANIFEST_FILE = "tune-manifest.json"
REPORT_FILE = "report.html"
ADAPTER_FOLDER = "adapter"
REFERENCE_TARGETS_FILE = "reference-targets.pt"  # in the checkpoint folder: the base's label distributions


class TuneError(ValueError):
    """The tuning cannot run as asked: one line for the user."""


class TunedWorse(Exception):
    """The tuned model labels the validation rows worse than the base, or changes too many of the reference
    texts' labels: nothing was written."""

    def __init__(self, message: str, evaluation: Evaluation, forgetting_lines: list[str] | None = None):
        super().__init__(message)
        self.evaluation = evaluation
        self.forgetting_lines = forgetting_lines or []


@dataclass(frozen=True)
class TuneRequest:
    input_path: Path
    text_column: str
    label_column: str
    output: Path
    scheme: str = "7"
    base: str = DEFAULT_REPO  # a hub repo id or a local checkpoint folder
    revision: str | None = None
    outtypes: tuple[str, ...] = ("q4_k_m",)
    validation_path: Path | None = None  # else a stratified share of the input
    validation_share: float = VALIDATION_SHARE
    sheet: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    label_map: dict | None = None
    neutral_band: float = NEUTRAL_BAND
    prompt: str = "card"
    settings: TrainingSettings = field(default_factory=TrainingSettings)
    device: str = "auto"
    adapter_only: bool = False  # a GGUF LoRA adapter for the base file instead of a merged model
    resume: bool = False
    keep_worse: bool = False
    force: bool = False
    threads: int = 0
    quiet: bool = False
    gold_convention: str | None = None  # --gold-convention: how integer labels are numbered
    reference_path: Path | None = None  # --reference: texts whose labels tuning keeps and measures
    reference_column: str | None = None  # default: --text-column
    reference_label_column: str | None = None
    min_agreement: float = MIN_AGREEMENT


@dataclass
class TuneResult:
    output: Path
    model_files: list[Path]
    evaluation: Evaluation
    manifest: dict
    worse: bool  # than the base, on the validation rows
    forgetting_lines: list[str] = field(default_factory=list)
    forgets: bool = False  # keeps fewer held-out reference labels than --min-agreement


@dataclass
class Progress:
    """What the command shows: lines, the training bar (one StepReport at a time), eval's bars."""
    say: Callable[[str], None] = lambda line: None
    on_training_step: Callable = lambda report: None
    on_eval_model: Callable[[str, int], Callable[[int], None]] = lambda name, total: (lambda n: None)
    on_training: Callable[[bool], None] = lambda active: None  # training starts (True) or ends (False)


def partial_folder(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def has_checkpoint(output: Path) -> bool:
    """Whether an earlier run of this --output kept a training checkpoint (what --resume continues)."""
    from .training import CHECKPOINT_FILE

    return (partial_folder(output) / CHECKPOINT_FOLDER / CHECKPOINT_FILE).is_file()


def _check_output(request: TuneRequest) -> Path:
    from ..convert.errors import ConversionError
    from ..convert.pipeline import check_outtypes

    try:
        check_outtypes(list(request.outtypes))
    except ConversionError as e:
        raise TuneError(str(e)) from None
    if not request.outtypes:
        raise TuneError("give an --outtype")
    if request.adapter_only and len(request.outtypes) > 1:
        raise TuneError("--adapter-only makes one adapter, for the base file of one --outtype: give one")
    output, partial = request.output, partial_folder(request.output)
    _check_output_place(request)
    try:  # the work folder beside it is emptied when not resuming: only when tune made it
        check_folder_output(FolderOutput(partial, "--output", "finsent tune", _partial_made_here),
                            _inputs(request), force=True)
    except OutputRefused as e:
        raise TuneError(str(e)) from None
    kept = has_checkpoint(output)
    if request.resume and not kept:
        raise TuneError(f"nothing to resume: no checkpoint in {partial}")
    if not request.resume and kept:
        raise TuneError(f"an interrupted run's checkpoint is in {partial}: add --resume to continue it, "
                        "or delete that folder to start over")
    return partial


def _inputs(request: TuneRequest) -> list[Path | None]:
    """What tune reads: the labelled files, and a local base's own files (read by name, as convert reads a
    checkpoint: an output inside the base's folder is fine, over it or around it is not)."""
    return [request.input_path, request.validation_path, request.reference_path, *checkpoint_files(Path(request.base))]


def _check_output_place(request: TuneRequest) -> None:
    """output_place's rules: never over an input or a folder holding one; --force only over a tuned model's
    folder holding nothing else. Checked before training, and again before the finished model replaces it."""
    try:
        check_outputs([FolderOutput(request.output, "--output", "finsent tune",
                                    made_by_manifest(MANIFEST_FILE, _made_files))], _inputs(request), request.force)
    except OutputRefused as e:
        raise TuneError(str(e)) from None


def _made_files(manifest: dict) -> list[str]:
    """What a finished tune wrote into its folder, by its manifest: the model files, the report, the adapter."""
    files = manifest.get("files")
    named = [entry.get("file") for entry in files if isinstance(entry, dict)] if isinstance(files, list) else []
    adapter_for = manifest.get("adapter_for")
    base_file = adapter_for.get("base_file") if isinstance(adapter_for, dict) else None
    return [*named, *([base_file] if base_file else []), REPORT_FILE, ADAPTER_FOLDER]


# Put in the work folder when it is made: a folder of that name without it (or a checkpoint) is not ours.
PARTIAL_MARK = ".finsent-tune-partial"


def _partial_made_here(folder: Path) -> set[str] | None:
    """The work folder is tune's when it carries its mark (or an older run's checkpoint): all of it is."""
    if (folder / PARTIAL_MARK).is_file() or (folder / CHECKPOINT_FOLDER).is_dir():
        return {entry.name for entry in folder.iterdir()}
    return None


def _read_rows(request: TuneRequest, path: Path) -> tuple[LabelledRows, dict, list[str]]:
    texts, golds, numbers, skipped, notes = read_labelled_rows(EvalRequest(
        path, request.text_column, request.label_column, [], scheme=request.scheme, sheet=request.sheet,
        encoding=request.encoding, delimiter=request.delimiter, label_map=request.label_map,
        neutral_band=request.neutral_band, gold_convention=request.gold_convention))
    if not texts:
        raise TuneError(f"{path}: no row has both a text and a label")
    return (labelled_rows(texts, golds, numbers, request.scheme, request.label_map, request.neutral_band,
                          request.gold_convention), skipped, notes)


def _subset(rows: LabelledRows, indices: list[int]) -> LabelledRows:
    return LabelledRows([rows.texts[i] for i in indices], [rows.labels[i] for i in indices],
                        [rows.row_numbers[i] for i in indices], rows.convention)


def _weights_sha256(folder: Path) -> tuple[str, dict[str, str]]:
    """One sha256 over the checkpoint's weight files (name and sha256 of each, sorted): the base's identity."""
    files = {p.name: sha256_of(p) for p in sorted(folder.glob("*.safetensors"))}
    combined = hashlib.sha256("".join(f"{name} {sha}\n" for name, sha in files.items()).encode()).hexdigest()
    return combined, files


def _digest(values: list) -> str:
    return hashlib.sha256(json.dumps(values, ensure_ascii=False).encode()).hexdigest()


@dataclass
class _Prepared:
    """Everything read and checked before any conversion or training."""
    source: object  # convert.source.ResolvedSource
    device: str
    train_examples: list
    validation_examples: list
    validation_rows: LabelledRows
    data: dict  # the manifest's "data"
    base: dict  # the manifest's "base"
    fingerprint: dict  # what a checkpoint must match to be resumed
    reference: Reference | None = None  # None: forgetting neither held back nor measured (why_no_reference)
    keep_prompts: list | None = None  # the trained-on reference texts as prompts (token ids)
    answers: list | None = None  # the scheme's labels as answer tokens
    why_no_reference: str | None = None


def tune(request: TuneRequest, progress: Progress = Progress(), stop_requested: Callable[[], bool] = lambda: False
         ) -> TuneResult:
    """The whole job (see the module docstring). Raises TuneError, TunedWorse, TrainingStopped."""
    from .training import TrainingError, TrainingStopped, read_checkpoint, train

    partial = _check_output(request)
    prepared = _prepare(request, progress)
    checkpoint_dir = partial / CHECKPOINT_FOLDER
    if request.resume:  # before converting anything: a checkpoint of other data or settings is refused
        try:
            saved = read_checkpoint(checkpoint_dir)
        except TrainingError as e:
            raise TuneError(str(e)) from None
        if saved is None or saved["fingerprint"] != prepared.fingerprint:
            raise TuneError(f"the checkpoint in {partial} was made with other data, base or settings; run with the "
                            "same ones, or delete that folder to start over")
    else:  # what a run that failed before its first checkpoint left (a base of another --base, say): ours only
        if partial.is_dir() and _partial_made_here(partial) is not None:
            shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(exist_ok=True)
    (partial / PARTIAL_MARK).touch()
    base_gguf = _base_gguf(request, prepared.source.path, partial, progress)
    progress.say(f"Training LoRA adapters on {len(prepared.train_examples):,} rows "
                 f"({len(prepared.validation_examples):,} for validation) on the {prepared.device.upper()}")
    progress.on_training(True)
    try:
        trained = train(prepared.source.path, prepared.train_examples, prepared.validation_examples, request.settings,
                        checkpoint_dir, prepared.fingerprint, prepared.device, progress.on_training_step,
                        stop_requested, _keep_set(prepared, checkpoint_dir))
    except TrainingError as e:
        raise TuneError(str(e)) from None
    finally:
        progress.on_training(False)
    if stop_requested():  # asked during the last step or validation: stop here too, the checkpoint is final
        raise TrainingStopped(trained.steps, trained.total_steps)
    try:
        return _finish(request, prepared, trained, base_gguf, partial, progress)
    except (TuneError, OSError, ValueError) as e:  # TunedWorse is none of these: it passes as it is
        reason = str(e) if isinstance(e, TuneError) else f"{type(e).__name__}: {e}"
        raise TuneError(f"{reason}; the trained adapter is kept in {checkpoint_dir}: run the same command with "
                        "--resume to try again without training") from None


def _prepare(request: TuneRequest, progress: Progress) -> _Prepared:
    """The labelled rows read, split and turned into token sequences; the base resolved (downloaded from
    the hub when it is a repo id) and identified."""
    from ..convert.errors import ConversionError, HubUnreachable
    from ..convert.source import resolve_source
    from .examples import TuneDataError
    from .training import TrainingError, resolve_device

    rows, skipped, notes = _read_rows(request, request.input_path)
    for note in notes:
        progress.say(note)
    if request.validation_path:
        train_rows = rows
        try:
            validation_rows, _, _ = _read_rows(request, request.validation_path)
        except TuneDataError as e:
            raise TuneError(f"--validation {request.validation_path}: {e}") from None
        split = {"validation_file": str(request.validation_path.resolve()),
                 "validation_sha256": sha256_of(request.validation_path)}
    else:
        train_at, validation_at = stratified_split(rows.labels, request.validation_share, request.settings.seed)
        train_rows, validation_rows = _subset(rows, train_at), _subset(rows, validation_at)
        split = {"validation_share": request.validation_share, "split_seed": request.settings.seed}
    try:
        device = resolve_device(request.device)
        source = resolve_source(request.base, request.revision, request.quiet)
    except HubUnreachable as e:
        raise TuneError(str(HubUnreachable(e.repo_id, "give --base a local checkpoint folder instead", e.why))) from None
    except (TrainingError, ConversionError) as e:
        raise TuneError(str(e)) from None
    base_sha, base_files = _weights_sha256(source.path)
    if not base_files:
        raise TuneError(f"{source.path} holds no .safetensors weights: --base needs a Hugging Face checkpoint")
    tokenize = _tokenizer(source.path)
    # No end-of-text token after the answer: the engine reads the label's own tokens, and a stop token the
    # base may never have learnt there would pull the loss away from the labels.
    train_examples = training_examples(train_rows, request.scheme, tokenize, request.prompt)
    validation_examples = training_examples(validation_rows, request.scheme, tokenize, request.prompt)
    try:
        reference, keep_prompts, answers, why_not = _reference(request, source, tokenize)
    except ReferenceError as e:
        raise TuneError(str(e)) from None
    if reference is None:
        from .forgetting import not_measured_line

        progress.say(not_measured_line(why_not))
    data = {
        "input": str(request.input_path.resolve()), "sha256": sha256_of(request.input_path),
        "rows_read": len(rows.texts) + sum(skipped.values()), "rows_skipped": skipped,
        "train_rows": len(train_rows.texts), "validation_rows": len(validation_rows.texts),
        "train_labels": dict(sorted(Counter(train_rows.labels).items())),
        "validation_labels": dict(sorted(Counter(validation_rows.labels).items())),
        "gold_convention": rows.convention, **split,
        **({"reference": {**reference.source, "texts": len(reference.texts), "trained_on": len(reference.train),
                          "held_out": len(reference.held_out)}} if reference else {}),
    }
    base = {"source": source.repo_id or str(source.path), "revision": source.revision, "sha256": base_sha,
            "files": base_files}
    fingerprint = {"base_sha256": base_sha, "data_sha256": data["sha256"], "split": split,
                   "train": _digest([(e.input_ids, e.labels) for e in train_examples]),
                   "validation": _digest([(e.input_ids, e.labels) for e in validation_examples]),
                   "scheme": request.scheme, "prompt": request.prompt, "settings": request.settings.as_dict(),
                   "reference": _digest(keep_prompts) if keep_prompts else None}
    return _Prepared(source, device, train_examples, validation_examples, validation_rows, data, base, fingerprint,
                     reference, keep_prompts, answers, why_not)


def _reference(request: TuneRequest, source, tokenize) -> tuple[Reference | None, list | None, list | None, str | None]:
    """(reference, its trained-on texts as prompts, the labels' answer tokens, why there is none): the
    --reference file, or the default model's own training data when the base is the default model."""
    from .reference import (default_reference, label_answers, read_reference_file, reference_prompts,
                            split_reference)

    if request.reference_path is not None:
        column = request.reference_column or request.text_column
        texts, golds = read_reference_file(request.reference_path, column, request.reference_label_column,
                                           request.scheme)
        origin = {"file": str(request.reference_path.resolve()), "sha256": sha256_of(request.reference_path),
                  "column": column, "label_column": request.reference_label_column}
    elif source.repo_id == DEFAULT_REPO:
        try:
            texts, origin = default_reference(request.settings.seed, request.quiet)
        except ReferenceError as e:
            return None, None, None, str(e)
        golds = None
    else:
        return None, None, None, "no --reference was given, and the base is not the default model"
    train_at, held_out = split_reference(len(texts), request.settings.seed)
    prompts = reference_prompts(texts, request.scheme, tokenize, request.prompt)
    _, answers = label_answers(request.scheme, tokenize)
    return Reference(texts, golds, origin, train_at, held_out), [prompts[i] for i in train_at], answers, None


def _keep_set(prepared: _Prepared, checkpoint_dir: Path):
    from .training import KeepSet

    if not prepared.keep_prompts:
        return None
    return KeepSet(prepared.keep_prompts, prepared.answers, checkpoint_dir / REFERENCE_TARGETS_FILE)


def _tokenizer(base_dir: Path) -> Callable[[str, bool], list[int]]:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
    except (OSError, ValueError) as e:
        raise TuneError(f"cannot load the base's tokenizer from {base_dir}: {str(e).splitlines()[0]}") from None

    def tokenize(text: str, special: bool) -> list[int]:
        return tokenizer(text, add_special_tokens=special)["input_ids"]
    return tokenize


def _finish(request: TuneRequest, prepared: _Prepared, trained, base_gguf: Path, partial: Path,
            progress: Progress) -> TuneResult:
    """After training: the model (or adapter) file(s), the before/after figures, the manifest, the report,
    then the output folder, or TunedWorse."""
    from .training import merge_adapter, save_adapter

    staging = partial / "output"
    shutil.rmtree(staging, ignore_errors=True)  # what an earlier attempt left half-made
    staging.mkdir()
    save_adapter(trained.model, staging / ADAPTER_FOLDER)
    if request.adapter_only:
        model_files = [_write_adapter(request, trained.model, prepared.source, staging, progress)]
    else:
        merged = partial / "merged" / request.output.name  # the folder's name becomes the model's name in the GGUF
        shutil.rmtree(merged, ignore_errors=True)
        progress.say("Merging the adapter into the base weights")
        merge_adapter(trained.model, prepared.source.path, merged)
    trained.model = None  # 3.7 GB of float32 weights for the real model: free before conversion and eval
    gc.collect()
    if not request.adapter_only:
        model_files = _convert(request, merged, staging, progress)
        shutil.rmtree(partial / "merged", ignore_errors=True)

    evaluation = _before_and_after(request, base_gguf, model_files[0], prepared.validation_rows, progress)
    base_accuracy, tuned_accuracy = (m["accuracy"] for m in evaluation.metrics)
    worse = tuned_accuracy < base_accuracy
    forgetting = _measure_forgetting(request, prepared, base_gguf, model_files[0], progress)
    forgets = forgetting is not None and forgetting["agreement"] < request.min_agreement
    from .forgetting import not_measured_line, summary_lines

    forgetting_lines = (summary_lines(forgetting, request.min_agreement) if forgetting is not None
                        else [not_measured_line(prepared.why_no_reference)])
    base_file = _keep_base_for_adapter(request, base_gguf, staging) if request.adapter_only else None
    manifest = _manifest(request, prepared.base, prepared.data, trained, evaluation, model_files, worse, base_file)
    manifest["forgetting"] = {"min_agreement": request.min_agreement, "keep_weight": request.settings.keep_weight,
                              **(forgetting if forgetting is not None
                                 else {"measured": False, "why": prepared.why_no_reference})}
    manifest["tuned_forgets"] = forgets
    write_text_atomically(staging / REPORT_FILE, _report_html(request, evaluation, forgetting, prepared), mode=0o644)
    write_json_atomically(staging / MANIFEST_FILE, manifest)
    if (worse or forgets) and not request.keep_worse:
        what = (f"is worse than the base on the {len(evaluation.texts):,} validation rows (accuracy {tuned_accuracy:.1%} "
                f"against {base_accuracy:.1%})" if worse else
                f"changes the base's label on {1 - forgetting['agreement']:.1%} of the {forgetting['texts']:,} held-out "
                f"reference texts (it keeps {forgetting['agreement']:.1%}, below --min-agreement "
                f"{request.min_agreement:.0%}; a higher --keep-weight holds more back)")
        raise TunedWorse(
            f"the tuned model {what}: nothing was written to {request.output}. Its report is "
            f"{staging / REPORT_FILE}; to keep it anyway, run the same command with --resume --keep-worse",
            evaluation, forgetting_lines)
    _check_output_place(request)  # hours may have passed: someone may have put files there since
    _place(staging, request.output)
    shutil.rmtree(partial, ignore_errors=True)
    final_files = [request.output / path.name for path in model_files]
    return TuneResult(request.output, final_files, evaluation, manifest, worse, forgetting_lines, forgets)


def _report_html(request: TuneRequest, evaluation: Evaluation, forgetting: dict | None, prepared: _Prepared) -> str:
    """eval's report of the validation rows, then what the model knew (the held-out reference texts)."""
    from ..quality.report import evaluation_sections, report_head
    from .forgetting import report_section

    name = request.input_path.name
    parts = report_head(f"FinSent Local tuning: {name}")
    parts.append(f"<h1>Tuned on {html.escape(name)}: before and after</h1>")
    parts += evaluation_sections(evaluation)
    parts.append(report_section(forgetting, request.min_agreement, prepared.why_no_reference))
    parts.append("<p class='note'>Made by <code>finsent tune</code> (FinSent Local).</p></body></html>")
    return "\n".join(parts) + "\n"


def _measure_forgetting(request: TuneRequest, prepared: _Prepared, base_gguf: Path, tuned: Path,
                        progress: Progress) -> dict | None:
    """The base's and the tuned model's labels on the held-out reference texts (the engine, as served)."""
    from ..engine.classifier import ClassifierEngine, EngineOptions
    from .forgetting import measure

    reference = prepared.reference
    if reference is None:
        return None
    texts = [reference.texts[i] for i in reference.held_out]
    golds = [reference.golds[i] for i in reference.held_out] if reference.golds else None
    progress.say(f"Measuring what the model knew: {len(texts):,} reference texts held out, base and tuned")
    labels = []
    for path, lora in ((base_gguf, None), (base_gguf, tuned) if request.adapter_only else (tuned, None)):
        engine = ClassifierEngine(path, EngineOptions(prompt_preset=request.prompt, n_threads=request.threads,
                                                      lora_path=lora))
        try:
            results = [r for start in range(0, len(texts), 64)
                       for r in engine.classify_batch(texts[start:start + 64], request.scheme)]
        finally:
            engine.close()
        failed = next((r for r in results if not hasattr(r, "label")), None)
        if failed is not None:
            raise TuneError(f"a reference text could not be labelled: {getattr(failed, 'message', failed)}")
        labels.append([r.label for r in results])
    return measure(texts, labels[0], labels[1], golds)


def _base_gguf(request: TuneRequest, base_dir: Path, partial: Path, progress: Progress) -> Path:
    """The base converted to the first output type, for the before/after comparison (kept for --resume)."""
    from ..convert.errors import ConversionError
    from ..convert.pipeline import ConvertRequest, convert

    outtype = request.outtypes[0]
    path = partial / f"base-{outtype.upper()}.gguf"
    if path.exists():  # the converter gives a file its final name only once it is whole
        return path
    progress.say(f"Converting the base to {outtype.upper()} for the before/after comparison")
    try:
        convert(ConvertRequest(source=str(base_dir), outtypes=[outtype], outfile=str(path), verify=False,
                               quiet=request.quiet, threads=request.threads), _converter_progress(request))
    except ConversionError as e:
        raise TuneError(f"cannot convert the base: {e}") from None
    return path


def _converter_progress(request: TuneRequest):
    """The converter's status lines; its bars only on a terminal, as the command's own bars."""
    from ..convert.progress import Progress as ConverterProgress

    return ConverterProgress(request.quiet, bars=sys.stderr.isatty())


def _convert(request: TuneRequest, merged: Path, staging: Path, progress: Progress) -> list[Path]:
    from ..convert.errors import ConversionError
    from ..convert.pipeline import ConvertRequest, convert

    progress.say(f"Converting the tuned model to {', '.join(t.upper() for t in request.outtypes)} (with verification)")
    try:
        converted = convert(ConvertRequest(source=str(merged), outtypes=list(request.outtypes),
                                           outfile=str(staging / f"{request.output.name}-{{outtype}}.gguf"),
                                           verify=True, quiet=request.quiet, threads=request.threads),
                            _converter_progress(request))
    except ConversionError as e:
        raise TuneError(f"the tuned model failed conversion: {e}") from None
    return [item.path for item in converted]


def _write_adapter(request: TuneRequest, model, source, staging: Path, progress: Progress) -> Path:
    """The adapter as a GGUF adapter for the base converted to the (first) --outtype: its MLP width."""
    from ..convert.checkpoint import Checkpoint
    from ..convert.outtypes import OUT_TYPES
    from ..convert.pipeline import ffn_width_for
    from .adapter_gguf import write_adapter_gguf

    width = ffn_width_for(OUT_TYPES[request.outtypes[0]], Checkpoint(source.path).config.intermediate_size, None)
    path = staging / f"{request.output.name}-lora.gguf"
    progress.say(f"Writing the LoRA adapter for the base's {request.outtypes[0].upper()} file")
    write_adapter_gguf(model, source.path, width, request.settings.alpha, source.repo_id or source.path.name, path)
    return path


def _before_and_after(request: TuneRequest, base_gguf: Path, tuned: Path, rows: LabelledRows,
                      progress: Progress) -> Evaluation:
    """`finsent eval` on the validation rows: the base, then the tuned model (the engine, the same prompt).
    With --adapter-only the tuned model is the base file with the adapter applied, as `serve --lora` runs it."""
    from ..engine.classifier import EngineOptions
    from ..engine.service import open_service
    from ..limits import Limits

    eval_request = EvalRequest(request.validation_path or request.input_path, request.text_column,
                               request.label_column, [base_gguf, tuned], [request.prompt], request.scheme,
                               threads=request.threads)

    def open_model(path: Path, prompt: str):
        lora = path if request.adapter_only and path == tuned else None
        return open_service(base_gguf if lora else path,
                            EngineOptions(prompt_preset=prompt, n_threads=request.threads, lora_path=lora), None,
                            Limits(max_wait_s=None))

    progress.say("Measuring the base and the tuned model on the validation rows")
    evaluation = evaluate_rows(eval_request, rows.texts, rows.labels, rows.row_numbers, {}, [], open_model,
                               progress.on_eval_model)
    # The report's most confident errors, with the words that moved each model (as `finsent eval --report`):
    # what a reviewer signing off the tuned model reads. Only the listed errors (at most 25 per model).
    progress.say("Explaining each model's most confident errors")
    explain_confident_errors(evaluation, open_model)
    return evaluation


def _keep_base_for_adapter(request: TuneRequest, base_gguf: Path, staging: Path) -> Path | None:
    """An adapter is served on the base file it was made for: that file, converted for the comparison, goes
    into the output folder (not deleted with the work folder, to be converted again by the user), unless it
    is the very file `finsent serve` already uses by default (same content)."""
    from ..model_files import default_model_path

    default = default_model_path()
    if default.is_file() and default.stat().st_size == base_gguf.stat().st_size \
            and sha256_of(default) == sha256_of(base_gguf):
        return None
    kept = staging / base_gguf.name
    os.replace(base_gguf, kept)
    return kept


def _manifest(request: TuneRequest, base: dict, data: dict, trained, evaluation: Evaluation,
              model_files: list[Path], worse: bool, base_file: Path | None = None) -> dict:
    from ..quality.report import metrics_json

    # eval's figures per model; the file paths inside the partial folder would be stale: names only
    figures = metrics_json(evaluation)
    for model in figures["models"]:
        model["model"] = Path(model["model"]).name
    return {
        "tool": f"finsent-local {__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "scheme": request.scheme,
        "prompt": request.prompt,
        "base": base,
        "data": data,
        "settings": {**request.settings.as_dict(), "device": trained.device},
        "training": {"steps": trained.steps, "planned_steps": trained.total_steps, "planned_epochs": trained.epochs,
                     "best_step": trained.best_step,
                     "stopped_by": trained.stop_reason, "seconds": round(trained.seconds, 1),
                     "validations": trained.history},
        "metrics": {"base": figures["models"][0], "tuned": figures["models"][1]},
        "tuned_is_worse": worse,
        "kind": "lora adapter" if request.adapter_only else "merged model",
        **({"adapter_for": {"outtype": request.outtypes[0], "base": base["source"],
                            "base_file": base_file.name if base_file else None,
                            "base_file_sha256": sha256_of(base_file) if base_file else None}}
           if request.adapter_only else {}),
        "files": [{"file": path.name, "sha256": sha256_of(path)} for path in model_files],
    }


def _place(staging: Path, output: Path) -> None:
    """The finished folder takes the output's name in one rename. An existing output (--force) is moved
    aside first and removed after; if the rename fails (a file of the old folder in use on Windows), the
    old folder is put back and the error says where the new one is."""
    old = None
    if output.exists():
        old = output.with_name(output.name + f".replaced-{os.getpid()}")
        os.replace(output, old)
    try:
        os.replace(staging, output)
    except OSError as e:
        if old is not None:
            os.replace(old, output)
        raise TuneError(f"cannot put the finished model in place at {output} ({e.strerror or e}); it is in "
                        f"{staging}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
