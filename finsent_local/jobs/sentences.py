"""Sentence segmentation that survives financial text, with offsets into the exact input characters.

The sentence splitter is pysbd's (rule-based, "Golden Rules" for abbreviations, numbers, quotes),
chosen by measurement on the test set of hand-marked financial paragraphs (tests/segmentation_cases.py,
bench/segmentation_bench.py, figures in bench/RESULTS.md) against blingfire and the naive split, and
because it is pure Python: blingfire ships x86-64 binaries only (no Apple Silicon, no ARM Linux) and
99 MB of tokenizer models. pysbd's time grows faster than the text (100,000 characters in one piece:
10 s), so it is run over windows of WINDOW_CHARS: all sentences of a window but its last are kept, and
the next window starts where that last sentence starts, which gives what one run over the whole text
gives for any sentence shorter than a window, in time that grows with the text.

Added here, because the same measurement showed them (pysbd alone: boundary F1 0.94; with these 0.99),
or issue 31 did (F1 0.994 with the additions to 2 and 3):
1. Line structure. A text is first cut into blocks at the line breaks that end a unit: a blank line;
   before a line that starts a bullet, a numbered item, "Item 7." or a speaker's turn ("Jane Doe --
   Analyst:"); after an "Item 7. ..." heading, a bullet line that is not wrapped on, a line ending in
   ":", and a line of at most HEADING_CHARS without closing punctuation (a heading) unless the next line
   is indented or starts in lower case. Other line breaks (text wrapped at a width) stay inside their
   sentence, and pysbd sees them as spaces.
2. False ends inside a block are joined again: a piece that does not end in closing punctuation
   ("Sections 10(b)"), one that ends in "Item 7.", "No.", "approx." or "tel.", and "a.m."/"p.m." before
   a time zone ("8:30 a.m. ET"), and a company's "Inc." before the rest of a title ("Virtucon Inc. Q3 2026
   Earnings Call Transcript"). pysbd's split before an item marker inside a line ("Highlights: | 1.)
   Revenue rose | 2.) Margins fell") is kept when the item starts with a capital or a number.
3. "U.S." and "U.K." end a sentence before a word that starts sentences and never goes on with a name
   ("in the U.S. Sales rose", not "U.S. Steel"): _STARTER_WORDS, _STARTER_SUBJECTS.

Every span is trimmed of surrounding whitespace; text[span.start:span.end] is the sentence exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    start: int
    end: int


# A line that begins something of its own: a bullet, a numbered or lettered item, an "Item 7." heading,
# or a speaker's turn in a call transcript ("Jane Doe -- Analyst:", "Operator:", "Q:").
_STARTS_ITEM = re.compile(
    r"""[ \t]*(?:
        [-*\u2022\u2023\u25aa\u25cf\u2013\u2014]\s           # - * • ▪ ● – — bullets
      | \(?(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})(?:\.\)|[.)])\s  # 1. 2) 1.) (a) iv.
      | Item\s+\d+[A-Z]?\.                                   # Item 1A.
      | [A-Z][\w.'\-]*(?:\s+[A-Z][\w.'\-]*){0,4}\s*(?:--|\u2013|\u2014|,)\s*[A-Z][\w&/ .\-]{1,60}:\s  # Name -- Role:
      | (?:Operator|Q|A|Question|Answer|Moderator):\s
    )""", re.VERBOSE)
_ITEM_HEADING = re.compile(r"[ \t]*Item\s+\d+[A-Z]?\.")
_CONTINUES = re.compile(r"[ \t]|[a-z]")  # an indented or lower-case line goes on with the line before
_SENTENCE_END = re.compile(r"""[.!?\u2026]["'\u201d\u2019)\]]*$""")
HEADING_CHARS = 60  # a line this short without closing punctuation is a heading (wrapped text is wider)


def _ends_a_unit(body: str, next_line: str) -> bool:
    """Whether the line break after `body` ends a sentence whatever the words say (module docstring, 1)."""
    stripped = body.strip()
    if not stripped or not next_line.strip():  # a blank line on either side: a paragraph break
        return True
    if _STARTS_ITEM.match(next_line):  # a bullet, a numbered item, "Item 7.", a speaker's turn
        return True
    if _ITEM_HEADING.match(body) and not _SENTENCE_END.search(stripped):  # "Item 7. Management's Discussion ..."
        return True
    if _STARTS_ITEM.match(body) and not _CONTINUES.match(next_line):  # a bullet that is not wrapped on
        return True
    if stripped.endswith(":"):  # a lead-in: "For further information, please contact:"
        return True
    return len(stripped) <= HEADING_CHARS and not _SENTENCE_END.search(stripped) and not _CONTINUES.match(next_line)


def _blocks(text: str) -> list[tuple[int, int]]:
    """[start, end) pieces of `text` that no sentence crosses (see the module's docstring, 1)."""
    cuts = [0]
    lines = list(re.finditer(r"[^\n]*(?:\n|$)", text))
    for line, following in zip(lines, lines[1:]):
        if _ends_a_unit(line.group().rstrip(), following.group()):
            cuts.append(following.start())
    cuts.append(len(text))
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if text[a:b].strip()]


# Where pysbd ends a sentence but financial text does not: after an item number ("Item 7.", "No. 4"),
# "approx." and "tel." before a number, and "a.m."/"p.m." before a time zone.
_NOT_AN_END = re.compile(r"(?:\b(?:Item|No|Nos|Art|Sec|Fig|Vol|Para|approx|tel|Tel|ca)\.|\b(?:Item|Note)\s+\d+[A-Z]?\.)$")
_TIME_ZONE_NEXT = re.compile(r"(?:ET|EST|EDT|CT|CST|CDT|PT|PST|PDT|GMT|BST|CET|CEST|EET|EEST|UTC|JST|HKT|SGT)\b")
# A bullet or an item marker at the start of a piece pysbd cut inside a line ("Highlights: | 1.) Revenue
# rose | 2.) Margins fell"), followed by a capitalised word or a number: the item is a sentence of its
# own, as it is on a line of its own. A lower-case item runs on in its sentence ("We expect 1) higher
# revenue and 2) lower costs."), and a marker glued to the word before is a reference ("Sections 10|(b)").
_INLINE_ITEM = re.compile(r"""(?:[-*\u2022\u2023\u25aa\u25cf\u2013\u2014]|\(?(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})(?:\.\)|[.)]))
                              \s+["'\u201c\u2018]?[A-Z0-9$\u20ac\u00a3]""", re.VERBOSE)
# Words that start a sentence and never go on with a name before them: function words (pronouns,
# articles, conjunctions, prepositions, sentence adverbs) and the subjects that open most sentences of
# financial text. After "U.S."/"U.K." they tell a sentence's end from a name ("U.S. Steel", "U.S. Food
# and Drug Administration"), and after "Inc." a new sentence from the rest of a title.
_STARTER_WORDS = r"""(?:The|This|These|That|Those|There|It|Its|We|Our|Us|They|Their|He|She|His|Her|I|A|An
    |In|On|At|For|From|As|By|With|After|Before|During|While|Although|Though|Since|If|When|Because|But|And
    |Yet|So|However|Meanwhile|Also|Moreover|Furthermore|Additionally|Overall|Still|Instead|Nevertheless
    |Separately|Elsewhere|Both|Each|All|Most|Some|Many|Such)\b"""
# Subjects that may also head a name ("U.S. Sales and Marketing", "head of U.S. Sales, Jane Doe"): a
# sentence's only when a lower-case word other than and/or/of follows ("U.S. Sales rose").
_STARTER_SUBJECTS = r"""(?:Sales|Revenue|Revenues|Management|Shares|Analysts|Earnings|Profit|Profits|Margins
    |Demand|Prices|Costs|Growth|Results|Volumes|Orders)\s+(?!(?:and|or|of)\b)[a-z]"""
# pysbd never ends a sentence at "U.S." or "U.K." before a capitalised word: the rule above does, where
# that word is one of the starters (a name goes on with another word: "U.S. Steel", "U.S. District Court").
_COUNTRY_END = re.compile(r"\b(?:U\.S\.A|U\.S|U\.K|E\.U)\.\s+(?=" + _STARTER_WORDS + "|" + _STARTER_SUBJECTS + ")",
                          re.VERBOSE)
# pysbd ends a sentence at a company's "Inc." before a capitalised word; followed by a piece that does not
# end a sentence (no closing punctuation) and does not open with a starter, that piece is the rest of a
# title: "Virtucon Inc. | Q3 2026 Earnings Call Transcript".
_COMPANY_END = re.compile(r"\b(?:Inc|Corp|Ltd|Co|Cos|LLC|plc|PLC|S\.A|N\.V|A\.G|S\.p\.A)\.$")
_STARTS_SENTENCE = re.compile(_STARTER_WORDS + "|" + _STARTER_SUBJECTS, re.VERBOSE)


def _false_end(before: str, after: str) -> bool:
    """Whether pysbd's end of `before` (inside a block; both pieces as pysbd gave them, with their
    whitespace) is not the end of a sentence: it does not end in closing punctuation ("Sections 10(b) |
    and 20(a)") unless an item starts `after` (_INLINE_ITEM), or it ends in one of _NOT_AN_END's words, in
    "a.m." before a time zone, or in a company's "Inc." before the rest of a title (_COMPANY_END)."""
    ended, starting = before.rstrip(), after.strip()
    if _NOT_AN_END.search(ended):
        return True
    if not _SENTENCE_END.search(ended):
        return not (ended != before and _INLINE_ITEM.match(starting))
    if _COMPANY_END.search(ended) and not _SENTENCE_END.search(starting) and not _STARTS_SENTENCE.match(starting):
        return True
    return bool(re.search(r"\b[ap]\.m\.$", ended) and _TIME_ZONE_NEXT.match(starting))


def _country_cuts(piece: str) -> list[int]:
    """Offsets in `piece` where a sentence starts after "U.S."/"U.K." (see _COUNTRY_END)."""
    return [m.end() for m in _COUNTRY_END.finditer(piece)]


WINDOW_CHARS = 4_000


def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def _library_spans(block: str) -> list[tuple[int, int]]:
    """pysbd's sentences of `block`, window by window (see the module's docstring)."""
    if not block.strip():
        return []
    # The line breaks left inside a block are wrapping, not structure (see _blocks); pysbd would end a
    # sentence at each. A space in their place keeps every offset.
    block = block.replace("\r\n", " \n").replace("\n", " ").replace("\r", " ")
    segmenter = _segmenter()
    spans, start = [], 0
    while start < len(block):
        window = block[start : start + WINDOW_CHARS]
        pieces = [(start + p.start, start + p.end) for p in segmenter.segment(window) if p.end > p.start]
        if start + WINDOW_CHARS >= len(block) or len(pieces) < 2:
            if len(pieces) < 2 and start + WINDOW_CHARS < len(block):  # one sentence longer than a window
                pieces = [(start, start + WINDOW_CHARS)]
            spans += pieces
            start = pieces[-1][1] if pieces else len(block)
            continue
        spans += pieces[:-1]
        start = pieces[-1][0]
    return spans


def split_sentences(text: str) -> list[Span]:
    """The sentences of `text`, in order, as trimmed spans."""
    spans: list[Span] = []
    for start, end in _blocks(text):
        pieces = []
        for a, b in _library_spans(text[start:end]):
            cuts = [start + a, *(start + a + c for c in _country_cuts(text[start + a : start + b])), start + b]
            pieces += [Span(x, y) for x, y in zip(cuts, cuts[1:])]
        for piece in pieces:
            if spans and spans[-1].start >= start and _false_end(text[spans[-1].start:spans[-1].end],
                                                                 text[piece.start:piece.end]):
                spans[-1] = Span(spans[-1].start, piece.end)  # "approx." + "$1.6 billion."
            else:
                spans.append(piece)
    return [_trimmed(text, s) for s in spans if text[s.start:s.end].strip()]


def _trimmed(text: str, span: Span) -> Span:
    start, end = span.start, span.end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end)
