"""Benchmark: what `finsent tune` teaches and what it makes the model forget (issue 33), on the tests'
trained model (the only model here whose answers mean something).

The desk file is the house-rule test's (tests/house_rule_data.py: 340 rows, 60 of them a house rule the
model labels otherwise), or a small one (--small N: about N rows, a quarter house rule, the rest spread
over the other labels). Each run is the real `finsent tune` command, then the engine labels, with the base
and the tuned GGUF file:
  house rule      the house-rule phrasings with held-out companies and templates (never in the desk file)
  held-out        the fixture's own held-out headlines (what the tuned model should still know)
and the manifest gives the share of held-out reference labels kept. Runs, by default: no reference, the
default keep weight with the everyday reference (house_rule_data.reference_rows), keep weight 4.

  .venv/bin/python bench/tune_forgetting.py                     the house-rule file, the three runs
  .venv/bin/python bench/tune_forgetting.py --small 100 --learning-rate 2e-4 --min-steps 0 --min-steps 100
  (--smoke: one short run, bench/smoke_mode.py)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from smoke_mode import SMOKE  # noqa: F401  (sets the smoke environment for the child processes)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fixture_models  # noqa: E402
from conftest import convert_cached  # noqa: E402
from house_rule_data import (HOUSE_RULE_EVENTS, HOUSE_RULE_LABEL, house_rule_held_out, house_rule_rows,  # noqa: E402
                             reference_rows, write_labelled_csv)
from sentiment_data import held_out_examples  # noqa: E402


def small_desk(rows: list[tuple[str, str]], size: int) -> list[tuple[str, str]]:
    house = [r for r in rows if any(e in r[0] for e in HOUSE_RULE_EVENTS)][: size // 4]
    per_label = (size - len(house)) // 7
    taken, out = Counter(), list(house)
    for text, label in rows:
        if not any(e in text for e in HOUSE_RULE_EVENTS) and taken[label] < per_label:
            out.append((text, label))
            taken[label] += 1
    return out


def accuracy(model: Path, pairs: list[tuple[str, str]]) -> float:
    from finsent_local import FinSent

    with FinSent(model=str(model)) as fs:
        results = fs.classify_many([text for text, _ in pairs])
    return sum(r.label == gold for r, (_, gold) in zip(results, pairs)) / len(pairs)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--small", type=int, help="a desk file of about this many rows")
    parser.add_argument("--learning-rate", default="1e-3")
    parser.add_argument("--min-steps", action="append", help="one run per value, with the reference")
    args = parser.parse_args()
    checkpoint = fixture_models.trained_checkpoint()
    base = convert_cached(checkpoint, "q8_0", verify=True)
    work = Path(tempfile.mkdtemp(prefix="tune-forgetting-"))
    rows = house_rule_rows()
    rows = small_desk(rows, args.small) if args.small else rows
    desk = write_labelled_csv(work / "desk.csv", rows)
    reference = write_labelled_csv(work / "everyday.csv", reference_rows())
    kept = ["--reference", str(reference), "--reference-label-column", "label"]
    if SMOKE:
        runs = {"smoke: reference, 1 epoch": kept + ["--epochs", "1", "--min-steps", "0"]}
    elif args.min_steps:
        runs = {f"--min-steps {n}": kept + ["--min-steps", n] for n in args.min_steps}
    else:
        runs = {"no reference": [], "reference, --keep-weight 1 (default)": kept,
                "reference, --keep-weight 4": kept + ["--keep-weight", "4"]}
    house, original = house_rule_held_out(), held_out_examples(per_label=10)
    print(f"desk file: {len(rows)} rows ({sum(l == HOUSE_RULE_LABEL for _, l in rows)} {HOUSE_RULE_LABEL}); "
          f"learning rate {args.learning_rate}")
    print("| run | steps | house rule | held-out | held-out reference labels kept | whole command s |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| base | | {accuracy(base, house):.1%} | {accuracy(base, original):.1%} | | |", flush=True)
    try:
        for number, (name, extra) in enumerate(runs.items()):
            output = work / f"run-{number}"
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "finsent_local.cli", "tune", "--input", str(desk),
                                   "--text-column", "headline", "--label-column", "label", "--output", str(output),
                                   "--base", str(checkpoint), "--learning-rate", args.learning_rate, "--outtype", "q8_0",
                                   "--keep-worse", "-q", *extra], capture_output=True, text=True)
            seconds = time.perf_counter() - started
            if done.returncode != 0:
                print(f"| {name} | failed: {done.stderr.strip().splitlines()[-1]} |")
                continue
            tuned = next(output.glob("*-Q8_0.gguf"))
            manifest = json.loads((output / "tune-manifest.json").read_text())
            agreement = manifest["forgetting"].get("agreement")
            print(f"| {name} | {manifest['training']['steps']} | {accuracy(tuned, house):.1%} | "
                  f"{accuracy(tuned, original):.1%} | {'-' if agreement is None else f'{agreement:.1%}'} | "
                  f"{seconds:.0f} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
