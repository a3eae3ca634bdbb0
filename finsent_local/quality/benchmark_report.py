"""What `finsent eval --benchmark` writes: the terminal's summary, the JSON, the predictions file and the
HTML report, built from report.py's pieces for each benchmark's evaluation.

The published figures (FinGPT's README table) stand beside the measured ones in their own block, headed
as published with their source and metric, and never in a measured row or a measured field of the JSON:
a reader can always tell what this run measured from what someone else reported.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..files import write_text_atomically
from .benchmark_run import BenchmarkResult
from .benchmarks import BENCHMARKS, PublishedFigure
from .report import (REPORT_FOOT, _e, evaluation_sections, metrics_json, prediction_header, prediction_rows,
                     report_head, write_csv_atomically)
from .report import summary_lines as evaluation_summary_lines

PUBLISHED_HEADING = "published, not measured here"


def _published_source(results: list[BenchmarkResult]) -> str:
    figures = [f for r in results for f in r.benchmark.published]
    return "; ".join(dict.fromkeys(f"{f.source}, {f.metric}" for f in figures))


def _published_table(results: list[BenchmarkResult]) -> dict[str, dict[str, PublishedFigure]]:
    """model -> benchmark name -> its published figure, models in the table's order."""
    table: dict[str, dict[str, PublishedFigure]] = {}
    for result in results:
        for figure in result.benchmark.published:
            table.setdefault(figure.model, {})[result.benchmark.name] = figure
    return table


def _measured_table(results: list[BenchmarkResult]) -> dict[str, dict[str, float]]:
    """run name -> benchmark name -> measured weighted F1 (FinGPT's 3 labels)."""
    table: dict[str, dict[str, float]] = {}
    for result in results:
        for run, metrics in zip(result.evaluation.runs, result.evaluation.metrics):
            table.setdefault(run.name, {})[result.benchmark.name] = metrics["weighted_f1"]
    return table


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _source_line(result: BenchmarkResult) -> str:
    source, benchmark = result.rows.source, result.benchmark
    return (f"{benchmark.repo_id} at {benchmark.revision} (commit {source['commit'][:12]}), "
            f"{source['rows_before_split']:,} rows; {benchmark.split_text}: {len(result.rows.texts):,} rows")


def summary_lines(results: list[BenchmarkResult]) -> list[str]:
    """Each benchmark's figures (report.summary_lines), then measured and published weighted F1 side by side."""
    lines = []
    for result in results:
        benchmark = result.benchmark
        lines.append(f"== {benchmark.title}: {benchmark.description}")
        lines.append(f"   {_source_line(result)}")
        lines += evaluation_summary_lines(result.evaluation)
        if result.seven_labels is not None:
            lines.append(f"-- {benchmark.title} on its own 7 labels (the model asked for 7; this project's figures, "
                         "not FinGPT's):")
            lines += evaluation_summary_lines(result.seven_labels)
        lines.append("")
    names = [r.benchmark.name for r in results]
    measured, published = _measured_table(results), _published_table(results)
    width = max(len(name) for name in [*measured, *published, PUBLISHED_HEADING, "measured here"]) + 2
    header = "".join(f"{BENCHMARKS[n].title:>9}" for n in names)
    lines.append(f"{'weighted F1':<{width}}{header}")
    lines.append("measured here")
    for name, row in measured.items():
        lines.append(f"  {name:<{width - 2}}" + "".join(f"{_figure(row.get(n)):>9}" for n in names))
    lines.append(f"{PUBLISHED_HEADING} ({_published_source(results)}):")
    for model, row in published.items():
        lines.append(f"  {model:<{width - 2}}" + "".join(
            f"{_figure(row[n].value if n in row else None):>9}" for n in names))
    return lines


def benchmarks_json(results: list[BenchmarkResult]) -> dict:
    """Every figure, each benchmark's source (repo, revision, the commit it resolved to, files) and the
    published figures in a field of their own."""
    return {"benchmarks": [{
        "name": r.benchmark.name, "title": r.benchmark.title, "description": r.benchmark.description,
        "source": r.rows.source, "gold_labels": r.benchmark.gold_rule_text, "instruction": r.benchmark.subject_text,
        "rows": len(r.rows.texts), "measured": metrics_json(r.evaluation),
        "measured_7_labels": metrics_json(r.seven_labels) if r.seven_labels is not None else None,
        "published": [{"model": f.model, "value": f.value, "metric": f.metric, "source": f.source}
                      for f in r.benchmark.published],
    } for r in results]}


def write_benchmarks_json(results: list[BenchmarkResult], path: Path) -> None:
    write_text_atomically(path, json.dumps(benchmarks_json(results), indent=2) + "\n", mode=0o644)


def write_benchmark_predictions(results: list[BenchmarkResult], path: Path) -> None:
    """One CSV row per benchmark row (FinGPT's 3 labels): the benchmark, then report.prediction_header's
    columns; `row` is the row's index in the set before the split (datasets' index)."""
    header = ["benchmark", *prediction_header(results[0].evaluation)]
    rows = ([r.benchmark.name, *row] for r in results for row in prediction_rows(r.evaluation))
    write_csv_atomically(path, header, rows)


PUBLISHED_STYLE = "<style>tbody.published td { color: #5b6875; font-style: italic; } th.group { background: #eef2f6; }</style>"


def benchmark_report_html(results: list[BenchmarkResult]) -> str:
    names = [r.benchmark.name for r in results]
    parts = report_head("FinSent Local: financial sentiment benchmarks")
    parts.append(PUBLISHED_STYLE)
    parts.append("<h1>Financial sentiment benchmarks <small>as FinGPT's benchmark code makes them</small></h1>")
    parts.append("<p class='note'>Sets, splits, gold labels and instructions as FinGPT_Benchmark/benchmarks makes "
                 "them; weighted F1 is FinGPT's headline figure. The published figures are other people's, copied "
                 "from their source: they were not measured by this run.</p>")
    parts.append("<table class='side-by-side'><thead><tr><th>weighted F1</th>"
                 + "".join(f"<th class='n'>{_e(BENCHMARKS[n].title)}</th>" for n in names) + "</tr></thead>")
    parts.append(f"<tbody class='measured'><tr><th class='group' colspan='{len(names) + 1}'>Measured here</th></tr>")
    for model, row in _measured_table(results).items():
        parts.append(f"<tr><td>{_e(model)}</td>" + "".join(f"<td class='n'>{_figure(row.get(n))}</td>" for n in names)
                     + "</tr>")
    parts.append(f"</tbody><tbody class='published'><tr><th class='group' colspan='{len(names) + 1}'>Published, "
                 f"not measured here ({_e(_published_source(results))})</th></tr>")
    for model, row in _published_table(results).items():
        parts.append(f"<tr><td>{_e(model)}</td>" + "".join(
            f"<td class='n'>{_figure(row[n].value if n in row else None)}</td>" for n in names) + "</tr>")
    parts.append("</tbody></table>")
    for result in results:
        benchmark = result.benchmark
        parts.append(f"<h2>{_e(benchmark.title)} <small>{_e(benchmark.description)}</small></h2>")
        parts.append(f"<p class='note'>{_e(_source_line(result))}. Gold labels: {_e(benchmark.gold_rule_text)}. "
                     f"Instruction: {_e(benchmark.subject_text)}. FinGPT's code: {_e(benchmark.fingpt_file)}.</p>")
        parts += evaluation_sections(result.evaluation, level=3)
        if result.seven_labels is not None:
            parts.append(f"<h3>{_e(benchmark.title)} on its own 7 labels <small>(the model asked for 7; this "
                         "project's figures, not FinGPT's)</small></h3>")
            parts += evaluation_sections(result.seven_labels, level=4)
    parts.append(REPORT_FOOT)
    return "\n".join(parts) + "\n"


def write_benchmark_report(results: list[BenchmarkResult], path: Path) -> None:
    write_text_atomically(path, benchmark_report_html(results), mode=0o644)
