"""`--smoke` (or FINSENT_BENCH_SMOKE=1): every bench script's own code path on the smallest inputs, in
seconds, so that a moved module or renamed function fails tests/test_bench_smoke.py instead of the next
measurement. The figures a smoke run prints mean nothing.

In smoke mode the Llama-FinSent-S-shaped random checkpoint (bench/same_shape.py) is the tests' small
trained checkpoint (tests/fixture_models.py, built once per machine), loops run once on a few texts, and nothing is downloaded or
built (the stock converter and llama-server are used only where a full run left them in bench/.work).
FINSENT_BENCH_WORK moves bench/.work (the tests point it at a temporary folder).
"""

from __future__ import annotations

import os
import sys

SMOKE = "--smoke" in sys.argv[1:] or os.environ.get("FINSENT_BENCH_SMOKE") == "1"
if SMOKE:
    os.environ["FINSENT_BENCH_SMOKE"] = "1"  # child processes, and scripts imported by this one


def pick(full, smoke):
    """`full` in a real run, `smoke` in a smoke run."""
    return smoke if SMOKE else full
