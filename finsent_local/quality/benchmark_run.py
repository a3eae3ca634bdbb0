"""`finsent eval --benchmark`'s run: each chosen benchmark's test set through the same evaluation as a
labelled file (evaluation.evaluate_rows: every model on the same rows, paired comparisons, intervals,
calibration), with each row's instruction asking about what FinGPT asks (news or tweet).

NWGI is scored twice: on 3 labels FinGPT's way (its headline figure, comparable with the published one),
and on its own 7 labels with the model asked for 7 (the project's figure: the model's native labels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..engine.labels import LABELS_3, LABELS_7
from .benchmarks import Benchmark, BenchmarkRows
from .evaluation import EvalRequest, Evaluation, evaluate_rows
from .gold_labels import GoldReading


@dataclass
class BenchmarkResult:
    benchmark: Benchmark
    rows: BenchmarkRows
    evaluation: Evaluation  # FinGPT's 3 labels: the headline
    seven_labels: Evaluation | None = None  # NWGI on its own 7 labels


def _gold_reading(benchmark: Benchmark, seven: bool) -> GoldReading:
    """How the benchmark's gold labels were read, for the summary and the report."""
    if seven:
        return GoldReading(f"{benchmark.title}'s 7 labels as they are", f"{benchmark.repo_id}, column "
                           f"{benchmark.label_column}", "7", {label: label for label in LABELS_7})
    return GoldReading(f"{benchmark.title} as FinGPT reads it ({benchmark.gold_rule_text})",
                       f"{benchmark.repo_id}; FinGPT's {benchmark.fingpt_file}", "3", {label: label for label in LABELS_3})


def run_benchmark(rows: BenchmarkRows, request: EvalRequest, open_service: Callable,
                  on_model: Callable[[str, int], Callable[[int], None]]) -> BenchmarkResult:
    """Evaluate every model of `request` on one benchmark's test set. `open_service(model, prompt, subject)`."""
    benchmark = rows.benchmark
    numbers = list(rows.source_rows)
    request = replace(request, label_map=None, gold_convention=None)
    evaluation = evaluate_rows(request, rows.texts, rows.gold_3, numbers, {}, [], open_service,
                               lambda name, total: on_model(f"{benchmark.title}: {name}", total), rows.subjects)
    evaluation.gold = _gold_reading(benchmark, seven=False)
    result = BenchmarkResult(benchmark, rows, evaluation)
    if rows.gold_7 is not None:
        seven = replace(request, scheme="7")
        result.seven_labels = evaluate_rows(seven, rows.texts, rows.gold_7, numbers, {}, [], open_service,
                                            lambda name, total: on_model(f"{benchmark.title} (7 labels): {name}", total),
                                            rows.subjects)
        result.seven_labels.gold = _gold_reading(benchmark, seven=True)
    return result


def benchmark_request(rows: BenchmarkRows, models: list[Path], prompts: list[str], scheme: str, threads: int,
                      result_cache: Path | None, seed: int) -> EvalRequest:
    """The evaluation request for a benchmark: its text and label columns, and the first data file as
    the input (what the report and the JSON name)."""
    files = [path for paths in rows.source.get("files", {}).values() for path in paths]
    input_path = Path(f"{rows.benchmark.repo_id}@{rows.source.get('commit', rows.benchmark.revision)[:12]}"
                      + (f"/{files[0]}" if files else ""))
    return EvalRequest(input_path, rows.benchmark.text_column, rows.benchmark.label_column, models, prompts, scheme,
                       threads=threads, result_cache=result_cache, seed=seed)
