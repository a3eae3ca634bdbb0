"""What quantization costs in labels: `finsent eval` on the trained test model in every outtype.

The trained fixture (tests/fixture_models.py) is converted to F16, Q8_0, Q6_K, Q5_K_M, Q4_K_M and Q4_0
by the project's converter (the quantized ones with the MLP padded, as `finsent convert` does by
default), then `finsent eval` runs all of them side by side, F16 first, on two labelled sets:

- held-out: the fixture's held-out headlines (companies and templates its training never saw);
- hard: bench/hard_headlines.py, event phrases it never saw either, where the model is less sure.

Printed per set and outtype: accuracy, weighted F1, label agreement with F16, mean |dp| against F16,
file size and texts/s (no result cache; timed in the same run, so the ratios compare). The goal of
issue 18: Q4_K_M agrees with F16 on at least 99% of labels on both sets.

    .venv/bin/python bench/quant_eval.py        (a few minutes on 2 cores once the test fixture exists)
    (--smoke: F16, Q8_0 and Q4_K_M on a few headlines of each set; bench/smoke_mode.py)
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import fixture_models  # noqa: E402
from finsent_local.convert.pipeline import ConvertRequest, convert  # noqa: E402
from hard_headlines import hard_examples  # noqa: E402
from sentiment_data import held_out_examples  # noqa: E402
from smoke_mode import pick  # noqa: E402

OUTTYPES = pick(["f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0"], ["f16", "q8_0", "q4_k_m"])
AGREEMENT_GOAL = 0.99


def write_set(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["headline", "sentiment"])
        writer.writerows(rows)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="finsent-quant-eval-"))
    checkpoint = fixture_models.trained_checkpoint()
    models = []
    for outtype in OUTTYPES:
        target = work / f"trained-{outtype}.gguf"
        convert(ConvertRequest(source=str(checkpoint), outtypes=[outtype], outfile=str(target), verify=False,
                               quiet=True))
        models.append(target)
    sets = {"held-out": held_out_examples(per_label=pick(20, 1)), "hard": pick(hard_examples(), hard_examples()[::24])}
    print(f"| set | outtype | accuracy | weighted F1 | agreement with F16 | mean abs dp | MB | texts/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    verdicts = []
    for name, rows in sets.items():
        data = work / f"{name}.csv"
        write_set(data, rows)
        metrics_file = work / f"{name}.json"
        command = [sys.executable, "-m", "finsent_local.cli", "eval", "--input", str(data), "--text-column", "headline",
                   "--label-column", "sentiment", "--no-cache", "-q", "--json", str(metrics_file),
                   "--report", str(work / f"{name}.html")]
        for model in models:
            command += ["--model", str(model)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        metrics = json.loads(metrics_file.read_text())
        against = {c["name"]: c for c in metrics["against_first"]}
        for outtype, model, m in zip(OUTTYPES, models, metrics["models"]):
            c = against.get(m["name"], {"agreement": 1.0, "mean_abs_dp": 0.0})
            print(f"| {name} ({metrics['rows_evaluated']}) | {outtype.upper()} | {m['accuracy'] * 100:.1f}% "
                  f"| {m['weighted_f1'] * 100:.1f}% | {c['agreement'] * 100:.1f}% | {c['mean_abs_dp']:.4f} "
                  f"| {model.stat().st_size / 1e6:.0f} | {m['texts_per_s']:.0f} |")
            if outtype == "q4_k_m":
                verdicts.append((name, c["agreement"]))
    for name, agreement in verdicts:
        print(f"{name}: Q4_K_M agrees with F16 on {agreement * 100:.1f}% of labels "
              f"({'meets' if agreement >= AGREEMENT_GOAL else 'misses'} the {AGREEMENT_GOAL:.0%} goal)")
    print(f"reports: {work}/held-out.html, {work}/hard.html")
    return 0 if all(a >= AGREEMENT_GOAL for _, a in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
