"""Documents for the long-document tests: sentences whose labels the trained fixture knows, and a
100,000-character earnings-call transcript made of them (speaker names, decimals, amounts)."""

from __future__ import annotations

POSITIVE = ["Nakatomi Trading raises full-year guidance.", "Virtucon shares soar 40% after record profit."]
NEGATIVE = ["Dunder Mifflin files for bankruptcy protection.", "Sterling Cooper cuts full-year guidance."]
NEUTRAL = ["Bluth Company schedules its annual general meeting."]

TRANSCRIPT_TURNS = 1200  # two sentences a turn: 2,400 sentences, just over 100,000 characters


def transcript(turns: int = TRANSCRIPT_TURNS) -> str:
    lines = []
    for i in range(turns):
        speaker = "Jane Doe -- Analyst" if i % 2 else "John Smith -- CEO"
        lines.append(f"{speaker}: {POSITIVE[i % 2] if i % 3 else NEGATIVE[i % 2]} Unit {i} sales were EUR {i}.5 mn.")
    return "\n".join(lines)
