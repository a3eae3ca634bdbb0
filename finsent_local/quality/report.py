"""What `finsent eval` writes: the HTML report, the JSON of every figure, the per-row predictions, and
the terminal's summary table.

The report is one self-contained file that opens from disk, offline: the figures are SVG drawn by
matplotlib and put inline, the styles are in the file, there is no script, and its Content-Security-
Policy forbids loading anything. Every text from the input (headlines, labels, file names) is escaped.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import tempfile
from collections import Counter
from pathlib import Path

from ..files import replace_durably, write_text_atomically
from ..jobs.tables import probability_column
from .evaluation import Evaluation

REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


# -- figures (matplotlib, SVG) -----------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "font.size": 9, "svg.hashsalt": "finsent"})  # no font files
    return plt


def _svg(figure) -> str:
    plt = _pyplot()
    out = io.StringIO()
    figure.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = out.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)  # matplotlib's RDF credits
    return text[text.index("<svg"):]  # inline: without the XML declaration and doctype


def confusion_svg(metrics: dict, title: str) -> str:
    plt = _pyplot()
    labels = metrics["confusion"]["labels"]
    counts = metrics["confusion"]["counts"]
    share = metrics["confusion"]["row_normalised"]
    size = 1.6 + 0.55 * len(labels)
    figure, axes = plt.subplots(figsize=(size + 1.2, size))
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            axes.text(j, i, f"{count}\n{share[i][j]:.0%}", ha="center", va="center", fontsize=7,
                      color="white" if share[i][j] > 0.6 else "black")
    axes.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the gold row")
    return _svg(figure)


def reliability_svg(metrics: dict, title: str) -> str:
    plt = _pyplot()
    bins = metrics["calibration"]["bins"]
    figure, axes = plt.subplots(figsize=(4.2, 3.8))
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    width = bins[0]["high"] - bins[0]["low"]
    axes.bar(centres, [b["accuracy"] or 0.0 for b in bins], width=width * 0.9, color="#4a7ab5", label="accuracy")
    axes.plot([0, 1], [0, 1], linestyle="--", color="#888888", label="perfect calibration")
    for centre, b in zip(centres, bins):
        if b["count"]:
            axes.text(centre, (b["accuracy"] or 0) + 0.02, str(b["count"]), ha="center", fontsize=6)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.08)
    axes.set_xlabel("confidence (probability of the predicted label)")
    axes.set_ylabel("accuracy")
    axes.set_title(f"{title}\nECE {metrics['calibration']['ece']:.3f}")
    axes.legend(loc="upper left", fontsize=7)
    return _svg(figure)


# -- the HTML report -------------------------------------------------------------------------------------------
def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _interval(values: list[float]) -> str:
    return f"{values[0] * 100:.1f} to {values[1] * 100:.1f}"


def _absent(metrics: dict) -> list[str]:
    """The labels in neither the gold labels nor the predictions: not in the F1 averages."""
    return [label for label, c in metrics["per_class"].items() if c["absent"]]


def _macro_f1_note(metrics: dict) -> str:
    """What macro F1 averages, when that is not every label."""
    absent = _absent(metrics)
    if not absent:
        return ""
    return (f"macro F1 averages the {len(metrics['macro_f1_labels'])} labels in the gold labels or the predictions; "
            f"absent from both: {', '.join(absent)}")


COLLAPSE_NOTE = ("The gold labels have 3 classes and the models were asked for 7: each prediction's 7 probabilities "
                 "are summed by sign (strong/moderately/mildly negative &rarr; negative, and so on) and the label is "
                 "the largest of those 3 sums, so a label and its probability always agree.")


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; padding: 0 16px; color: #1d2733; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2em; border-bottom: 1px solid #d5dde6; }
table { border-collapse: collapse; margin: 8px 0; } th, td { padding: 4px 10px; border-bottom: 1px solid #e3e8ee; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; } .figures figure { margin: 0; } .figures svg { max-width: 100%; height: auto; }
.note { color: #4b5b6b; } td.text { max-width: 560px; overflow-wrap: anywhere; }
span.w { border-radius: 2px; padding: 0 1px; } span.w.neg { background: rgba(205, 40, 40, var(--shade)); }
span.w.pos { background: rgba(30, 150, 60, var(--shade)); } .why { color: #4b5b6b; font-size: 0.9em; }
"""


def report_head(title: str) -> list[str]:
    """The document's start: the policy that forbids loading anything, the styles, the title."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
    ]


REPORT_FOOT = "<p class='note'>Made by <code>finsent eval</code> (FinSent Local).</p></body></html>"


# -- words shaded by their weight (the most confident errors, when explained) --------------------------------------
SHADE_FLOOR = 0.05  # a row whose words all moved the score by less than this is shaded faintly, not fully
SHADE_MAX = 0.7  # the strongest word's background opacity: its text stays readable

EXPLAIN_LEGEND = (
    "Each error's words are shaded by occlusion: a word's weight is the model's score (the expected label "
    "value, &minus;1 to +1) with the word minus its score without it. "
    "<span class='w neg' style='--shade:0.6'>Red</span> pushed the answer towards negative, "
    "<span class='w pos' style='--shade:0.6'>green</span> towards positive; the deeper, the stronger "
    "(each row's strongest word deepest, and faint when no word alone moved the score by 0.05). Hover a word for "
    "its numbers; under each text, its strongest words.")


def shaded_text(text: str, explanation: dict) -> str:
    """`text` as HTML with each explained word in a span shaded by its weight (red negative, green
    positive; class neg/pos, opacity in --shade, the numbers in its title), everything escaped. The
    offsets are Python string indices into `text`; a word whose offsets do not point at its own text
    (not this text's explanation) makes the whole text plain."""
    words = sorted(explanation.get("words") or [], key=lambda w: w["start"])
    if any(text[w["start"]:w["end"]] != w["text"] for w in words):
        return _e(text)
    scale = max([abs(w["weight"]) for w in words] + [SHADE_FLOOR])
    label = explanation.get("label")  # the model's own label (of 7 when its answers were collapsed to 3)
    out, at = [], 0
    for w in words:
        if w["start"] < at:  # overlapping units (pairs of words): the first one keeps its characters
            continue
        side = "neg" if w["weight"] < 0 else "pos"
        shade = SHADE_MAX * abs(w["weight"]) / scale
        title = (f"weight {w['weight']:+.3f} (score with the word minus without it); p({label}) "
                 f"{w['label_weight']:+.3f}; without it: {w['label_without']}")
        out.append(_e(text[at:w["start"]]))
        out.append(f"<span class='w {side}' style='--shade:{shade:.3f}' data-weight='{w['weight']:.4f}' "
                   f"title='{_e(title)}'>{_e(w['text'])}</span>")
        at = w["end"]
    out.append(_e(text[at:]))
    return "".join(out)


def _error_text_cell(text: str, explanation: dict | None) -> str:
    """An error's text cell: shaded with its strongest words under it when explained, plain with the
    reason when it could not be, plain alone when explanations were not asked for."""
    if explanation is None:
        return _e(text)
    if "error" in explanation:
        reason = explanation["error"].get("message") or "no reason given"
        return f"{_e(text)}<div class='why not-explained'>Not explained: {_e(reason)}</div>"
    from ..engine.occlusion import strongest_text

    return (f"{shaded_text(text, explanation)}<div class='why'>strongest: "
            f"{_e(strongest_text(explanation.get('words') or []) or 'none')}</div>")


def report_html(evaluation: Evaluation) -> str:
    name = evaluation.request.input_path.name
    parts = report_head(f"FinSent Local evaluation: {name}")
    parts.append(f"<h1>How right are the labels? <small>{_e(name)}</small></h1>")
    parts += evaluation_sections(evaluation)
    parts.append(REPORT_FOOT)
    return "\n".join(parts) + "\n"


def evaluation_sections(evaluation: Evaluation, level: int = 2) -> list[str]:
    """One evaluation's part of a report: what was read, the metrics, each model's classes and figures,
    the comparisons and the most confident errors, under headings of `level` (2: second-level headings)."""
    h, end = f"<h{level}>", f"</h{level}>"
    runs = evaluation.runs
    parts = [
        f'<p class="note">{len(evaluation.texts):,} rows evaluated; gold labels read as '
        f"<strong>{_e(evaluation.gold.convention)}</strong> ({_e(evaluation.gold.source)}).",
    ]
    for reason, rows in evaluation.skipped.items():
        parts.append(f" {rows:,} {'row' if rows == 1 else 'rows'} skipped: {_e(reason)}.")
    if evaluation.collapsed:
        parts.append(" " + COLLAPSE_NOTE)
    parts.append(" Intervals: 95% bootstrap, seeded.</p>")

    parts.append(f"{h}Metrics{end}<table><thead><tr><th>model</th><th class='n'>accuracy</th><th class='n'>95%</th>"
                 "<th class='n'>macro F1</th><th class='n'>weighted F1</th><th class='n'>95%</th>"
                 "<th class='n'>ECE</th><th class='n'>texts/s</th></tr></thead><tbody>")
    for run, m in zip(runs, evaluation.metrics):
        parts.append(f"<tr><td>{_e(run.name)}</td><td class='n'>{_pct(m['accuracy'])}</td>"
                     f"<td class='n'>{_interval(m['accuracy_95'])}</td><td class='n'>{_pct(m['macro_f1'])}</td>"
                     f"<td class='n'>{_pct(m['weighted_f1'])}</td><td class='n'>{_interval(m['weighted_f1_95'])}</td>"
                     f"<td class='n'>{m['calibration']['ece']:.3f}</td><td class='n'>{run.texts_per_s:,.1f}</td></tr>")
    parts.append("</tbody></table>")
    for run, m in zip(runs, evaluation.metrics):
        if _absent(m):
            parts.append(f"<p class='note'>{_e(run.name)}: {_e(_macro_f1_note(m))}.</p>")

    for run, m in zip(runs, evaluation.metrics):
        parts.append(f"{h}{_e(run.name)}{end}<table><thead><tr><th>label</th><th class='n'>precision</th>"
                     "<th class='n'>recall</th><th class='n'>F1</th><th class='n'>support</th></tr></thead><tbody>")
        for label, c in m["per_class"].items():
            if c["absent"]:
                parts.append(f"<tr class='absent'><td>{_e(label)}</td><td class='n' colspan='3'>absent (in neither the "
                             "gold labels nor the predictions)</td><td class='n'>0</td></tr>")
                continue
            parts.append(f"<tr><td>{_e(label)}</td><td class='n'>{_pct(c['precision'])}</td>"
                         f"<td class='n'>{_pct(c['recall'])}</td><td class='n'>{_pct(c['f1'])}</td>"
                         f"<td class='n'>{c['support']:,}</td></tr>")
        parts.append("</tbody></table><div class='figures'>")
        parts.append(f"<figure class='confusion'>{confusion_svg(m, 'Confusion matrix')}</figure>")
        parts.append(f"<figure class='reliability'>{reliability_svg(m, 'Reliability')}</figure></div>")

    if evaluation.comparisons:
        parts.append(f"{h}Against {_e(runs[0].name)}{end}<table><thead><tr><th>model</th>"
                     "<th class='n'>label agreement</th><th class='n'>mean |&Delta;p|</th><th class='n'>max |&Delta;p|</th>"
                     "<th class='n'>mean KL</th><th class='n'>accuracy difference</th><th class='n'>95%</th>"
                     "</tr></thead><tbody>")
        for run, c in zip(runs[1:], evaluation.comparisons):
            parts.append(f"<tr><td>{_e(run.name)}</td><td class='n'>{_pct(c['agreement'])}</td>"
                         f"<td class='n'>{c['mean_abs_dp']:.4f}</td><td class='n'>{c['max_abs_dp']:.4f}</td>"
                         f"<td class='n'>{c['mean_kl']:.5f}</td><td class='n'>{c['accuracy_difference'] * 100:+.1f} pts</td>"
                         f"<td class='n'>{_interval(c['accuracy_difference_95'])}</td></tr>")
        parts.append("</tbody></table>")

    names = evaluation.label_names
    explained = evaluation.error_explanations or [None] * len(runs)
    for run, errors, explanations in zip(runs, evaluation.confident_errors, explained):
        parts.append(f"{h}The {len(errors)} most confident errors of {_e(run.name)}{end}")
        if not errors:
            parts.append("<p class='note'>None: every row is right.</p>")
            continue
        if explanations is not None:
            parts.append(f"<p class='note legend'>{EXPLAIN_LEGEND}</p>")
        parts.append("<table><thead><tr><th class='n'>row</th><th>text</th><th>gold</th><th>predicted</th>"
                     "<th class='n'>probability</th></tr></thead><tbody>")
        for i in errors:
            predicted = run.predictions.labels[i]
            cell = _error_text_cell(evaluation.texts[i], None if explanations is None else
                                    explanations.get(i, {"error": {"message": "not explained"}}))
            parts.append(f"<tr><td class='n'>{evaluation.row_numbers[i]:,}</td><td class='text'>{cell}"
                         f"</td><td>{_e(names[evaluation.gold_index[i]])}</td><td>{_e(names[predicted])}</td>"
                         f"<td class='n'>{_pct(run.predictions.probs[i, predicted])}</td></tr>")
        parts.append("</tbody></table>")
    return parts


# -- JSON, predictions, summary ----------------------------------------------------------------------------------
def metrics_json(evaluation: Evaluation) -> dict:
    request = evaluation.request
    return {
        "input": str(request.input_path),
        "gold": {"convention": evaluation.gold.convention, "source": evaluation.gold.source,
                 "scheme": evaluation.gold.scheme},
        "scheme_asked": request.scheme,
        "collapsed_7_to_3": evaluation.collapsed,
        "rows_evaluated": len(evaluation.texts),
        "rows_skipped": evaluation.skipped,
        "seed": request.seed,
        "models": [{"name": run.name, "model": str(run.model_path), "prompt": run.prompt,
                    "texts_per_s": run.texts_per_s, **m} for run, m in zip(evaluation.runs, evaluation.metrics)],
        "against_first": [{"name": run.name, **c} for run, c in zip(evaluation.runs[1:], evaluation.comparisons)],
    }


def prediction_column_tags(evaluation: Evaluation) -> list[str]:
    """Each model's prefix for its columns in the predictions file: none for one model; with several, the
    model's own name (the file name without .gguf, and the prompt when several are compared), in the
    characters a column name keeps everywhere, so `Llama-FinSent-S-Q4_K_M_predicted` says whose it is.
    Two runs whose names read the same get their position added."""
    if len(evaluation.runs) == 1:
        return [""]
    tags = []
    for run in evaluation.runs:
        name = Path(run.model_path).name.removesuffix(".gguf")
        if len({r.prompt for r in evaluation.runs}) > 1:
            name += f"_{run.prompt}"
        tags.append(re.sub(r"[^A-Za-z0-9.\-]+", "_", name).strip("_") + "_")
    counts = Counter(tags)
    return [f"{tag}{k + 1}_" if counts[tag] > 1 else tag for k, tag in enumerate(tags)]


def prediction_header(evaluation: Evaluation) -> list[str]:
    """The predictions file's columns: row, text, gold, then per model its label (in the gold labels' set),
    its own label when collapsed, and the probability of each gold label."""
    header = ["row", "text", "gold"]
    for tag in prediction_column_tags(evaluation):
        header += [f"{tag}predicted"] + ([f"{tag}model_label"] if evaluation.collapsed else [])
        header += [probability_column(name, tag) for name in evaluation.label_names]
    return header


def prediction_rows(evaluation: Evaluation):
    """The predictions file's rows, one per evaluated row, in prediction_header's columns."""
    names = evaluation.label_names
    for i, text in enumerate(evaluation.texts):
        row = [evaluation.row_numbers[i], text, names[evaluation.gold_index[i]]]
        for run in evaluation.runs:
            row.append(names[run.predictions.labels[i]])
            if evaluation.collapsed:
                row.append(run.model_labels[i])
            row += [f"{p:.6f}" for p in run.predictions.probs[i]]
        yield row


def write_csv_atomically(path: Path, header: list[str], rows) -> None:
    """A CSV file that appears whole or not at all (written aside, then renamed)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        replace_durably(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_predictions(evaluation: Evaluation, path: Path) -> None:
    """One CSV row per evaluated row (prediction_header's columns)."""
    write_csv_atomically(path, prediction_header(evaluation), prediction_rows(evaluation))


def write_report(evaluation: Evaluation, path: Path) -> None:
    write_text_atomically(path, report_html(evaluation), mode=0o644)


def write_metrics_json(evaluation: Evaluation, path: Path) -> None:
    write_text_atomically(path, json.dumps(metrics_json(evaluation), indent=2) + "\n", mode=0o644)


def summary_lines(evaluation: Evaluation) -> list[str]:
    """The terminal's compact table, then what the reader must know (skipped rows, collapse)."""
    width = max(len(run.name) for run in evaluation.runs)
    lines = [f"{'model':<{width}}  accuracy (95%)          weighted F1 (95%)       macro F1   ECE"]
    for run, m in zip(evaluation.runs, evaluation.metrics):
        lines.append(f"{run.name:<{width}}  {_pct(m['accuracy']):>6} ({_interval(m['accuracy_95']):>12})  "
                     f"{_pct(m['weighted_f1']):>6} ({_interval(m['weighted_f1_95']):>12})  "
                     f"{_pct(m['macro_f1']):>7}  {m['calibration']['ece']:.3f}")
    for run, c in zip(evaluation.runs[1:], evaluation.comparisons):
        lines.append(f"{run.name} against {evaluation.runs[0].name}: {_pct(c['agreement'])} of labels agree, "
                     f"mean |dp| {c['mean_abs_dp']:.4f}, accuracy {c['accuracy_difference'] * 100:+.1f} pts "
                     f"(95%: {c['accuracy_difference_95'][0] * 100:+.1f} to {c['accuracy_difference_95'][1] * 100:+.1f})")
    for run, m in zip(evaluation.runs, evaluation.metrics):
        if _absent(m):
            lines.append((f"{run.name}: " if len(evaluation.runs) > 1 else "") + _macro_f1_note(m))
    lines.append(f"{len(evaluation.texts):,} rows evaluated; gold labels read as {evaluation.gold.convention}"
                 + ("; 7-label predictions collapsed to 3 (probabilities summed by sign, the label the largest sum)"
                    if evaluation.collapsed else ""))
    for reason, rows in evaluation.skipped.items():
        lines.append(f"{rows:,} {'row' if rows == 1 else 'rows'} skipped: {reason}")
    return lines
