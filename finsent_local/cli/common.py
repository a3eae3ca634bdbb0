"""What every `finsent` command shares: the one-line user error and the model file choice."""

from __future__ import annotations

from pathlib import Path

import click


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
