"""Label sets and prompt templates: the single source of truth.

The converter writes `finsent_spec()` into the GGUF metadata (key `FINSENT_SPEC_KEY`) and the
engine reads it back from the file, so a model file carries the prompts it was meant to be used with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

FINSENT_SPEC_KEY = "finsent.spec"
# Bump when a template or label set changes: cached results are keyed by it.
PROMPT_VERSION = 1

LABELS_7 = (
    "strong negative",
    "moderately negative",
    "mildly negative",
    "neutral",
    "mildly positive",
    "moderately positive",
    "strong positive",
)
LABELS_3 = ("negative", "neutral", "positive")

# Position of each label on a signed scale; the reported score is the probability-weighted mean.
LABEL_VALUES_7 = (-1.0, -2 / 3, -1 / 3, 0.0, 1 / 3, 2 / 3, 1.0)
LABEL_VALUES_3 = (-1.0, 0.0, 1.0)

SCHEMES = ("7", "3")
DEFAULT_PROMPT_PRESET = "card"


# What the instruction asks about. The model was trained on FinGPT's instructions, which ask about "this
# news" or, for tweets (FinGPT's TFNS and FiQA-SA benchmarks), "this tweet": instruction_about() swaps it.
INSTRUCTION_SUBJECT = "news"
INSTRUCTION_SUBJECTS = ("news", "tweet")


def _instruction(labels: tuple[str, ...]) -> str:
    return f"What is the sentiment of this {INSTRUCTION_SUBJECT}? Please choose an answer from {{" + "/".join(labels) + "}."


# `card`: exactly the model card's prompt. `train`: the layout the author's fine-tuning notebook used.
def _templates(labels: tuple[str, ...]) -> dict[str, str]:
    instruction = _instruction(labels)
    return {
        "card": "Instruction: " + instruction + "\nNews: {text}\nAnswer:",
        "train": "Instruction: " + instruction + "\nInput: {text}\nAnswer:",
    }


@dataclass(frozen=True)
class LabelScheme:
    """One way of labelling a text: its labels, their signed values and its prompt templates."""

    name: str
    labels: tuple[str, ...]
    values: tuple[float, ...]
    templates: dict[str, str]

    def prompt(self, text: str, preset: str = DEFAULT_PROMPT_PRESET) -> str:
        # str.replace, not str.format: the text may contain braces.
        return self.templates[preset].replace("{text}", text)

    def prompt_prefix(self, preset: str = DEFAULT_PROMPT_PRESET) -> str:
        """The part of the prompt that comes before the text (the same for every text)."""
        return self.templates[preset].split("{text}", 1)[0]

    def instruction_about(self, subject: str) -> LabelScheme:
        """The same scheme with its instruction asking about `subject` ("this tweet?" for "this news?")."""
        if subject == INSTRUCTION_SUBJECT:
            return self
        if subject not in INSTRUCTION_SUBJECTS:
            raise ValueError(f"unknown instruction subject {subject!r}; use one of {', '.join(INSTRUCTION_SUBJECTS)}")
        asked, wanted = f"sentiment of this {INSTRUCTION_SUBJECT}?", f"sentiment of this {subject}?"
        if any(asked not in t for t in self.templates.values()):  # a model file's own, different prompts
            raise ValueError(f"the model's {self.name}-label prompts do not ask {asked!r}: cannot ask about a {subject}")
        return LabelScheme(self.name, self.labels, self.values,
                           {preset: t.replace(asked, wanted) for preset, t in self.templates.items()})

    @staticmethod
    def continuation(label: str) -> str:
        """How a label follows "Answer:" in the model's output."""
        return " " + label


def default_schemes() -> dict[str, LabelScheme]:
    return {
        "7": LabelScheme("7", LABELS_7, LABEL_VALUES_7, _templates(LABELS_7)),
        "3": LabelScheme("3", LABELS_3, LABEL_VALUES_3, _templates(LABELS_3)),
    }


def finsent_spec() -> str:
    """The JSON document stored in the GGUF under FINSENT_SPEC_KEY."""
    schemes = default_schemes()
    return json.dumps(
        {
            "prompt_version": PROMPT_VERSION,
            "default_prompt": DEFAULT_PROMPT_PRESET,
            "schemes": {
                name: {"labels": list(s.labels), "values": list(s.values), "templates": s.templates}
                for name, s in schemes.items()
            },
        },
        sort_keys=True,
    )


def schemes_from_spec(spec_json: str | None) -> tuple[dict[str, LabelScheme], int]:
    """Label schemes and prompt version from a stored spec; the built-in ones when there is none."""
    if not spec_json:
        return default_schemes(), PROMPT_VERSION
    spec = json.loads(spec_json)
    schemes = {
        name: LabelScheme(name, tuple(s["labels"]), tuple(float(v) for v in s["values"]), dict(s["templates"]))
        for name, s in spec["schemes"].items()
    }
    return schemes, int(spec.get("prompt_version", PROMPT_VERSION))
