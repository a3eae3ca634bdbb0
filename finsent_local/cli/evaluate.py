"""`finsent eval`: how right the labels are on a labelled file, for one model or several side by side."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..engine.labels import SCHEMES
from ..quality.gold_labels import GOLD_CONVENTION_HELP, NAMED_CONVENTIONS
from ..output_place import FileOutput, local_model_file
from .common import (PROMPT_HELP, SCHEME_HELP, UserError, check_outputs_or_exit, closing_when_done,
                     delimiter_character, model_path, progress_bar, require_engine)

MISSING_EXTRA = ("finsent eval needs scikit-learn and matplotlib, which are not installed: "
                 "pip install 'finsent-local[eval]' (setup.sh installs them)")


def _check_extra() -> None:
    try:
        import matplotlib  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        raise UserError(MISSING_EXTRA) from None


@click.command("eval")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="A labelled file: .csv .tsv .jsonl .parquet .xlsx.")
@click.option("--text-column", required=True, help="The column that holds the texts (.xlsx: header or letter).")
@click.option("--label-column", required=True, help="The column that holds the gold labels.")
@click.option("--sheet", help=".xlsx: the sheet (default: the first).")
@click.option("--encoding", help=".csv/.tsv: the file's text encoding (default: UTF-8, else Windows-1252, said so).")
@click.option("--delimiter", help=".csv: the field separator (default: ',', or ';' when the header has only semicolons).")
@click.option("--scheme", type=click.Choice(list(SCHEMES)), default=SCHEMES[0], show_default=True,
              help=SCHEME_HELP + " With 3-class gold labels and 7, predictions are collapsed to 3.")
@click.option("--model", "models", multiple=True,
              help="GGUF file; repeat to compare models side by side (the first is the reference). "
                   "Default as for `finsent serve`.")
@click.option("--prompt", "prompts", multiple=True, type=click.Choice(["card", "train"]),
              help=PROMPT_HELP + " Repeat to compare both (default: card).")
@click.option("--gold-convention", type=click.Choice(list(NAMED_CONVENTIONS)), help=GOLD_CONVENTION_HELP)
@click.option("--label-map", help="Gold values to labels: a JSON object ('{\"pos\": \"positive\", ...}') or a "
              "file holding one. Adds to the convention the other values follow (or maps every value).")
@click.option("--neutral-band", type=click.FloatRange(0.0, 1.0), default=0.1, show_default=True,
              help="Gold scores in [-1, 1] (FiQA-style): below -band negative, below band neutral, else positive.")
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the HTML report here (self-contained, opens offline).")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), help="Write every figure as JSON.")
@click.option("--predictions", "predictions_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write each row with its gold label, predictions and probabilities (CSV).")
@click.option("--force", is_flag=True, help="Replace existing output files.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap intervals.")
@click.option("--threads", type=int, default=0, help="CPU threads for llama.cpp (default: all cores).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the persistent result cache (e.g. to time models).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def evaluate_command(input_path, text_column, label_column, sheet, encoding, delimiter, scheme, models, prompts,
                     gold_convention, label_map, neutral_band, report_path, json_path, predictions_path, force, seed, threads, no_cache,
                     quiet):
    """Measure the labels against a labelled file: accuracy, F1, confusion matrix, calibration.

    \b
    finsent eval --input phrasebank.csv --text-column sentence --label-column label
    finsent eval --input news.xlsx --text-column B --label-column C --report report.html
    finsent eval --input gold.jsonl --text-column text --label-column label \\
        --model f16.gguf --model q4_k_m.gguf --json metrics.json --predictions rows.csv

    Gold labels are recognised as the 7 or 3 label names, bearish/bullish, -1/0/1 or scores in [-1, 1].
    Other integers (0/1/2) are numbered differently by different sets: say which with --gold-convention
    twitter or phrasebank. --label-map maps anything else. Rows with an empty text or gold label are
    skipped and counted.
    """
    require_engine()
    _check_extra()
    from ..engine.classifier import EngineOptions
    from ..engine.service import open_service
    from ..jobs.errors import JobError
    from ..limits import Limits
    from ..model_files import result_cache_path
    from ..quality.evaluation import EvalError, EvalRequest, evaluate
    from ..quality.gold_labels import GoldLabelError, load_label_map
    from ..quality.report import summary_lines, write_metrics_json, write_predictions, write_report

    # None of them over the labelled file or a model, nor two on one file (output_place's rules).
    check_outputs_or_exit([FileOutput(path, option) for path, option in (
        (report_path, "--report"), (json_path, "--json"), (predictions_path, "--predictions")) if path is not None],
        [input_path, *(local_model_file(m) for m in models)], force)
    try:
        mapping = load_label_map(label_map) if label_map else None
    except GoldLabelError as e:
        raise UserError(str(e)) from None
    model_files = [model_path(m) for m in (models or (None,))]
    request = EvalRequest(input_path, text_column, label_column, model_files, list(dict.fromkeys(prompts)) or ["card"],
                          scheme, sheet, encoding, delimiter_character(delimiter), mapping, neutral_band, threads,
                          None if no_cache else result_cache_path(), seed, gold_convention=gold_convention)

    def open_model(path: Path, prompt: str):
        return open_service(path, EngineOptions(prompt_preset=prompt, n_threads=threads), request.result_cache,
                            Limits(max_wait_s=None))

    bars = []

    def on_model(name: str, texts: int):
        bar = progress_bar(texts, "text", quiet, desc=name if len(request.models) * len(request.prompts) > 1 else None)
        bars.append(bar)
        return closing_when_done(bar)

    try:
        evaluation = evaluate(request, open_model, on_model)
    except (EvalError, GoldLabelError, JobError) as e:
        raise UserError(str(e)) from None
    finally:
        for bar in bars:
            bar.close()
    for note in evaluation.notes:
        click.echo(note, err=True)
    for line in summary_lines(evaluation):
        click.echo(line)
    try:  # each file appears whole or not at all (written aside, then renamed)
        if predictions_path:
            write_predictions(evaluation, predictions_path)
        if json_path:
            write_metrics_json(evaluation, json_path)
        if report_path:
            write_report(evaluation, report_path)
    except OSError as e:
        raise UserError(f"cannot write {e.filename or 'the output'}: {e.strerror or e}") from None
    for path, what in ((report_path, "report"), (json_path, "metrics"), (predictions_path, "predictions")):
        if path:
            click.echo(f"Wrote the {what} to {path}", err=True)
    sys.stdout.flush()
