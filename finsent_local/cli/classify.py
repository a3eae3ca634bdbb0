"""`finsent classify`: texts from the command line or standard input, a file of any size, or the same
file job on a Ray cluster. Every mode goes through the same classification service."""

from __future__ import annotations

import io
import json
import queue
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import click

from .common import (PROMPT_HELP, SCHEME_HELP, UserError, check_outputs_or_exit, delimiter_character,
                     model_path, plural, progress_bar, require_engine)
from ..output_place import FileOutput, local_model_file
from ..engine.labels import SCHEMES
from ..limits import DEFAULT_LIMITS

LINE_CHUNK = 64  # texts per classifier call when reading lines: output follows input closely
ECHO_CHARS = 200  # an error row shows at most this much of its text


@click.command(epilog="Docs: docs/files.md (texts, files, Ray; documents: docs/documents.md)")
@click.argument("texts", nargs=-1)
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="A file to score: .csv .tsv .jsonl .parquet .xlsx, or .txt (one text per line); with --ray "
              ".parquet .csv .jsonl or a folder of them.")
@click.option("--output", "output_path", type=click.Path(path_type=Path),
              help="Where to write the scored file, in the input's format (.txt: as .csv; with --ray: a folder).")
@click.option("--column", help="The column that holds the texts (.xlsx: its header or letter, e.g. B).")
@click.option("--sheet", help=".xlsx: the sheet to score (default: the first).")
@click.option("--encoding", help=".csv/.tsv/.txt: the file's text encoding (default: UTF-8, else Windows-1252, said so).")
@click.option("--delimiter", help=".csv: the field separator, e.g. ';' (default: ',', or ';' when the header has only "
              "semicolons).")
@click.option("--prefix", default="", help="Put before the added column names (label, score, p_<label>, error).")
@click.option("--force", is_flag=True, help="Replace an existing output.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--scheme", type=click.Choice(list(SCHEMES)), default=SCHEMES[0], show_default=True, help=SCHEME_HELP)
@click.option("--json", "as_json", is_flag=True, help="Texts and lines: one JSON object per text (label, score, probs).")
@click.option("--model", help="GGUF file (default as for `finsent serve`).")
@click.option("--prompt", "prompt_preset", type=click.Choice(["card", "train"]), default="card", show_default=True,
              help=PROMPT_HELP)
@click.option("--threads", type=int, default=0, help="CPU threads for llama.cpp (default: all cores; with --ray: per actor).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the persistent result cache.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              help="Run on Ray Data: `--ray` alone uses $RAY_ADDRESS, else starts a local cluster on 127.0.0.1; "
              "`--ray local` always starts one; `--ray auto` joins the cluster running on this machine; or give a "
              "cluster address (HOST:PORT).")
@click.option("--actors", type=int, default=None, help="With --ray: scoring actors (default: cluster CPUs / --threads).")
@click.option("--gpus-per-actor", type=float, default=0.0, help="With --ray: GPUs per actor (llama.cpp built with CUDA).")
@click.option("--split", type=click.Choice(["sentences"]), default=None,
              help="Texts and lines: treat each as a document: label its sentences and sum them up (the label "
                   "nearest the mean sentence score, the share of non-neutral sentences; --json: every sentence).")
@click.option("--about", help="With --split sentences: only the sentences naming one of these (NAME|ALIAS...; "
              "case-insensitive, whole words).")
@click.option("--sentences-output", "sentences_path", type=click.Path(path_type=Path, dir_okay=False),
              help="With --input and --split sentences: also write every sentence (row, offsets, label, score, "
                   "probabilities) to this .csv file.")
@click.option("--explain", is_flag=True,
              help="With --input: add a why column, each row's 3 strongest words with their weights "
                   "(\"cuts -0.41; guidance -0.12\"; see finsent explain). Slow: a row costs about one classification "
                   f"per word; texts over {DEFAULT_LIMITS.max_explain_words} words get a note instead.")
def classify(texts, input_path, output_path, column, sheet, encoding, delimiter, prefix, force, quiet, scheme, as_json, model,
             prompt_preset, threads, no_cache, ray_address, actors, gpus_per_actor, split, about, sentences_path,
             explain):
    """Label TEXTS, lines from standard input, or a column of a file, with the local model (no server).

    \b
    finsent classify "Profit soared 40% to a record" "Shares plunged after the fraud probe"
    cat headlines.txt | finsent classify --scheme 3 --json
    finsent classify --input news.csv --column headline --output news.scored.csv
    finsent classify --input news/ --column headline --output scored/ --ray
    finsent classify --input news.csv --column headline --output news.why.csv --explain

    A file job shows its progress, keeps what is done when interrupted, and continues where it stopped
    when run again with the same arguments. The output gets every input column and row, plus label,
    score, p_<label> per label, and error (empty when fine); with --explain also why, the words that
    moved each label most (about one classification per word: many times slower).
    """
    require_engine()
    if explain and input_path is None:
        raise UserError("--explain goes with --input FILE; for texts, use: finsent explain \"TEXT\"")
    if explain and split is not None:
        raise UserError("--explain is for texts, not --split sentences (finsent explain shows one sentence's words)")
    if explain and ray_address is not None:
        raise UserError("--explain is not run on Ray: leave out --ray, or --explain")
    if input_path is None:
        stray = [name for name, value in (("--output", output_path), ("--column", column), ("--sheet", sheet),
                                          ("--encoding", encoding), ("--delimiter", delimiter),
                                          ("--ray", ray_address), ("--actors", actors)) if value is not None]
        if stray:
            raise UserError(f"{stray[0]} goes with --input FILE")
        if about is not None and split is None:
            raise UserError("--about goes with --split sentences")
        if sentences_path is not None:
            raise UserError("--sentences-output goes with --input FILE and --split sentences")
        _classify_lines(texts, scheme, as_json, model, prompt_preset, threads, no_cache, split, about)
        return
    if about is not None and split is None:
        raise UserError("--about goes with --split sentences")
    if sentences_path is not None and split is None:
        raise UserError("--sentences-output goes with --split sentences")
    if sentences_path is not None and sentences_path.suffix.lower() != ".csv":
        raise UserError("--sentences-output is written as CSV: give it the extension .csv")
    if sentences_path is not None and ray_address is not None:
        raise UserError("--sentences-output is not written on Ray (its rows are numbered in file order): leave out "
                        "--ray, or --sentences-output")
    if texts:
        raise UserError("give texts or --input FILE, not both")
    if output_path is None:
        raise UserError("--output is needed with --input (a file in the input's format"
                        + (", or a folder with --ray)" if ray_address else ")"))
    if ray_address is not None:
        if sheet is not None:
            raise UserError("--sheet is for .xlsx workbooks, which --ray does not read")
        _classify_on_ray(input_path, output_path, column, scheme, prefix, prompt_preset, threads, actors,
                         gpus_per_actor, force, model, quiet, ray_address, encoding, delimiter_character(delimiter),
                         split, about)
        return
    _classify_file(input_path, output_path, column, sheet, prefix, force, quiet, scheme, model, prompt_preset,
                   threads, no_cache, encoding, delimiter_character(delimiter), split, about, sentences_path, explain)


def _open_service(model: str | None, prompt_preset: str, threads: int, no_cache: bool):
    from ..engine.classifier import EngineOptions
    from ..limits import Limits
    from ..model_files import result_cache_path
    from ..engine.service import open_service

    path = model_path(model)
    try:
        service = open_service(path, EngineOptions(prompt_preset=prompt_preset, n_threads=threads),
                               None if no_cache else result_cache_path(), Limits(max_wait_s=None))
    except Exception as e:
        raise UserError(f"cannot load {path}: {e}") from None
    return path, service


# -- texts and lines ---------------------------------------------------------------------------------
def _classify_lines(texts, scheme, as_json, model, prompt_preset, threads, no_cache, split=None, about=None) -> None:
    """One output row per argument or input line, in order, blank lines included (as error rows), each
    written as soon as its chunk is done. Exit status 1 when any row has an error, with --json or not.
    With split="sentences" each row is a document: its sentences' labels summed up."""
    if not texts and sys.stdin.isatty():
        raise UserError("give texts to classify, --input FILE, or pipe lines on standard input")
    _, service = _open_service(model, prompt_preset, threads, no_cache)
    out = sys.stdout
    if hasattr(out, "reconfigure"):  # a text with bytes that are not UTF-8 is echoed escaped, not a crash
        out.reconfigure(errors="backslashreplace")
    rows = failed = 0
    try:
        for chunk in (_chunked_args(texts) if texts else _stdin_chunks()):
            if split == "sentences":
                answers = [_document_row(service, text, scheme, about, as_json) for text in chunk]
            else:
                answers = [(_line_row(text, result, as_json), "error" not in result)
                           for text, result in zip(chunk, _classify_decoded(service, chunk, scheme))]
            for line, ok in answers:
                rows += 1
                failed += not ok
                out.write(line + "\n")
            out.flush()
    finally:
        service.close()
    if failed:
        click.echo(f"{failed} of {rows} texts could not be classified", err=True)
        sys.exit(1)


# Bytes that are not UTF-8 reach us as U+DC80..U+DCFF (Python's surrogateescape, for standard input
# and for arguments alike): one per byte.
_UNDECODED_BYTE = re.compile("[\udc80-\udcff]")


def _not_utf8(text: str) -> dict | None:
    found = _UNDECODED_BYTE.search(text)
    if found is None:
        return None
    byte = ord(found.group()) - 0xDC00
    return {"error": {"code": "invalid_text", "message": f"text is not UTF-8 (byte 0x{byte:02X} at character "
                      f"{found.start() + 1}); convert the input first, e.g. iconv -f WINDOWS-1252 -t UTF-8"}}


def _classify_decoded(service, chunk: list[str], scheme: str) -> list[dict]:
    """The service's results for the chunk; texts that were not UTF-8 get their own error instead of
    the engine's (which would call the escaped bytes lone surrogates)."""
    refused = [_not_utf8(text) for text in chunk]
    answered = iter(service.classify([t for t, bad in zip(chunk, refused) if bad is None], scheme))
    return [bad if bad is not None else next(answered) for bad in refused]


def _document_row(service, text: str, scheme: str, about: str | None, as_json: bool) -> tuple[str, bool]:
    """One document's output line (the label nearest its mean sentence score, the score, how many
    sentences and how many of them take a side), and whether it could be labelled."""
    from ..jobs.documents import NO_MENTION, DocumentTooLarge, about_names, classify_document

    problem = _not_utf8(text)
    if problem is None and not text.strip():  # as in line mode: a blank line is a row of its own, an error
        problem = {"error": {"code": "empty_text", "message": "text is empty"}}
    if problem is None:
        try:
            answer = classify_document(text, scheme, service, about_names(about))
        except DocumentTooLarge as e:
            problem = {"error": {"code": e.code, "message": str(e)}}
    if problem is None and answer["document"]["label"] is None:
        problem = {"error": {"code": "empty_text", "message": "no sentence could be classified"}}
    if problem is not None:
        return _line_row(text, problem, as_json), False
    if as_json:
        return json.dumps({"text": text, **answer}, ensure_ascii=False), True
    document = answer["document"]
    if document["label"] == NO_MENTION:
        return f"{NO_MENTION}\t\t0 of {document['about']['of']} sentences\t{_short(text)}", True
    sides = round(document["non_neutral_share"] * document["scored"])
    counted = (f"{document['about']['matched']} of {document['about']['of']} sentences" if "about" in document
               else plural(document["scored"], "sentence"))
    return f"{document['label']}\t{document['score']:+.3f}\t{counted}, {sides} not neutral\t{_short(text)}", True


def _short(text: str) -> str:
    return text if len(text) <= ECHO_CHARS else f"{text[:ECHO_CHARS]}... ({len(text):,} characters)"


def _line_row(text: str, result: dict, as_json: bool) -> str:
    if as_json:
        return json.dumps({"text": _short(text) if "error" in result else text, **result}, ensure_ascii=False)
    if "error" in result:
        return f"#FINSENT! {result['error']['message']}\t{_short(text)}"
    mark = "[truncated] " if result.get("truncated") else ""
    return f"{result['label']}\t{result['score']:+.3f}\t{mark}{text}"


def _chunked_args(texts) -> Iterator[list[str]]:
    for start in range(0, len(texts), LINE_CHUNK):
        yield list(texts[start : start + LINE_CHUNK])


_EOF = object()


def _stdin_chunks() -> Iterator[list[str]]:
    """Lines as they arrive: each chunk is what is there already (at least one line), so a slow
    producer or a person typing gets each label at once, and a fast pipe gets batched decodes. Bytes
    that are not UTF-8 become an error row, not an abort."""
    stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
    lines: queue.Queue = queue.Queue(maxsize=LINE_CHUNK * 4)

    def read() -> None:
        try:
            for line in stream:
                lines.put(line.rstrip("\n").rstrip("\r"))
        finally:
            lines.put(_EOF)

    threading.Thread(target=read, name="finsent-stdin", daemon=True).start()
    while True:
        chunk = [lines.get()]
        while len(chunk) < LINE_CHUNK and chunk[-1] is not _EOF:
            try:
                chunk.append(lines.get_nowait())
            except queue.Empty:
                break
        if chunk[-1] is _EOF:
            if len(chunk) > 1:
                yield chunk[:-1]
            return
        yield chunk


# -- files ---------------------------------------------------------------------------------------------
def _classify_file(input_path, output_path, column, sheet, prefix, force, quiet, scheme, model, prompt_preset,
                   threads, no_cache, encoding=None, delimiter=None, split=None, about=None, sentences_path=None,
                   explain=False) -> None:
    """Parse and check, then hand the run to jobs.file_job (which claims, scores, writes); show its progress."""
    from ..files import file_fingerprint
    from ..model_files import result_cache_path
    from ..jobs.errors import JobError
    from ..jobs.documents import SENTENCE_FIELDS, DocumentScorer, about_names, document_columns
    from ..jobs.file_job import (CHUNK_ROWS, EXPLAIN_CHUNK_ROWS, FileJob, JobIdentity, JobInterrupted, JobProgress,
                                 run_file_job)
    from ..jobs.scoring import classify_values
    from ..jobs.tables import TableError, check_output_format, open_table, probability_column, result_columns

    try:
        table = open_table(input_path, column, sheet, encoding, delimiter)
        check_output_format(table, output_path)
    except TableError as e:
        raise UserError(str(e)) from None
    for note in table.notes:
        click.echo(note, err=True)
    check_outputs_or_exit([FileOutput(output_path, "--output"),
                           FileOutput(sentences_path, "--sentences-output") if sentences_path else None],
                          [input_path, local_model_file(model)], force)
    path, service = _open_service(model, prompt_preset, threads, no_cache)
    labels = service.schemes[scheme].labels
    try:
        names = about_names(about)
        added = document_columns(prefix) if split else result_columns(labels, prefix, why=explain)
        table.check_new_columns(added)
    except (TableError, JobError) as e:
        service.close()
        raise UserError(str(e)) from None
    model_sha256 = file_fingerprint(path, result_cache_path().with_name("model-fingerprints.json"))
    if split:
        mode = "documents" + (f" about {'|'.join(names)}" if names else "")
    else:
        mode = "texts explained" if explain else "texts"
    job = FileJob(table, output_path,
                  JobIdentity.of(input_path, table.column, sheet, scheme, model_sha256, prompt_preset, mode, encoding,
                                 delimiter),
                  added, documents=bool(split), sentences_output=sentences_path,
                  sentence_columns=[*SENTENCE_FIELDS[:-1], *(probability_column(label) for label in labels), "error"],
                  chunk_rows=EXPLAIN_CHUNK_ROWS if explain else CHUNK_ROWS)

    def make_classifier(done, save_sentences):
        if split:
            return DocumentScorer(service, scheme, names, done + 1, save_sentences)
        return lambda values: classify_values(service, values, scheme, explain=explain)

    bars = []

    def on_scoring(total, done):
        bars.append(progress_bar(total, "row", quiet, initial=done))
        return bars[-1].update

    closed = []

    def close_service():
        if not closed:
            closed.append(True)
            service.close()

    def on_scored():
        for bar in bars:
            bar.close()
        close_service()  # the model's memory is not needed to write the output

    try:
        report = run_file_job(job, make_classifier, JobProgress(lambda line: click.echo(line, err=True), on_scoring,
                                                                on_scored))
    except JobInterrupted as e:
        click.echo(str(e), err=True)
        sys.exit(130)
    except JobError as e:
        raise UserError(str(e)) from None
    finally:
        close_service()
    errors = f"; {report.errors:,} with an error (see the error column)" if report.errors else ""
    click.echo(f"Wrote {output_path}: {plural(report.rows, 'row')}{errors}", err=True)


# -- Ray -----------------------------------------------------------------------------------------------------
def _classify_on_ray(input_path, output_path, column, scheme, prefix, prompt_preset, threads, actors, gpus_per_actor,
                     force, model, quiet, ray_address, encoding, delimiter, split=None, about=None) -> None:
    from ..first_run import ModelUnavailable
    from ..jobs.errors import JobError
    from ..jobs.ray_job import RayJob, run_ray_job

    job = RayJob(input_path, output_path, column, scheme, prefix, prompt_preset, threads, actors, gpus_per_actor,
                 force, model, quiet, encoding, delimiter, split, about)
    try:
        files = run_ray_job(job, ray_address, say=lambda line: click.echo(line, err=True))
    except (JobError, ModelUnavailable) as e:
        raise UserError(str(e)) from None
    except KeyboardInterrupt:
        click.echo(f"Interrupted: {output_path} is incomplete; run the command again with --force.", err=True)
        sys.exit(130)
    click.echo(f"Wrote {plural(len(files), 'file')} to {output_path}", err=True)
