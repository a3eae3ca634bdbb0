"""What tuning changed elsewhere: the base's and the tuned model's labels on the held-out reference texts
(texts never trained on), compared. Agreement (the share of texts whose label did not change), accuracy
when the texts carry gold labels, the base label -> tuned label table of the changes, and the changed
texts themselves, to read. Plain data in, plain data and text out: the terminal lines, the report's
section and the manifest's entry all come from `measure`'s dict.
"""

from __future__ import annotations

import html
from collections import Counter

# The share of held-out reference texts that must keep the base's label, or the tuned model is not
# written (--min-agreement; bench/RESULTS.md, "Keeping what the model knew").
MIN_AGREEMENT = 0.9
CHANGED_SHOWN = 50  # changed texts kept in the manifest and the report (all are counted)
CHANGED_IN_TERMINAL = 5


def measure(texts: list[str], base_labels: list[str], tuned_labels: list[str],
            golds: list[str | None] | None = None) -> dict:
    n = len(texts)
    same = sum(b == t for b, t in zip(base_labels, tuned_labels))
    changes = Counter((b, t) for b, t in zip(base_labels, tuned_labels) if b != t)
    result = {
        "texts": n,
        "agreement": same / n if n else 1.0,
        "changed_count": n - same,
        "changes": [{"base": b, "tuned": t, "count": c} for (b, t), c in sorted(changes.items(), key=lambda x: -x[1])],
        "changed": [{"text": text, "base": b, "tuned": t, **({"gold": golds[i]} if golds else {})}
                    for i, (text, b, t) in enumerate(zip(texts, base_labels, tuned_labels)) if b != t][:CHANGED_SHOWN],
    }
    if golds and any(g is not None for g in golds):
        rows = [i for i, g in enumerate(golds) if g is not None]
        result["gold_texts"] = len(rows)
        result["base_accuracy"] = sum(base_labels[i] == golds[i] for i in rows) / len(rows)
        result["tuned_accuracy"] = sum(tuned_labels[i] == golds[i] for i in rows) / len(rows)
    return result


def summary_lines(figures: dict, min_agreement: float) -> list[str]:
    """The terminal's lines: agreement (against the bar), accuracy, the changes, a few changed texts."""
    verdict = "below" if figures["agreement"] < min_agreement else "at or above"
    lines = [f"Reference texts held out ({figures['texts']:,}): the tuned model keeps the base's label on "
             f"{figures['agreement']:.1%} ({figures['texts'] - figures['changed_count']:,}), {verdict} "
             f"--min-agreement {min_agreement:.0%}"]
    if "base_accuracy" in figures:
        lines.append(f"  accuracy on their gold labels ({figures['gold_texts']:,}): base {figures['base_accuracy']:.1%}, "
                     f"tuned {figures['tuned_accuracy']:.1%} "
                     f"({(figures['tuned_accuracy'] - figures['base_accuracy']) * 100:+.1f} pts)")
    if figures["changes"]:
        lines.append("  changed: " + ", ".join(f"{c['base']} -> {c['tuned']} {c['count']}" for c in figures["changes"]))
        for row in figures["changed"][:CHANGED_IN_TERMINAL]:
            text = row["text"] if len(row["text"]) <= 70 else row["text"][:67] + "..."
            lines.append(f"    {row['base']} -> {row['tuned']}: {text}")
    return lines


def not_measured_line(why: str) -> str:
    return (f"Forgetting is neither measured nor held back: {why}. Give --reference FILE (texts like those you label "
            "every day, in any format finsent classify reads) to keep and measure what the model knew.")


def report_section(figures: dict | None, min_agreement: float, why_not: str | None = None) -> str:
    """The report's section (HTML), every text escaped."""
    e = html.escape
    if figures is None:
        return f"<h2>What the model knew</h2><p>{e(not_measured_line(why_not or 'no reference texts'))}</p>"
    parts = ["<h2>What the model knew: reference texts held out</h2>",
             f"<p>The tuned model keeps the base's label on <strong>{figures['agreement']:.1%}</strong> of "
             f"{figures['texts']:,} reference texts it was not trained on ({figures['changed_count']:,} changed); "
             f"--min-agreement is {min_agreement:.0%}.</p>"]
    if "base_accuracy" in figures:
        parts.append(f"<p>Accuracy on their gold labels ({figures['gold_texts']:,} texts): base "
                     f"{figures['base_accuracy']:.1%}, tuned {figures['tuned_accuracy']:.1%}.</p>")
    if figures["changes"]:
        parts.append("<table><thead><tr><th>base label</th><th>tuned label</th><th>texts</th></tr></thead><tbody>")
        parts += [f"<tr><td>{e(c['base'])}</td><td>{e(c['tuned'])}</td><td>{c['count']}</td></tr>"
                  for c in figures["changes"]]
        parts.append("</tbody></table>")
        gold = any("gold" in row for row in figures["changed"])
        parts.append(f"<h3>The texts whose label changed{' (first ' + str(CHANGED_SHOWN) + ')' if figures['changed_count'] > CHANGED_SHOWN else ''}</h3>")
        parts.append("<table><thead><tr><th>text</th><th>base</th><th>tuned</th>" + ("<th>gold</th>" if gold else "")
                     + "</tr></thead><tbody>")
        parts += [f"<tr><td>{e(row['text'])}</td><td>{e(row['base'])}</td><td>{e(row['tuned'])}</td>"
                  + (f"<td>{e(row.get('gold') or '')}</td>" if gold else "") + "</tr>" for row in figures["changed"]]
        parts.append("</tbody></table>")
    return "\n".join(parts)
