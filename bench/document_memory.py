"""Benchmark: memory of long documents, on the trained test fixture (what grows with a document is
its text, sentences and results, not the model, so a small model shows it best), in one run.

For a document of about 1,000 characters (the baseline), 100,000 (the tests' earnings-call transcript,
2,400 sentences) and 1,000,000 (the default limit: 5,000 sentences of 200 characters):
1. `finsent classify --input docs.csv --split sentences --sentences-output s.csv`: the command's peak RSS;
2. `POST /v1/documents` to a running `finsent serve`: the server's peak RSS (VmHWM) after the request,
   each size on a fresh server.
Printed: the peak, its growth over the baseline in MB, and that growth per input character.
Target: growth linear in the document and small (a few hundred bytes per character: the text, its
sentence spans, one result each and the JSON answer), never a multiple of the model.

.venv/bin/python bench/document_memory.py      (--smoke: documents of 1,000 and 10,000 characters; bench/smoke_mode.py)
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import fixture_models  # noqa: E402
from file_bench import peak_rss_mb  # noqa: E402
from long_documents import transcript  # noqa: E402
from running_server import RunningServer  # noqa: E402
from smoke_mode import pick  # noqa: E402

from finsent_local.convert.pipeline import ConvertRequest, convert  # noqa: E402


def filing(sentences: int) -> str:
    """Sentences of about 200 characters, each distinct (no result-cache hits)."""
    out = []
    for i in range(sentences):
        out.append(f"In the quarter ended {i}, Unit {i} of Nakatomi Trading reported sales of EUR {i}.5 mn, up "
                   f"{i % 40}% from a year earlier, while operating margin widened to {i % 30}.{i % 10}% and net "
                   f"debt fell to EUR {i * 3}.2 mn.")
    return " ".join(out)


def server_peak_mb(model: Path, text: str, cache: Path) -> float:
    server = RunningServer("--model", str(model), env={"FINSENT_CACHE_DIR": str(cache)})
    try:
        request = urllib.request.Request(server.url + "/v1/documents", data=json.dumps({"text": text}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as answer:
            body = json.load(answer)
        assert body["document"]["sentences"] > 0, body["document"]
        status = Path(f"/proc/{server.proc.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024
    finally:
        server.stop()


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="finsent-doc-memory-"))
    model = work / "trained-q8_0.gguf"
    convert(ConvertRequest(source=str(fixture_models.trained_checkpoint()), outtypes=["q8_0"], outfile=str(model),
                           verify=False, quiet=True))
    documents = pick({"1k": filing(5), "100k": transcript(), "965k": filing(5000)},  # 5,000: the sentence limit
                     {"1k": filing(5), "10k": filing(50)})
    rows = []
    for name, text in documents.items():
        source = work / f"{name}.csv"
        with open(source, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["id", "body"], ["1", text]])
        env = {"FINSENT_CACHE_DIR": str(work / f"cache-{name}")}
        wall, cli_mb = peak_rss_mb([sys.executable, "-m", "finsent_local.cli", "classify", "--model", str(model),
                                    "--input", str(source), "--column", "body", "--output", str(work / f"{name}-out.csv"),
                                    "--split", "sentences", "--sentences-output", str(work / f"{name}-sentences.csv"),
                                    "--quiet"], env)
        serve_mb = server_peak_mb(model, text, work / f"server-cache-{name}")
        rows.append((name, len(text), wall, cli_mb, serve_mb))
    _, base_chars, _, base_cli, base_serve = rows[0]
    print(f"trained fixture Q8_0 ({model.stat().st_size / 1e6:.1f} MB), {os.cpu_count()} CPUs")
    print("| document | characters | classify s | classify peak MB | growth MB | bytes/char | serve peak MB "
          "| growth MB | bytes/char |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, chars, wall, cli_mb, serve_mb in rows:
        grow_cli, grow_serve = cli_mb - base_cli, serve_mb - base_serve
        extra = max(1, chars - base_chars)
        print(f"| {name} | {chars:,} | {wall:.1f} | {cli_mb:.0f} | {grow_cli:+.0f} | {grow_cli * 2**20 / extra:.0f} "
              f"| {serve_mb:.0f} | {grow_serve:+.0f} | {grow_serve * 2**20 / extra:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
