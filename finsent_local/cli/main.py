"""The `finsent` command: convert, serve, classify, excel."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import __version__
from .classify import classify
from .evaluate import evaluate_command
from .explain import explain_command
from .freeze import freeze
from .tune import tune_command
from ..output_place import FileOutput, is_zip_file
from .common import (LOG_LEVEL_HELP, PROMPT_HELP, UserError, check_outputs_or_exit, outtype_list,
                     model_path as _model_path, require_engine)


@click.group(context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Docs: docs/index.md (every page is Markdown in the repository; the site: see README.md)")
@click.version_option(__version__, prog_name="finsent")
def cli() -> None:
    """FinSent Local: Llama-FinSent-S financial sentiment on your own machine.

    \b
    finsent serve                          start the local server (converts the model on first run)
    finsent classify "Profit soared 40%"   label text from the terminal
    finsent explain "Profit soared 40%"    which words moved the label (coloured in a terminal)
    finsent eval --input gold.csv ...      how right the labels are on a labelled file
    finsent tune --input desk.csv ...      teach it your labels (LoRA), get a tuned GGUF file
    finsent convert SOURCE --outtype q8_0  make a GGUF file from a Hugging Face checkpoint
    finsent excel                          set up the =FINSENT() Excel function
    finsent excel freeze BOOK.xlsx         replace its FinSent formulas by their values
    finsent certs --trust                  HTTPS on localhost, for the Excel add-in on Mac and the web
    """


@cli.command(epilog="Docs: docs/convert.md")
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
    require_engine()  # llama.cpp's quantizer
    from finsent_local.convert.errors import ConversionError
    from finsent_local.convert.pipeline import ConvertRequest, convert as run_conversion

    request = ConvertRequest(
        source=source, outtypes=outtype_list(outtypes), outfile=outfile, revision=revision,
        pad_ffn=pad_ffn, verify=verify, force=force, quiet=quiet, threads=threads,
    )
    try:
        converted = run_conversion(request)
    except ConversionError as e:
        raise UserError(str(e)) from None
    for item in converted:
        click.echo(str(item.path))


@cli.command(epilog="Docs: docs/serve.md")
@click.option("--model", help="GGUF file to serve. Default: $FINSENT_MODEL, else the converted default model "
              "(downloaded and converted on first run).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port (0: any free port).")
@click.option("--api-key", envvar="FINSENT_API_KEY", help="Require 'Authorization: Bearer KEY' (env FINSENT_API_KEY); "
              "needed to listen on anything but loopback.")
@click.option("--cors-origin", "cors_origins", multiple=True,
              help="Allow browser calls from this origin (repeatable), e.g. https://addin.xlwings.org for xlwings Lite.")
@click.option("--allowed-host", "allowed_hosts", multiple=True,
              help="Also answer requests for this host name (repeatable). Without an API key the server only "
              "answers to localhost, 127.0.0.1 and [::1], which stops DNS-rebinding attacks from web pages.")
@click.option("--gpu", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Offload all layers to the GPU when llama.cpp was built with CUDA.")
@click.option("--prompt", "prompt_preset", type=click.Choice(["card", "train"]), default="card", show_default=True,
              help=PROMPT_HELP)
@click.option("--threads", type=int, default=0, help="CPU threads for llama.cpp (default: all cores).")
@click.option("--no-cache", is_flag=True, help="Do not keep results in the persistent cache.")
@click.option("--extra-bufts/--no-extra-bufts", default=None,
              help="Force llama.cpp's extra CPU buffer types (AMX, repacked weights) on or off. Default: on where "
              "the CPU has AMX and a one-time check in a child process ran them correctly, else off.")
@click.option("--https-port", type=int, default=None,
              help="Also serve HTTPS on this port (e.g. 8443; 0: any free port) with a local certificate for "
              "localhost, for the Excel add-in on Mac and the web (see: finsent certs --help).")
@click.option("--lora", "lora_path", type=click.Path(path_type=Path, dir_okay=False),
              help="A LoRA adapter GGUF (finsent tune --adapter-only) applied to the model at load time.")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]),
              help=LOG_LEVEL_HELP)
def serve(model, host, port, api_key, cors_origins, allowed_hosts, gpu, prompt_preset, threads, no_cache, extra_bufts,
          https_port, lora_path, log_level):
    """Start the local server (FinSent API, OpenAI API, /v1/label for spreadsheets)."""
    require_engine()
    from ..model_files import result_cache_path
    from ..server.serve import ServeError, ServeOptions, check_exposure, configure_logging, serve as run_server

    configure_logging(log_level)
    try:
        check_exposure(host, api_key)  # before any download or conversion
    except ServeError as e:
        raise UserError(str(e)) from None
    model_file = _model_path(model)
    if lora_path is not None:  # checked before listening: a wrong adapter is one line, not a failed load
        from ..engine.lora import AdapterMismatch, check_adapter

        if not lora_path.is_file():
            raise UserError(f"adapter file not found: {lora_path} (from --lora)")
        try:
            check_adapter(model_file, lora_path)
        except AdapterMismatch as e:
            raise UserError(str(e)) from None
    options = ServeOptions(
        model_path=model_file, host=host, port=port, api_key=api_key or None,
        cors_origins=tuple(cors_origins), allowed_hosts=tuple(allowed_hosts), gpu=gpu, prompt_preset=prompt_preset,
        threads=threads, use_extra_bufts=extra_bufts, result_cache=None if no_cache else result_cache_path(),
        https_port=https_port, lora_path=lora_path,
    )
    try:
        run_server(options)
    except ServeError as e:
        raise UserError(str(e)) from None


@cli.group(invoke_without_command=True, epilog="Docs: docs/excel.md")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The FinSent server the functions call.")
@click.option("--api-key", envvar="FINSENT_API_KEY", help="API key, when the server requires one.")
@click.option("--sample", type=click.Path(dir_okay=False, writable=True),
              help="Also write a sample workbook of headlines with the formulas (.xlsx).")
@click.option("--force", is_flag=True, help="Overwrite an existing --sample workbook or --manifest.")
@click.option("--addin", is_flag=True, help="Set up the Office add-in instead (Excel for Mac, Excel on the web, "
              "Windows): write its manifest for the server's HTTPS address and print the sideload steps.")
@click.option("--https-url", default="https://localhost:8443", show_default=True,
              help="With --addin: the server's HTTPS address (finsent serve --https-port 8443).")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False, writable=True),
              default="finsent-local-manifest.xml", show_default=True, help="With --addin: where to write the manifest.")
@click.pass_context
def excel(ctx, url, api_key, sample, force, addin, https_url, manifest_path):
    """Set up the =FINSENT() Excel functions for xlwings (writes ~/.xlwings/xlwings.conf), or with
    --addin the Office add-in's =LOCAL.FINSENT() for Excel on Mac and the web. `finsent excel freeze
    BOOK.xlsx` replaces a workbook's FinSent formulas by their values.

    \b
    xlwings, once, in Windows Excel:
      1. File > Options > Trust Center > Trust Center Settings > Macro Settings:
         tick "Trust access to the VBA project object model".
      2. In a terminal: xlwings addin install
      3. In Excel, xlwings tab: Import Functions.
    Type =FINSENT(A2,"7") and fill down. The server must be running: finsent serve
    """
    if ctx.invoked_subcommand is not None:
        return
    from finsent_local.excel.configure import install, install_addin, write_sample_workbook

    from ..client import ClientError, FinSentClient

    if addin:
        from finsent_local.excel.addin_manifest import ManifestError

        try:
            done_addin = install_addin(https_url, api_key, Path(manifest_path), force=force)
        except ManifestError as e:
            raise UserError(str(e)) from None
        except OSError as e:
            raise UserError(f"cannot write the manifest: {e.strerror or e}") from None
        click.echo(f"add-in manifest written to {done_addin.manifest}"
                   + (f" and {done_addin.sideloaded}" if done_addin.sideloaded else ""))
        for number, step in enumerate(done_addin.steps, start=1):
            click.echo(f"{number}. {step}")
        return

    if sample:
        check_outputs_or_exit([FileOutput(Path(sample), "--sample", "an Excel workbook", is_zip_file)], [], force)
    try:
        client = FinSentClient(url, api_key, connect_timeout=2.0, timeout=5.0)
    except ClientError as e:
        raise UserError(str(e)) from None
    done = install(url, api_key)
    click.echo(f"xlwings settings written to {done.config_file}"
               + (f" (previous file kept as {done.backup})" if done.backup else ""))
    for note in done.notes:
        click.echo(f"note: {note}")
    click.echo(f"functions module: {done.udf_folder / 'finsent_udf.py'} (UDF MODULES: finsent_udf)")
    try:
        client.health()
    except ClientError as e:
        click.echo(f"note: {e}; the functions will show an error until you start it: finsent serve")
    if sample:
        write_sample_workbook(Path(sample), url)
        click.echo(f"sample workbook: {sample}")
    click.echo("Next, in Windows Excel: trust access to the VBA project object model, run `xlwings addin install`, "
               "then xlwings tab > Import Functions, and type =FINSENT(A2,\"7\").")


@cli.command(epilog="Docs: docs/excel.md (the add-in on Mac and the web) and docs/operations.md")
@click.option("--trust", "do_trust", is_flag=True,
              help="Also add the local certificate authority to your user's trust store (no admin rights).")
@click.option("--renew", is_flag=True, help="Issue a new localhost certificate now (same authority: no new trust).")
@click.option("--export", "export_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also copy the authority's certificate (not its key) to this file, for another system to trust: "
                   "Windows, when the server runs in WSL2 (e.g. --export /mnt/c/Users/you/finsent-local-ca.pem).")
@click.option("--force", is_flag=True, help="With --export: replace another certificate file there (never other files).")
def certs(do_trust, renew, export_path, force):
    """Make the local HTTPS certificate that `finsent serve --https-port` uses (Excel for Mac and the web
    load add-ins over HTTPS only), and optionally trust it.

    \b
    The certificate authority is made on this machine, for this user, and can only vouch for localhost,
    127.0.0.1 and ::1 (X.509 name constraints). Files: $FINSENT_TLS_DIR or your user config folder.
    """
    from ..server.tls import (CertificateError, ensure_certificates, expires, export_ca, trust, trust_steps,
                              windows_path)

    try:
        made, done = ensure_certificates(renew=renew)
        exported = export_ca(made, export_path, force) if export_path else None
    except CertificateError as e:
        raise UserError(str(e)) from None
    for line in done:
        click.echo(line)
    click.echo(f"certificate authority: {made.ca_cert}")
    click.echo(f"localhost certificate: {made.cert} (valid until {expires(made.cert):%Y-%m-%d}; renewed by "
               "finsent serve when 30 days are left)")
    if exported:
        click.echo(f"certificate authority exported to {exported} (the certificate only, not its key)")
        click.echo("On Windows, trust it for your user (no admin rights; Windows asks you to confirm), in PowerShell:")
        click.echo(f"  {trust_steps(Path(windows_path(exported)), 'Windows')[0].howto}")
    if do_trust:
        outcome = trust(made.ca_cert)
        for line in outcome.lines:
            click.echo(line)
        if not outcome.trusted:  # a script (or the user) must not go on as if Excel could now load the add-in
            raise UserError("nothing was trusted: do the steps above yourself, then run finsent certs --trust again")
    else:
        click.echo("To trust it (once), run: finsent certs --trust   which does:")
        for step in trust_steps(made.ca_cert):
            click.echo(f"  {step.howto}")


cli.add_command(classify)
cli.add_command(evaluate_command)
cli.add_command(explain_command)
cli.add_command(tune_command)
excel.add_command(freeze)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:  # click's form of Ctrl-C
        click.echo("Interrupted.", err=True)
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
