"""The Excel functions' definitions: names, arguments and help texts, in one place.

Both front ends read them: the xlwings UDFs (finsent_udf.py: Windows desktop Excel) take their help
texts from here, and the Office add-in's `functions.json` (Excel for Mac, the web and Windows) is
generated from them, so the two cannot drift apart. What the functions compute lives in cells.py
(Python) and addin/functions.js (JavaScript); tests check both give the same cells.
"""

from __future__ import annotations

from dataclasses import dataclass

# Office add-in functions always carry a namespace: =LOCAL.FINSENT(A2,"7") there, =FINSENT(A2,"7") in xlwings.
ADDIN_NAMESPACE = "LOCAL"
# =FINSENT.WHY lists this many of a text's strongest words (occlusion.strongest_text), in both front ends.
WHY_WORDS = 3


@dataclass(frozen=True)
class Argument:
    name: str
    description: str
    optional: bool = False
    range_ok: bool = False  # a cell or a whole range (an array of cells)


@dataclass(frozen=True)
class ExcelFunction:
    name: str  # as the add-in registers it (its id and name; Excel shows =LOCAL.<name>)
    description: str
    result: str  # "text" or "number" or "any": what a cell of the result holds
    arguments: tuple[Argument, ...]

    @property
    def xlwings_name(self) -> str:
        """The name in xlwings (Windows desktop Excel). xlwings declares each function to Excel as a VBA
        Function named after the Python function (udfs.generate_vba_wrapper writes "Function <name>(" and
        registers it with MacroOptions): VBA identifiers are letters, digits and underscores, and Python's
        too, so a dotted name such as FINSENT.WHY cannot exist there and becomes FINSENT_WHY. Office custom
        functions allow periods in ids and names (Microsoft's naming guidelines), so the add-in keeps it."""
        return self.name.replace(".", "_")


TEXT = Argument("text", "A cell or range of headlines or other financial text.", range_ok=True)
DOCUMENT = Argument("text", "A cell or range of documents (each cell one document, split into sentences).",
                    range_ok=True)
SCHEME = Argument("scheme", '"7" (default) for 7 labels, "3" for negative/neutral/positive.', optional=True)

FUNCTIONS = (
    ExcelFunction("FINSENT", "Financial sentiment label of the text (Llama-FinSent-S, local server).", "text",
                  (TEXT, SCHEME)),
    ExcelFunction("FINSENT_SCORE", "Sentiment score from -1 (strong negative) to 1 (strong positive).", "any",
                  (TEXT, SCHEME)),
    ExcelFunction("FINSENT_PROBS", "A header row of label names, then each text's label probabilities "
                  "(one row per text, read row by row).", "any", (TEXT, SCHEME)),
    ExcelFunction("FINSENT_DOC", "Label of a whole document (press release, transcript): its sentences "
                  "labelled, then the label nearest their mean score.", "text", (DOCUMENT, SCHEME)),
    ExcelFunction("FINSENT_DOC_SCORE", "Mean sentence score of a whole document, from -1 to 1.", "any",
                  (DOCUMENT, SCHEME)),
    ExcelFunction("FINSENT.WHY", f"The {WHY_WORDS} words that moved the text's score most, with their weights "
                  "(score with the word minus score without it): cuts -0.41; guidance -0.12.", "text",
                  (TEXT, SCHEME)),
)
# Either name finds a definition: the add-in's (FINSENT.WHY) and xlwings' (FINSENT_WHY).
BY_NAME = {**{f.name: f for f in FUNCTIONS}, **{f.xlwings_name: f for f in FUNCTIONS}}


def described(name: str):
    """Decorator: give a Python function the definition's description as its docstring (xlwings shows it)."""
    def apply(func):
        func.__doc__ = BY_NAME[name].description
        return func
    return apply


def argument_doc(function: str, argument: str) -> str:
    return next(a.description for a in BY_NAME[function].arguments if a.name == argument)


def custom_functions_metadata() -> dict:
    """The add-in's functions.json (Office custom functions metadata). Every result is a matrix, so a
    range spills like the xlwings functions' results; texts arrive as matrices too, a single cell as 1x1."""
    functions = []
    for f in FUNCTIONS:
        parameters = []
        for a in f.arguments:
            parameter = {"name": a.name, "description": a.description, "type": "any"}
            if a.range_ok:
                parameter["dimensionality"] = "matrix"
            if a.optional:
                parameter["optional"] = True
            parameters.append(parameter)
        functions.append({
            "id": f.name, "name": f.name, "description": f.description,
            "result": {"type": "any", "dimensionality": "matrix"},
            "parameters": parameters,
        })
    return {"functions": functions}
