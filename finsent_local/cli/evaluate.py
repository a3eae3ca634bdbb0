"""`finsent eval`: how right the labels are on a labelled file, for one model or several side by side."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..engine.labels import SCHEMES
from ..quality.benchmarks import BENCHMARK_CHOICES
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


@click.command("eval", epilog="Docs: docs/eval.md")
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="A labelled file: .csv .tsv .jsonl .parquet .xlsx.")
@click.option("--text-column", help="The column that holds the texts (.xlsx: header or letter).")
@click.option("--label-column", help="The column that holds the gold labels.")
@click.option("--benchmark", "benchmarks", multiple=True, metavar="|".join(BENCHMARK_CHOICES),
              help="Instead of --input: a financial sentiment benchmark from the hub, split, labelled and prompted "
                   "as FinGPT's benchmark code does (fpb, fiqa, tfns, nwgi; repeat, or all), beside the published "
                   "figures. Downloaded once, then read from the hub cache.")
@click.option("--sheet", help=".xlsx: the sheet (default: the first).")
@click.option("--encoding", help=".csv/.tsv: the file's text encoding (default: UTF-8, else Windows-1252, said so).")
@click.option("--delimiter", help=".csv: the field separator (default: ',', or ';' when the header has only semicolons).")
@click.option("--scheme", type=click.Choice(list(SCHEMES)),
              help=SCHEME_HELP + " With 3-class gold labels and 7, predictions are collapsed to 3. "
                   "Default: 7; with --benchmark 3, as FinGPT asks.")
@click.option("--model", "models", multiple=True,
              help="GGUF file; repeat to compare models side by side (the first is the reference). "
                   "Default as for `finsent serve`.")
@click.option("--prompt", "prompts", multiple=True, type=click.Choice(["card", "train"]),
              help=PROMPT_HELP + " Repeat to compare both (default: card; with --benchmark train, FinGPT's layout).")
@click.option("--gold-convention", type=click.Choice(list(NAMED_CONVENTIONS)), help=GOLD_CONVENTION_HELP)
@click.option("--label-map", help="Gold values to labels: a JSON object ('{\"pos\": \"positive\", ...}') or a "
              "file holding one. Adds to the convention the other values follow (or maps every value).")
@click.option("--neutral-band", type=click.FloatRange(0.0, 1.0), default=0.1, show_default=True,
              help="Gold scores in [-1, 1] (FiQA-style): below -band negative, below band neutral, else positive.")
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the HTML report here (self-contained, opens offline). Its most confident errors are "
                   "explained: each word shaded by how much it moved the score (about one classification per word).")
@click.option("--no-explain", is_flag=True, help="With --report: list the most confident errors without explaining "
              "their words (faster with long texts or many models).")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), help="Write every figure as JSON.")
@click.option("--predictions", "predictions_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write each row with its gold label, predictions and probabilities (CSV).")
@click.option("--force", is_flag=True, help="Replace existing output files.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap intervals.")
@click.option("--threads", type=int, default=0, help="CPU threads for llama.cpp (default: all cores).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the persistent result cache (e.g. to time models).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def evaluate_command(input_path, text_column, label_column, benchmarks, sheet, encoding, delimiter, scheme, models,
                     prompts, gold_convention, label_map, neutral_band, report_path, no_explain, json_path,
                     predictions_path, force, seed, threads, no_cache, quiet):
    """Measure the labels against a labelled file: accuracy, F1, confusion matrix, calibration.

    \b
    finsent eval --input phrasebank.csv --text-column sentence --label-column label
    finsent eval --input news.xlsx --text-column B --label-column C --report report.html
    finsent eval --input gold.jsonl --text-column text --label-column label \\
        --model f16.gguf --model q4_k_m.gguf --json metrics.json --predictions rows.csv
    finsent eval --benchmark all --report benchmarks.html --json benchmarks.json

    Gold labels are recognised as the 7 or 3 label names, bearish/bullish, -1/0/1 or scores in [-1, 1].
    Other integers (0/1/2) are numbered differently by different sets: say which with --gold-convention
    twitter or phrasebank. --label-map maps anything else. Rows with an empty text or gold label are
    skipped and counted.
    """
    if benchmarks:
        _refuse_file_options({"--input": input_path, "--text-column": text_column, "--label-column": label_column,
                              "--sheet": sheet, "--encoding": encoding, "--delimiter": delimiter,
                              "--gold-convention": gold_convention, "--label-map": label_map,
                              "--neutral-band": neutral_band if neutral_band != 0.1 else None})
        return _evaluate_benchmarks(benchmarks, scheme or "3", models, list(dict.fromkeys(prompts)) or ["train"],
                                    report_path, json_path, predictions_path, force, seed, threads, no_cache, quiet,
                                    explain=bool(report_path) and not no_explain)
    missing = [option for option, value in (("--input", input_path), ("--text-column", text_column),
                                             ("--label-column", label_column)) if not value]
    if missing:
        raise UserError(f"finsent eval needs {', '.join(missing)} (a labelled file), or --benchmark NAME")
    scheme = scheme or SCHEMES[0]
    require_engine()
    _check_extra()
    from ..engine.classifier import EngineOptions
    from ..engine.service import open_service
    from ..jobs.errors import JobError
    from ..limits import Limits
    from ..model_files import result_cache_path
    from ..quality.evaluation import EvalError, EvalRequest, evaluate, explain_confident_errors
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
        if report_path and not no_explain:
            explain_confident_errors(evaluation, open_model, _explaining(bars, quiet))
    except (EvalError, GoldLabelError, JobError) as e:
        raise UserError(str(e)) from None
    finally:
        for bar in bars:
            bar.close()
    for note in evaluation.notes:
        click.echo(note, err=True)
    for line in summary_lines(evaluation):
        click.echo(line)
    _write_outputs([(predictions_path, "predictions", lambda path: write_predictions(evaluation, path)),
                    (json_path, "metrics", lambda path: write_metrics_json(evaluation, path)),
                    (report_path, "report", lambda path: write_report(evaluation, path))])


def _refuse_file_options(given: dict) -> None:
    """--benchmark reads its sets as FinGPT does: the labelled file's options would be silently ignored."""
    used = [option for option, value in given.items() if value is not None]
    if used:
        raise UserError(f"{', '.join(used)} {'does' if len(used) == 1 else 'do'} not apply to --benchmark (its sets are "
                        "read, split and labelled as FinGPT's benchmark code does); use --input for a labelled file")


def _explaining(bars: list, quiet: bool):
    """explain_confident_errors' progress: a bar per model, in errors explained."""
    def on_model(name: str, errors: int):
        bar = progress_bar(errors, "error", quiet, desc=f"explaining {name}'s errors")
        bars.append(bar)
        return closing_when_done(bar)
    return on_model


def _evaluate_benchmarks(names, scheme, models, prompts, report_path, json_path, predictions_path, force, seed,
                         threads, no_cache, quiet, explain: bool = False) -> None:
    from ..quality.benchmarks import BenchmarkError, chosen_benchmarks

    try:
        chosen = chosen_benchmarks(names)
    except BenchmarkError as e:
        raise UserError(str(e)) from None
    require_engine()
    _check_extra()
    from ..engine.classifier import EngineOptions
    from ..engine.service import open_service
    from ..jobs.errors import JobError
    from ..limits import Limits
    from ..model_files import result_cache_path
    from ..quality.benchmark_data import load_benchmark
    from ..quality.benchmark_report import (summary_lines, write_benchmark_predictions, write_benchmark_report,
                                            write_benchmarks_json)
    from ..quality.benchmark_run import benchmark_request, run_benchmark
    from ..quality.evaluation import EvalError, explain_confident_errors

    check_outputs_or_exit([FileOutput(path, option) for path, option in (
        (report_path, "--report"), (json_path, "--json"), (predictions_path, "--predictions")) if path is not None],
        [local_model_file(m) for m in models], force)
    try:  # every set read before any model runs: a missing one fails in seconds, not after an hour
        sets = [load_benchmark(benchmark, quiet or not sys.stderr.isatty()) for benchmark in chosen]
    except BenchmarkError as e:
        raise UserError(str(e)) from None
    model_files = [model_path(m) for m in (models or (None,))]
    cache = None if no_cache else result_cache_path()

    def open_model(path: Path, prompt: str, subject: str = "news"):
        return open_service(path, EngineOptions(prompt_preset=prompt, n_threads=threads, instruction_subject=subject),
                            cache, Limits(max_wait_s=None))

    bars = []

    def on_model(name: str, texts: int):
        bar = progress_bar(texts, "text", quiet, desc=name)
        bars.append(bar)
        return closing_when_done(bar)

    results = []
    try:
        for rows in sets:
            request = benchmark_request(rows, model_files, prompts, scheme, threads, cache, seed)
            results.append(run_benchmark(rows, request, open_model, on_model))
            if explain:  # the report lists each evaluation's most confident errors: shade their words
                for evaluation in (results[-1].evaluation, results[-1].seven_labels):
                    if evaluation is not None:
                        explain_confident_errors(evaluation, open_model, _explaining(bars, quiet))
    except (EvalError, BenchmarkError, JobError) as e:
        raise UserError(str(e)) from None
    finally:
        for bar in bars:
            bar.close()
    for line in summary_lines(results):
        click.echo(line)
    _write_outputs([(predictions_path, "predictions", lambda path: write_benchmark_predictions(results, path)),
                    (json_path, "figures", lambda path: write_benchmarks_json(results, path)),
                    (report_path, "report", lambda path: write_benchmark_report(results, path))])


def _write_outputs(outputs: list) -> None:
    """(path or None, what it holds, write(path)) for each output: each file appears whole or not at all
    (written aside, then renamed); then the files written are named, report first."""
    try:
        for path, _, write in outputs:
            if path:
                write(path)
    except OSError as e:
        raise UserError(f"cannot write {e.filename or 'the output'}: {e.strerror or e}") from None
    for path, what, _ in reversed(outputs):
        if path:
            click.echo(f"Wrote the {what} to {path}", err=True)
    sys.stdout.flush()
