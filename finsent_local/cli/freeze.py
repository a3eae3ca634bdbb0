"""`finsent excel freeze BOOK.xlsx`: the workbook's FinSent formulas replaced by their values."""

from __future__ import annotations

from pathlib import Path

import click

from ..output_place import FileOutput, is_zip_file, local_model_file
from .common import PROMPT_HELP, UserError, check_outputs_or_exit, plural


@click.command(epilog="Docs: docs/freeze.md")
@click.argument("book", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--output", "output_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the frozen workbook here and leave BOOK as it is (default: rewrite BOOK, keeping the "
                   "original as BOOK.before-freeze.xlsx).")
@click.option("--force", is_flag=True, help="Overwrite an existing --output file.")
@click.option("--url", default=None, help="The FinSent server that computes the values (default: FINSENT_URL, "
              "xlwings.conf, else http://127.0.0.1:8000).")
@click.option("--api-key", envvar="FINSENT_API_KEY", help="API key, when the server requires one.")
@click.option("--model", help="Compute the values with this GGUF model in this process instead of a server.")
@click.option("--threads", type=int, default=0, help="With --model: CPU threads for llama.cpp (default: all cores).")
@click.option("--prompt", "prompt_preset", type=click.Choice(["card", "train"]), default="card", show_default=True,
              help=PROMPT_HELP)
def freeze(book, output_path, force, url, api_key, model, threads, prompt_preset):
    """Replace every FinSent formula in a saved workbook (.xlsx, .xlsm) by its values, so the results
    stay when the server does not run, on another computer, or on a Mac.

    \b
    =FINSENT, =FINSENT_SCORE, =FINSENT_PROBS (with their spilled ranges), =FINSENT_DOC,
    =FINSENT_DOC_SCORE, =LOCAL.FINSENT... (the add-in) and the WEBSERVICE(".../v1/label?...") formula
    are computed again from the cells they name and written as values, and so are formulas around
    them, such as =IFERROR(FINSENT(A2),"") or =IF(A2="","",FINSENT(A2)). Every other cell, formula,
    sheet and format stays; openpyxl does not keep shapes, slicers or sparklines (named when found).
    """
    from finsent_local.excel import cells
    from finsent_local.excel.freeze import FreezeError, freeze_workbook, left_summary

    if output_path is not None:
        if output_path.resolve() == book.resolve():
            raise UserError("--output is the workbook itself; leave out --output to rewrite it (a backup is kept)")
        check_outputs_or_exit([FileOutput(output_path, "--output", "an Excel workbook", is_zip_file)],
                              [book, local_model_file(model)], force)
    source = _model_source(model, threads, prompt_preset) if model else _server_source(url, api_key)

    def prefetch(needed):
        for kind, scheme in dict.fromkeys((k, s) for k, s, _ in needed):
            texts = [t for k, s, t in needed if (k, s) == (kind, scheme)]
            if kind == "document":
                _, failure = cells._documents_summed(source, texts, scheme)
            else:
                _, failure = cells.BATCHER.classify(source, scheme, texts)
            if failure:
                raise FreezeError(failure)

    try:
        report = freeze_workbook(book, output_path, source, prefetch)
    except FreezeError as e:
        raise UserError(str(e)) from None
    written = output_path or book
    sheets = plural(len(report.sheets), "sheet")
    click.echo(f"Froze {plural(report.formulas, 'FinSent formula')} ({plural(report.cells, 'cell')}, {sheets}) "
               f"into {written}" + (f"; the original is kept as {report.backup}" if report.backup else ""), err=True)
    if report.dropped:
        keeper = report.backup or book
        click.echo(f"note: openpyxl does not keep the workbook's {'; '.join(report.dropped)}: missing from {written}, "
                   f"kept in {keeper}", err=True)
    if report.left:
        raise UserError(left_summary(report.left))


def _server_source(url, api_key):
    from finsent_local.client import ClientError, FinSentClient, ServerNotRunning
    from finsent_local.excel import cells

    configured_url, configured_key = cells.settings()
    url, api_key = url or configured_url, api_key or configured_key
    try:
        FinSentClient(url, api_key, connect_timeout=2.0, timeout=10.0).health()
        return cells.ServerSource(url, api_key)
    except ServerNotRunning:
        raise UserError(f"server not running at {url}: start it with `finsent serve`, or give --model FILE to "
                        "compute the values without a server") from None
    except ClientError as e:
        raise UserError(str(e)) from None


def _model_source(model, threads, prompt_preset):
    from finsent_local.excel.cells import ModelSource

    from .classify import _open_service
    from .common import require_engine

    require_engine()

    path, service = _open_service(model, prompt_preset, threads, no_cache=False)
    return ModelSource(service, str(path))
