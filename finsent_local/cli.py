"""The `finsent` command: convert, serve, classify, excel."""

from __future__ import annotations

import json
import sys

import click

from . import __version__


class UserError(click.ClickException):
    """Printed as one line, exit status 1."""


def _convert_output_types(value: tuple[str, ...]) -> list[str]:
    # Accept both `--outtype q8_0 --outtype q4_k_m` and `--outtype q8_0,q4_k_m`.
    return [t.strip().lower() for v in value for t in v.split(",") if t.strip()]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="finsent")
def cli() -> None:
    """FinSent Local: Llama-FinSent-S financial sentiment on your own machine.

    \b
    finsent convert oopere/Llama-FinSent-S --outtype q4_k_m   make a GGUF model file
    finsent serve                                          start the local server
    finsent classify "Profit soared 40%"                    label text from the terminal
    finsent excel                                          set up the =FINSENT() Excel function
    """


@cli.command()
@click.argument("source")
@click.option("--outtype", "outtypes", multiple=True, default=("q4_k_m",), show_default=True,
              help="f32, f16, bf16, q8_0, q6_k, q5_k_m, q4_k_m, q4_0; repeat or comma-separate for several.")
@click.option("--outfile", help="Output path; must contain {outtype} when several types are asked. "
              "Default: ./<name>-<TYPE>.gguf")
@click.option("--revision", help="Hub branch, tag or commit (hub sources only).")
@click.option("--pad-ffn/--no-pad-ffn", default=None,
              help="Zero-pad the MLP width to the quantizer's block size (default: on for quantized types).")
@click.option("--verify/--no-verify", default=None,
              help="Compare against transformers and check quantized labels (default: on when torch is installed).")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--threads", type=int, default=0, help="Quantizer threads (default: all cores).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def convert(source, outtypes, outfile, revision, pad_ffn, verify, force, threads, quiet) -> None:
    """Convert a Hugging Face Llama checkpoint (local folder or hub repo id) to GGUF."""
    from convert.errors import ConversionError
    from convert.pipeline import ConvertRequest, convert as run_conversion

    request = ConvertRequest(
        source=source, outtypes=_convert_output_types(outtypes), outfile=outfile, revision=revision,
        pad_ffn=pad_ffn, verify=verify, force=force, quiet=quiet, threads=threads,
    )
    try:
        converted = run_conversion(request)
    except ConversionError as e:
        raise UserError(str(e)) from None
    for item in converted:
        click.echo(str(item.path))


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as e:  # a bug: still one line for the user, the details on request
        if "FINSENT_DEBUG" in __import__("os").environ:
            raise
        click.echo(f"Error: unexpected {type(e).__name__}: {e} (set FINSENT_DEBUG=1 for details)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
