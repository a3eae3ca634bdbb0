"""What every `finsent` command shares: option help, the one-line user error and the model file choice."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click


# Option help shared by the commands that take these options.
SCHEME_HELP = ("7: strong/moderately/mildly negative, neutral, mildly/moderately/strong positive; "
               "3: negative, neutral, positive.")
PROMPT_HELP = "Prompt layout: the model card's, or the one the fine-tuning notebook used."
LOG_LEVEL_HELP = ("What the server logs: info, a line per request; warning or error, only problems; debug, also "
                  "the libraries' own details.")


class UserError(click.ClickException):
    """Printed as one line, exit status 1."""


def require_engine() -> None:
    """One line and exit 1 when llama-cpp-python is not installed (a client-only install)."""
    from ..engine.availability import engine_missing

    missing = engine_missing()
    if missing:
        raise UserError(missing)


def model_path(model: str | None) -> Path:
    """The GGUF file to load: --model, FINSENT_MODEL, or the default model, downloaded and converted
    on first use."""
    from ..first_run import ModelUnavailable, ensure_model

    try:
        return ensure_model(model, say=lambda line: click.echo(line, err=True))
    except ModelUnavailable as e:
        raise UserError(str(e)) from None


def check_outputs_or_exit(outputs, inputs, force: bool) -> None:
    """output_place's rules for a command's outputs, a refusal as the one-line user error."""
    from ..output_place import OutputRefused, check_outputs

    try:
        check_outputs(outputs, inputs, force)
    except OutputRefused as e:
        raise UserError(str(e)) from None


def _fixed_terminal_size() -> tuple[int | None, int | None]:
    """(columns, lines) to give tqdm; None: follow the terminal. A terminal that reports 0 columns or 0
    lines (a serial console, some containers, `script`) gets 80 x 24: tqdm would otherwise draw nothing
    at all (0 lines hides every bar)."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError):
        return 80, 24
    return (None if size.columns > 0 else 80), (None if size.lines > 0 else 24)


def progress_bar(total: int | None, unit: str, quiet: bool, initial: int = 0, desc: str | None = None):
    """A tqdm bar on stderr when it is a terminal (and not --quiet); a bar that draws nothing otherwise."""
    from tqdm import tqdm

    show = not quiet and sys.stderr.isatty()
    width, lines = _fixed_terminal_size() if show else (None, None)
    return tqdm(total=total, initial=initial, unit=unit, desc=desc, disable=not show, file=sys.stderr,
                dynamic_ncols=width is None, ncols=width, nrows=lines, smoothing=0.1)


def closing_when_done(bar):
    """The bar's update function, closing the bar when it reaches its total: closed at once, it stays
    above the lines that follow instead of being drawn again below them when it is closed later."""
    def update(n: int) -> None:
        bar.update(n)
        if bar.total is not None and bar.n >= bar.total:
            bar.close()
    return update


def outtype_list(value: tuple[str, ...]) -> list[str]:
    """--outtype values: repeated (`--outtype q8_0 --outtype q4_k_m`) or comma-separated (`q8_0,q4_k_m`)."""
    return [t.strip().lower() for v in value for t in v.split(",") if t.strip()]


def delimiter_character(delimiter: str | None) -> str | None:
    """A tab is hard to type in a shell: --delimiter tab and '\\t' mean it too."""
    return "\t" if delimiter in ("tab", "\\t") else delimiter


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")
