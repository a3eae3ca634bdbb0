"""What every `finsent` command shares: option help, the one-line user error and the model file choice."""

from __future__ import annotations

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


def model_path(model: str | None) -> Path:
    """The GGUF file to load: --model, FINSENT_MODEL, or the default model, downloaded and converted
    on first use."""
    from ..first_run import ModelUnavailable, ensure_model

    try:
        return ensure_model(model, say=lambda line: click.echo(line, err=True))
    except ModelUnavailable as e:
        raise UserError(str(e)) from None
