"""`finsent tune`: fine-tune the model on a labelled file (LoRA), and get a GGUF file for serve, classify,
Ray and Excel, with the base's and the tuned model's figures side by side."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from ..engine.labels import SCHEMES
from ..model_files import DEFAULT_OUTTYPE, DEFAULT_REPO
from ..quality.gold_labels import GOLD_CONVENTION_HELP, NAMED_CONVENTIONS
from ..tuning.examples import VALIDATION_SHARE
from ..tuning.forgetting import MIN_AGREEMENT
from ..tuning.training import ALL_PROJECTIONS, TrainingSettings

DEFAULTS = TrainingSettings()
from .common import (PROMPT_HELP, SCHEME_HELP, UserError, closing_when_done, delimiter_character, outtype_list,
                     progress_bar, require_engine)

MISSING_EXTRA = ("finsent tune needs torch, transformers, peft, scikit-learn and matplotlib, which are not all "
                 "installed: bash setup.sh --tune (the CPU build of torch where there is no NVIDIA GPU), or pip install "
                 "'finsent-local[tune]'")
INTERRUPTED_EXIT = 130  # as a shell reports a process stopped by Ctrl-C


class Interrupted(UserError):
    exit_code = INTERRUPTED_EXIT


def _check_extra() -> None:
    try:
        import matplotlib  # noqa: F401
        import peft  # noqa: F401
        import sklearn  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise UserError(MISSING_EXTRA) from None


class _StopOnCtrlC:
    """While training, the first Ctrl-C asks for a stop at the next step boundary (the checkpoint is then
    written); a second one, or one outside training, interrupts at once."""

    def __init__(self):
        self.stop = threading.Event()
        self.training = False

    def __enter__(self):
        self._previous = signal.signal(signal.SIGINT, self._on_signal)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._previous)

    def _on_signal(self, signum, frame):
        if not self.training or self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        click.echo("\nStopping after this step, keeping a checkpoint (Ctrl-C again to stop at once)", err=True)


class _TrainingBar:
    """Steps with the last loss, validation figures and tqdm's time left; a line per validation when the
    bar cannot be drawn (not a terminal), so logs show progress too. The figures are written compactly
    (`loss 0.031 · val 0.043 98.5%`) so that the bar, its counts and time and the validation accuracy
    all fit in 80 columns. Once closed, it draws nothing more (a closed tqdm bar that is refreshed prints
    itself again below what came after it)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None
        self.closed = False
        self.loss = "-"
        self.validation = ""

    def __call__(self, report) -> None:
        if self.closed:
            return
        if self.bar is None:
            self.bar = progress_bar(report.total, "step", self.quiet, initial=report.step, desc="training")
            # No rate (steps/s says little here; the time left says it): room for the figures.
            self.bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
        if report.loss is not None:
            self.loss = f"{report.loss:.3f}"
        if report.validation is not None:
            self.validation = f" · val {report.validation['loss']:.3f} {report.validation['accuracy']:.1%}"
            if self.bar.disable and not self.quiet:
                click.echo(f"step {report.step}/{report.total}: validation loss {report.validation['loss']:.4f}, "
                           f"greedy-answer accuracy {report.validation['accuracy']:.1%}", err=True)
        self.bar.n = report.step
        self.bar.set_postfix_str(f"loss {self.loss}{self.validation}", refresh=True)  # tqdm puts ", " before it

    def close(self) -> None:
        if self.bar is not None and not self.closed:
            self.bar.close()
        self.closed = self.bar is not None  # a bar never drawn may still start (training not begun yet)


@click.command("tune", epilog="Docs: docs/tune.md")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="The labelled file: .csv .tsv .jsonl .parquet .xlsx (read as finsent eval reads it).")
@click.option("--text-column", required=True, help="The column that holds the texts (.xlsx: header or letter).")
@click.option("--label-column", required=True, help="The column that holds the labels.")
@click.option("--output", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder to create for the tuned model: GGUF file(s), report.html, tune-manifest.json, adapter/.")
@click.option("--scheme", type=click.Choice(list(SCHEMES)), default=SCHEMES[0], show_default=True,
              help=SCHEME_HELP + " 7-label gold can tune 3 (collapsed by sign); 3-label gold tunes 3 only.")
@click.option("--base", default=DEFAULT_REPO, show_default=True,
              help="The Hugging Face checkpoint to tune: a hub repo id or a local folder (as for finsent convert).")
@click.option("--revision", help="Hub branch, tag or commit of --base.")
@click.option("--outtype", "outtypes", multiple=True, default=(DEFAULT_OUTTYPE,), show_default=True,
              help="GGUF type(s) of the tuned model, as for finsent convert; the first is the one compared.")
@click.option("--validation", "validation_path", type=click.Path(path_type=Path),
              help="A labelled file of its own for validation (same columns). Default: a stratified share of --input.")
@click.option("--validation-share", type=click.FloatRange(0.05, 0.5), default=VALIDATION_SHARE, show_default=True,
              help="Share of each label's rows held out for validation (without --validation).")
@click.option("--sheet", help=".xlsx: the sheet (default: the first).")
@click.option("--encoding", help=".csv/.tsv: the file's text encoding (default: UTF-8, else Windows-1252, said so).")
@click.option("--delimiter", help=".csv: the field separator (default: ',', or ';' when the header has only semicolons).")
@click.option("--gold-convention", type=click.Choice(list(NAMED_CONVENTIONS)), help=GOLD_CONVENTION_HELP)
@click.option("--label-map", help="Label values to labels: a JSON object or a file holding one (as for finsent eval; "
              "adds to the convention the other values follow).")
@click.option("--neutral-band", type=click.FloatRange(0.0, 1.0), default=0.1, show_default=True,
              help="Labels that are scores in [-1, 1]: below -band negative, below band neutral, else positive.")
@click.option("--prompt", type=click.Choice(["card", "train"]), default="card", show_default=True,
              help=PROMPT_HELP + " Serve the tuned model with the same one.")
@click.option("--epochs", type=click.IntRange(1, 100), default=DEFAULTS.epochs, show_default=True,
              help="Passes over the training rows.")
@click.option("--learning-rate", type=click.FloatRange(1e-7, 1.0), default=DEFAULTS.learning_rate, show_default=True)
@click.option("--rank", type=click.IntRange(1, 512), default=DEFAULTS.rank, show_default=True, help="LoRA rank.")
@click.option("--alpha", type=click.IntRange(1, 4096), default=DEFAULTS.alpha, show_default=True,
              help="LoRA alpha (scale = alpha/rank).")
@click.option("--dropout", type=click.FloatRange(0.0, 0.9), default=DEFAULTS.dropout, show_default=True,
              help="LoRA dropout.")
@click.option("--target-modules", default=",".join(ALL_PROJECTIONS), show_default=True,
              help="The projections that get adapters, comma-separated (a subset of the default).")
@click.option("--batch-tokens", type=click.IntRange(64, 1_000_000), default=DEFAULTS.batch_tokens, show_default=True,
              help="Padded tokens per training step (about 8 headlines); lower it if memory runs short.")
@click.option("--patience", type=click.IntRange(1, 100), default=DEFAULTS.patience, show_default=True,
              help="Stop after this many validations in a row without a lower validation loss.")
@click.option("--validations-per-epoch", type=click.IntRange(1, 100), default=DEFAULTS.validations_per_epoch,
              show_default=True)
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True,
              help="Seeds the split, the order and the adapters' start.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where torch trains: auto takes a CUDA GPU when torch sees one.")
@click.option("--adapter-only", is_flag=True,
              help="Write a GGUF LoRA adapter (tens of MB) instead of a whole model, for finsent serve --model BASE "
                   "--lora FILE: one base file serves several desks' adapters. It fits the base converted to --outtype.")
@click.option("--reference", "reference_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Texts that stand for what you label every day (any format finsent classify reads): tuning keeps "
                   "the base's labels on some and measures, on the others, how many change. Default with the default "
                   "base: a seeded sample of the model's own training data (FinGPT/fingpt-sentiment-train).")
@click.option("--reference-column", help="The column of --reference that holds the texts (default: --text-column).")
@click.option("--reference-label-column", help="A gold-label column of --reference: accuracy is measured too.")
@click.option("--keep-weight", type=click.FloatRange(0.0, 100.0), default=DEFAULTS.keep_weight, show_default=True,
              help="How strongly training keeps the base's labels on the reference texts (0: not at all).")
@click.option("--min-agreement", type=click.FloatRange(0.0, 1.0), default=MIN_AGREEMENT, show_default=True,
              help="The share of held-out reference texts that must keep the base's label, or nothing is written "
                   "(unless --keep-worse).")
@click.option("--min-steps", type=click.IntRange(0, 100_000), default=DEFAULTS.min_steps, show_default=True,
              help="More epochs than --epochs when a small file gives fewer optimizer steps than this.")
@click.option("--resume", is_flag=True, help="Continue the checkpoint an interrupted run kept in OUTPUT.partial/.")
@click.option("--keep-worse", is_flag=True, help="Write the tuned model even when it is worse than the base on validation, "
              "or changes more reference labels than --min-agreement allows.")
@click.option("--force", is_flag=True, help="Replace an existing --output folder (once the new model is ready).")
@click.option("--threads", type=int, default=0, help="CPU threads for llama.cpp (conversion, evaluation).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def tune_command(input_path, text_column, label_column, output, scheme, base, revision, outtypes, validation_path,
                 validation_share, sheet, encoding, delimiter, gold_convention, label_map, neutral_band, prompt, epochs,
                 learning_rate, rank, alpha, dropout, target_modules, batch_tokens, patience, validations_per_epoch, seed, device,
                 adapter_only, reference_path, reference_column, reference_label_column, keep_weight, min_agreement,
                 min_steps, resume, keep_worse, force, threads, quiet):
    """Teach the model your labels: LoRA fine-tuning on a labelled file, merged and converted to GGUF.

    \b
    finsent tune --input desk.csv --text-column headline --label-column label --output desk-model
    finsent serve --model desk-model/desk-model-Q4_K_M.gguf

    The base and the tuned model are measured on the validation rows (finsent eval's figures, in the
    terminal and in OUTPUT/report.html), and on held-out reference texts (--reference): how many of
    their labels the tuning changed. A tuned model worse than the base, or one that changes more than
    --min-agreement allows, is not written unless --keep-worse. Ctrl-C keeps a checkpoint: run the same
    command with --resume to continue.
    """
    require_engine()  # the converter's quantizer and the evaluation
    _check_extra()
    from ..quality.evaluation import EvalError
    from ..quality.gold_labels import GoldLabelError, load_label_map
    from ..jobs.errors import JobError
    from ..quality.report import summary_lines
    from ..tuning.examples import TuneDataError
    from ..tuning.run import Progress, TuneError, TunedWorse, TuneRequest, has_checkpoint, partial_folder, tune
    from ..tuning.training import TrainingStopped

    try:
        mapping = load_label_map(label_map) if label_map else None
    except GoldLabelError as e:
        raise UserError(str(e)) from None
    modules = tuple(dict.fromkeys(m.strip() for m in target_modules.split(",") if m.strip()))
    unknown = [m for m in modules if m not in ALL_PROJECTIONS]
    if unknown or not modules:
        raise UserError(f"--target-modules: {', '.join(unknown) or 'none given'}; choose among "
                        f"{', '.join(ALL_PROJECTIONS)}")
    settings = TrainingSettings(rank=rank, alpha=alpha, dropout=dropout, target_modules=modules,
                                learning_rate=learning_rate, epochs=epochs, batch_tokens=batch_tokens, patience=patience,
                                validations_per_epoch=validations_per_epoch, seed=seed, min_steps=min_steps,
                                keep_weight=keep_weight)
    request = TuneRequest(input_path, text_column, label_column, output.expanduser().absolute(), scheme, base, revision,
                          tuple(outtype_list(outtypes)), validation_path, validation_share, sheet, encoding,
                          delimiter_character(delimiter), mapping, neutral_band, prompt, settings, device, adapter_only,
                          resume, keep_worse, force, threads, quiet, gold_convention=gold_convention,
                          reference_path=reference_path, reference_column=reference_column,
                          reference_label_column=reference_label_column, min_agreement=min_agreement)
    partial = partial_folder(request.output)
    training_bar = _TrainingBar(quiet)
    eval_bars = []

    def on_eval_model(name: str, texts: int):
        bar = progress_bar(texts, "text", quiet, desc=name)
        eval_bars.append(bar)
        return closing_when_done(bar)

    def say(line: str) -> None:
        training_bar.close()
        if not quiet:
            click.echo(line, err=True)

    with _StopOnCtrlC() as ctrl_c:
        def on_training_step(report) -> None:
            ctrl_c.training = True
            training_bar(report)

        def on_training(active: bool) -> None:
            ctrl_c.training = active
            if not active:
                training_bar.close()

        progress = Progress(say, on_training_step, on_eval_model, on_training)
        try:
            result = tune(request, progress, ctrl_c.stop.is_set)
        except TrainingStopped as e:
            raise Interrupted(f"stopped after step {e.step} of {e.total}; the checkpoint is in {partial}: run the same "
                              "command with --resume to continue") from None
        except KeyboardInterrupt:
            raise Interrupted("interrupted; " + (f"the checkpoint in {partial} is kept: run the same command with "
                                                 "--resume to continue" if has_checkpoint(request.output) else
                                                 f"nothing was written to {request.output}")) from None
        except TunedWorse as e:
            for line in summary_lines(e.evaluation) + e.forgetting_lines:
                click.echo(line)
            raise UserError(str(e)) from None
        except (TuneError, TuneDataError, EvalError, GoldLabelError, JobError) as e:
            raise UserError(str(e)) from None
        finally:
            training_bar.close()
            for bar in eval_bars:
                bar.close()
    for line in summary_lines(result.evaluation) + result.forgetting_lines:
        click.echo(line)
    if result.worse:
        click.echo("The tuned model is worse than the base on validation; written anyway (--keep-worse).", err=True)
    if result.forgets:
        click.echo("The tuned model changes more reference labels than --min-agreement allows; written anyway "
                   "(--keep-worse).", err=True)
    base_file = (result.manifest.get("adapter_for") or {}).get("base_file")
    click.echo(f"Wrote {result.output}: " + ", ".join([p.name for p in result.model_files] + ([base_file] if base_file
               else [])) + ", report.html, tune-manifest.json, adapter/", err=True)
    with_prompt = "" if prompt == "card" else f" --prompt {prompt}"
    if not adapter_only:
        click.echo(f"Serve it: finsent serve --model {result.model_files[0]}{with_prompt}", err=True)
    elif base_file:  # the base file the adapter was made for, kept beside it
        click.echo(f"Serve it: finsent serve --model {result.output / base_file} --lora {result.model_files[0]}"
                   f"{with_prompt}", err=True)
    else:  # the base is the very file `finsent serve` uses by default
        click.echo(f"Serve it: finsent serve --lora {result.model_files[0]}{with_prompt}", err=True)
