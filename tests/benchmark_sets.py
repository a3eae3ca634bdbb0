"""Stand-ins of the four benchmark sets as the hub holds them: the same repos, revisions, file names, formats
and columns (label conventions included), with synthetic headlines from sentiment_data.py whose labels are
known, at any size (the real sizes by default). Served by tests/hub_stand_in.py's add_dataset."""

from __future__ import annotations

import csv
import io
import random

import pyarrow as pa
import pyarrow.parquet as pq

from sentiment_data import HELD_OUT_COMPANIES, HELD_OUT_TEMPLATES, coarse_label, examples

# Rows per split as the hub holds them (FPB's sentences_50agree, FiQA's three splits, TFNS' validation
# file, NWGI's test split): FinGPT's test sets are 1,212, 275, 2,388 and 4,047 rows.
REAL_SIZES = {"fpb": {"train": 4846}, "fiqa": {"train": 961, "validation": 102, "test": 150},
              "tfns": {"validation": 2388}, "nwgi": {"test": 4047}}
FIQA_SCORE = {"strong negative": -0.8, "moderately negative": -0.45, "mildly negative": -0.05, "neutral": 0.0,
              "mildly positive": 0.05, "moderately positive": 0.45, "strong positive": 0.8}


def headlines(rows: int, seed: int) -> list[tuple[str, str]]:
    """`rows` (headline, 7-class label) pairs, numbered so that every text is distinct."""
    pool = examples(HELD_OUT_COMPANIES, HELD_OUT_TEMPLATES)
    random.Random(seed).shuffle(pool)
    return [(text if i < len(pool) else f"{text} ({i})", label) for i, (text, label) in
            ((i, pool[i % len(pool)]) for i in range(rows))]


def parquet_bytes(columns: dict[str, list]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    return out.getvalue()


def fpb_files(rows: int) -> dict[str, bytes]:
    pairs = headlines(rows, 1)
    number = {"negative": 0, "neutral": 1, "positive": 2}
    return {"sentences_50agree/train/0000.parquet": parquet_bytes(
        {"sentence": [t for t, _ in pairs], "label": pa.array([number[coarse_label(l)] for _, l in pairs], pa.int64())})}


def fiqa_score(i: int, label: str) -> float:
    """The label's score, with the band edges FinGPT's make_label must get right on some rows."""
    if i % 23 == 5:
        return -0.1  # neutral (not below -0.1)
    if i % 23 == 11:
        return 0.1  # positive (from 0.1)
    return FIQA_SCORE[label]


def fiqa_files(sizes: dict[str, int]) -> dict[str, bytes]:
    files, start = {}, 0
    for split, rows in sizes.items():
        pairs = headlines(rows, 2 + start)
        indices = range(start, start + rows)
        files[f"data/{split}-00000-of-00001.parquet"] = parquet_bytes({
            "_id": [str(i) for i in indices], "sentence": [f"{t} [{i}]" for i, (t, _) in zip(indices, pairs)],
            "snippets": ["['']"] * rows, "target": ["Acme"] * rows,
            "sentiment_score": [fiqa_score(i, l) for i, (_, l) in zip(indices, pairs)],
            "aspects": ["['Corporate']"] * rows, "format": ["post" if i % 2 else "headline" for i in indices],
            "label": [0] * rows})
        start += rows
    return files


def tfns_files(rows: int) -> dict[str, bytes]:
    pairs = headlines(rows, 3)
    number = {"negative": 0, "positive": 1, "neutral": 2}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "label"])
    for text, label in pairs:
        writer.writerow([f"$ACME {text} https://t.co/x", number[coarse_label(label)]])
    return {"sent_valid.csv": out.getvalue().encode(), "sent_train.csv": b"text,label\nnot read,0\n"}


def nwgi_files(rows: int) -> dict[str, bytes]:
    pairs = headlines(rows, 4)
    test = parquet_bytes({"news": [t for t, _ in pairs], "prompt": [""] * rows, "out": [""] * rows,
                          "prediction": [""] * rows, "label": [l for _, l in pairs]})
    return {"data/test-00000-of-00001-c551483ebf365496.parquet": test,
            "data/train-00000-of-00001-dd971e407aecb39b.parquet": parquet_bytes({"news": ["x"], "label": ["neutral"]})}


def serve_benchmarks(hub, sizes: dict[str, dict[str, int]] | None = None) -> dict[str, str]:
    """Add the four sets to a HubStandIn (`sizes` as REAL_SIZES); the commit each revision resolves to."""
    sizes = {**REAL_SIZES, **(sizes or {})}
    return {
        "fpb": hub.add_dataset("takala/financial_phrasebank", fpb_files(sizes["fpb"]["train"]),
                               revision="refs/convert/parquet"),
        "fiqa": hub.add_dataset("pauri32/fiqa-2018", fiqa_files(sizes["fiqa"])),
        "tfns": hub.add_dataset("zeroshot/twitter-financial-news-sentiment", tfns_files(sizes["tfns"]["validation"])),
        "nwgi": hub.add_dataset("oliverwang15/news_with_gpt_instructions", nwgi_files(sizes["nwgi"]["test"])),
    }
