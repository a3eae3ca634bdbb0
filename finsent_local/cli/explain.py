"""`finsent explain`: which words moved a text's label. Each word's weight is what POST /v1/explain gives
(occlusion: the text scored again without that word), through the same classification service, checks
and messages as the server; shown with the words coloured in a terminal, plain when piped, or as JSON."""

from __future__ import annotations

import os
import sys
import unicodedata

import click

from .classify import _line_row, _not_utf8, _open_service, _stdin_chunks
from .common import PROMPT_HELP, SCHEME_HELP, UserError, plural, require_engine
from ..engine.labels import SCHEMES
from ..engine.occlusion import UNIT_KINDS
from ..limits import DEFAULT_LIMITS

# A weight this small (on the -1..+1 score scale) is noise, not a push: left uncoloured.
NEGLIGIBLE = 0.01
WORD_COLUMN_MAX = 40  # the strongest-words table cuts longer units (phrases) to this many characters


EXPLAIN_HELP = f"""Show which words moved each TEXT's label (or each line of standard input, also with TEXT "-"),
with the local model (no server).

\b
finsent explain "Acme cuts full-year guidance after a plant fire"
finsent explain --scheme 3 --unit phrase "Acme cuts full-year guidance"
cat headlines.txt | finsent explain --json > why.jsonl

A word's weight is how the score (-1 to +1) changes when the word is taken out: red words pushed towards
negative, green ones towards positive, brighter for stronger. Under the text: the strongest words with their
weight, label_weight (how much the word raised the label's probability) and the label the text gets without
the word. Costs about one classification per word (cached like labels); at most
{DEFAULT_LIMITS.max_explain_words} words per text, as for POST /v1/explain.
"""


@click.command("explain", help=EXPLAIN_HELP, epilog="Docs: docs/explain.md")
@click.argument("texts", nargs=-1)
@click.option("--scheme", type=click.Choice(list(SCHEMES)), default=SCHEMES[0], show_default=True, help=SCHEME_HELP)
@click.option("--unit", type=click.Choice(list(UNIT_KINDS)), default="word", show_default=True,
              help="Weigh single words, or pairs of adjacent words (phrase) where one word alone says little; "
                   "pairs overlap, so they are listed, not coloured in the text.")
@click.option("--top", type=click.IntRange(min=0), default=5, show_default=True,
              help="How many of the strongest words to list under the text (0: none).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per text, as POST /v1/explain answers: text, label, score, probs, truncated, "
                   "cached, unit, words (start, end, text, weight, label_weight, label_without).")
@click.option("--color", "color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Colour the words: auto, when standard output is a terminal and NO_COLOR is not set "
                   "(FORCE_COLOR=1 forces it, e.g. through `less -R`).")
@click.option("--model", help="GGUF file (default as for `finsent serve`).")
@click.option("--prompt", "prompt_preset", type=click.Choice(["card", "train"]), default="card", show_default=True,
              help=PROMPT_HELP)
@click.option("--threads", type=int, default=0, help="CPU threads for llama.cpp (default: all cores).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the persistent result cache.")
def explain_command(texts, scheme, unit, top, as_json, color, model, prompt_preset, threads, no_cache):
    require_engine()
    from_stdin = not texts or texts == ("-",)
    if from_stdin and sys.stdin.isatty():
        raise UserError('give a text to explain, e.g. finsent explain "Acme cuts guidance", or pipe lines on '
                        "standard input")
    colour = _use_colour(color)
    _, service = _open_service(model, prompt_preset, threads, no_cache)
    out = sys.stdout
    if hasattr(out, "reconfigure"):  # a text with bytes that are not UTF-8 is echoed escaped, not a crash
        out.reconfigure(errors="backslashreplace")
    rows = failed = 0
    try:
        chunks = _stdin_chunks() if from_stdin else [list(texts)]
        for chunk in chunks:
            for text in chunk:
                rows += 1
                result = _explain_one(service, text, scheme, unit)
                if "error" in result:
                    failed += 1
                    if as_json:
                        click.echo(_line_row(text, result, True))
                    else:
                        where = f"line {rows}: " if from_stdin else f"text {rows}: " if len(texts) > 1 else ""
                        click.echo(f"Error: {where}{result['error']['message']}", err=True)
                elif as_json:
                    click.echo(_line_row(text, result, True))
                else:
                    click.echo(("\n" if rows - failed > 1 else "") + _human(text, result, top, colour), color=colour)
                out.flush()
    finally:
        service.close()
    if failed:
        if rows > 1:
            click.echo(f"{failed} of {plural(rows, 'text')} could not be explained", err=True)
        sys.exit(1)


def _explain_one(service, text: str, scheme: str, unit: str) -> dict:
    """The service's explanation of one text, or {"error": {code, message}}: the text is checked first
    with the server's own rules and words (empty, too long, too many words for one explain request)."""
    from ..engine.service import ItemError

    problem = _not_utf8(text)
    if problem is not None:
        return problem
    try:
        service.validate(text)
        service.check_explain_words([text], unit)
    except ItemError as e:
        return {"error": {"code": e.code, "message": str(e)}}
    return service.explain([text], scheme, unit)[0]


def _use_colour(choice: str) -> bool:
    """--color always/never; auto: a terminal, unless NO_COLOR (no-color.org) or TERM=dumb; FORCE_COLOR
    (not 0) colours a pipe too."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR", "") not in ("", "0", "false"):
        return True
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


# Bidirectional overrides and isolates: shown as escapes, so a text cannot reorder what is printed around it.
_BIDI_CONTROLS = {*range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def _acted_on(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Zl", "Zp") or ord(c) in _BIDI_CONTROLS


def shown(text: str) -> str:
    """The text as characters to look at: control characters (an escape sequence, a carriage return, a
    newline in an argument), line separators and bidi controls written as \\x1b, \\n, \\u202e: never acted
    on by the terminal. Other characters (no-break spaces, emoji joiners) are kept."""
    return "".join(c.encode("unicode_escape").decode("ascii") if _acted_on(c) else c for c in text)


def _style(text: str, weight: float, strongest: float, colour: bool) -> str:
    """Red for a word that pushed towards negative, green towards positive; bold and bright for the
    strongest (at least half the text's largest weight), plain colour for clear ones, dim for faint ones."""
    size = abs(weight)
    if not colour or size < NEGLIGIBLE:
        return text
    share = size / strongest
    hue = "green" if weight > 0 else "red"
    if share >= 0.5:
        return click.style(text, fg=f"bright_{hue}", bold=True)
    return click.style(text, fg=hue, dim=share < 0.15)


def _coloured_text(text: str, words: list[dict], colour: bool) -> str:
    """The exact text, each word styled by its weight (offsets are code points into the text)."""
    strongest = max((abs(w["weight"]) for w in words), default=0.0)
    parts, at = [], 0
    for word in sorted(words, key=lambda w: w["start"]):
        if word["start"] < at:  # phrases overlap (pairs of adjacent words): each character is styled once
            continue
        parts.append(shown(text[at:word["start"]]))
        parts.append(_style(shown(text[word["start"]:word["end"]]), word["weight"], strongest, colour))
        at = word["end"]
    parts.append(shown(text[at:]))
    return "".join(parts)


def _human(text: str, result: dict, top: int, colour: bool) -> str:
    """The label and score, the text with its words coloured, then the `top` strongest words' table."""
    from ..engine.occlusion import strongest

    words = result["words"]
    head = f"{result['label']}  {result['score']:+.3f}"
    if result.get("truncated"):
        head += "  [truncated: the words after the model's context have no weight]"
    lines = [click.style(head, bold=True) if colour else head,
             _coloured_text(text, [] if result["unit"] == "phrase" else words, colour)]
    listed = strongest(words, top)
    if not words:
        lines.append("  (no words to weigh)")
    elif listed:
        names = [shown(w["text"]) for w in listed]
        names = [n if len(n) <= WORD_COLUMN_MAX else n[: WORD_COLUMN_MAX - 3] + "..." for n in names]
        width = max(len(result["unit"]), *(len(n) for n in names))
        lines.append(f"  {result['unit']:<{width}}  {'weight':>7}  {'label_weight':>12}  label without it")
        biggest = max(abs(w["weight"]) for w in words)
        for name, w in zip(names, listed):
            weight = _style(f"{w['weight']:+7.3f}", w["weight"], biggest, colour)
            lines.append(f"  {name:<{width}}  {weight}  {w['label_weight']:+12.3f}  {w['label_without']}")
    return "\n".join(lines)

