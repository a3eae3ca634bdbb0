"""`finsent classify --input FILE --output FILE`: one column of a file of any size, resumable.

Two passes over the input, neither holding more than a chunk of rows:
1. Scoring: the column's texts go to the classifier in chunks of CHUNK_ROWS; each chunk's results are
   appended to `results.jsonl` in a work folder next to the output and flushed to disk before the
   next chunk starts. Ctrl-C or a crash keeps every finished chunk.
2. Writing: the input rows and the saved results, streamed together into a file in the work folder,
   which is then renamed to the output name (one atomic step: there is never a half-written file under
   that name) and the work folder removed.

Running the same command again after an interruption finds the work folder, checks that it belongs
to the same input file, column, scheme, model and prompt (otherwise it starts over and says so), and
goes on from the first row without a saved result. The output is built from the saved results
whatever happened in between, so it has the same rows and labels as an uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ..files import replace_durably, write_json_atomically
from .errors import JobError
from .tables import InputTable, RowResult, TableError, plain_decimal

CHUNK_ROWS = 128  # rows per classifier call and per flush to disk: at most this much work is redone
# With --explain each row costs about one classification per word: smaller chunks, so the bar moves and an
# interruption loses little.
EXPLAIN_CHUNK_ROWS = 8
JOB_STATE_VERSION = 2  # 2: the CSV reading options (--encoding, --delimiter) are part of the identity


@dataclass(frozen=True)
class JobIdentity:
    """What the saved results depend on: resuming with anything else changed starts over."""

    input_path: str
    input_size: int
    input_mtime_ns: int
    column: str
    sheet: str | None
    scheme: str
    model_sha256: str
    prompt_preset: str
    version: int = JOB_STATE_VERSION
    # or "texts explained" (--explain), "documents", "documents about NAME|..." (--split sentences [--about])
    mode: str = "texts"
    # How a CSV was read, as asked (None: detected): another encoding or delimiter gives other rows.
    encoding: str | None = None
    delimiter: str | None = None

    @classmethod
    def of(cls, input_path: Path, column: str, sheet: str | None, scheme: str, model_sha256: str,
           prompt_preset: str, mode: str = "texts", encoding: str | None = None,
           delimiter: str | None = None) -> JobIdentity:
        stat = Path(input_path).stat()
        return cls(str(Path(input_path).resolve()), stat.st_size, stat.st_mtime_ns, column, sheet, scheme,
                   model_sha256, prompt_preset, mode=mode, encoding=encoding, delimiter=delimiter)


class JobLocked(JobError):
    """Another process is working on the same output."""


class WorkFolder:
    """`.<output name>.finsent-partial/` next to the output: the job's identity, the results saved so
    far (one JSON line per input row), a lock, and the output while it is being written."""

    def __init__(self, output: Path):
        output = Path(output)
        self.path = output.parent / f".{output.name}.finsent-partial"
        self.state_file = self.path / "job.json"
        self.results_file = self.path / "results.jsonl"
        self.sentences_file = self.path / "sentences.jsonl"  # --split sentences --sentences-output
        self.partial_output = self.path / ("output" + output.suffix)
        self._lock = None
        self._claimed = False

    def claim(self, identity: JobIdentity) -> tuple[int, bool]:
        """Lock the folder for this process; (rows already done, whether older results were dropped)."""
        dropped = False
        if self.path.is_dir() and any(self.path.iterdir()) and not self.state_file.is_file() \
                and not (self.path / "lock").is_file():
            # finish() deletes this folder: never one the job did not make
            raise JobError(f"{self.path} exists and was not made by `finsent classify`; move it to run this job")
        self.path.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self._claimed = True
        try:
            saved = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = None
        if saved != asdict(identity):
            dropped = saved is not None and self.results_file.exists()
            self.results_file.unlink(missing_ok=True)
            self.sentences_file.unlink(missing_ok=True)
            write_json_atomically(self.state_file, asdict(identity))
        return self.rows_saved(), dropped

    def _take_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one run at a time is the user's care
            return
        self._lock = open(self.path / "lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise JobLocked(f"another `finsent classify` is working on this output ({self.path})") from None

    def rows_saved(self) -> int:
        """Rows with a saved result. A line cut short by a crash is dropped (its chunk is redone)."""
        if not self.results_file.exists():
            return 0
        rows = 0
        good_end = 0
        with open(self.results_file, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                try:
                    json.loads(line)
                except ValueError:
                    break
                rows += 1
                good_end += len(line)
        if good_end != self.results_file.stat().st_size:
            with open(self.results_file, "r+b") as f:
                f.truncate(good_end)
        return rows

    def append(self, results: list[RowResult]) -> None:
        # ASCII with \\u escapes: an error text may quote a value that UTF-8 cannot hold (a lone surrogate).
        # A why cell (--explain) is a fifth item; the job's identity keeps runs with and without apart.
        lines = "".join(json.dumps([r.label, r.score, r.probs, r.error, *([] if r.why is None else [r.why])]) + "\n"
                        for r in results)
        with open(self.results_file, "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())

    def append_sentences(self, rows: list[dict]) -> None:
        """Sentence rows of the documents just scored, saved before their documents' results: a crash
        in between leaves sentences of rows not done, which trim_sentences drops on resume."""
        if not rows:
            return
        with open(self.sentences_file, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(row) + "\n" for row in rows))
            f.flush()
            os.fsync(f.fileno())

    def trim_sentences(self, rows_done: int) -> None:
        """Keep the saved sentences of the first `rows_done` rows only (those whose results are saved)."""
        if not self.sentences_file.exists():
            return
        kept = self.sentences_file.with_name("sentences.jsonl.kept")
        with open(self.sentences_file, encoding="utf-8") as source, open(kept, "w", encoding="utf-8") as target:
            for line in source:
                try:
                    if json.loads(line)["row"] <= rows_done:
                        target.write(line)
                except (ValueError, KeyError):
                    break  # a line cut short by a crash: nothing after it was saved
        replace_durably(kept, self.sentences_file)

    def write_sentences_csv(self, output: Path, columns: list[str]) -> int:
        """The saved sentences as a CSV file (UTF-8), put in place durably; how many rows it has."""
        partial = self.path / ("sentences" + Path(output).suffix)
        rows = 0
        with open(partial, "w", encoding="utf-8", newline="") as target:
            writer = csv.writer(target)
            writer.writerow(columns)
            if self.sentences_file.exists():
                with open(self.sentences_file, encoding="utf-8") as source:
                    for line in source:
                        record = json.loads(line)
                        writer.writerow(["" if record.get(c) is None else plain_decimal(record[c])
                                         if isinstance(record.get(c), float) else record[c] for c in columns])
                        rows += 1
        replace_durably(partial, Path(output))
        return rows

    def results(self) -> Iterator[RowResult]:
        if not self.results_file.exists():  # an input with no rows: nothing was ever saved
            return
        with open(self.results_file, encoding="utf-8") as f:
            for line in f:
                label, score, probs, error, *why = json.loads(line)
                yield RowResult(label, score, tuple(probs) if probs is not None else None, error,
                                why[0] if why else None)

    def finish(self, output: Path) -> None:
        # The saved results are deleted only once the output is on disk under its name.
        replace_durably(self.partial_output, output)
        self.release()
        shutil.rmtree(self.path, ignore_errors=True)

    def discard_if_empty(self) -> None:
        """After a failure before any result was saved: leave no work folder behind (only ours: not
        the folder of another run that holds the lock)."""
        if self._claimed and self.path.exists() and self.rows_saved() == 0:
            self.release()
            shutil.rmtree(self.path, ignore_errors=True)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


@dataclass
class JobReport:
    rows: int = 0
    errors: int = 0
    resumed_from: int = 0
    dropped_old_results: bool = False


ClassifyChunk = Callable[[list], list[RowResult]]


def score_rows(table: InputTable, work: WorkFolder, done: int, classify_chunk: ClassifyChunk,
               on_rows: Callable[[int], None] = lambda n: None, chunk_rows: int = CHUNK_ROWS) -> None:
    """Classify every row after the first `done` ones, saving each chunk's results as it finishes."""
    seen = 0
    for chunk in table.texts(chunk_rows):
        if seen + len(chunk) <= done:
            seen += len(chunk)
            continue
        todo = chunk[max(0, done - seen):]
        seen += len(chunk)
        work.append(classify_chunk(todo))
        on_rows(len(todo))


def write_output(table: InputTable, work: WorkFolder, output: Path, added_columns: list[str]) -> JobReport:
    """Build the output from the input and the saved results, then put it in place atomically."""
    report = JobReport()

    def counted() -> Iterator[RowResult]:
        for result in work.results():
            report.rows += 1
            report.errors += bool(result.error)
            yield result

    results = counted()
    table.write_scored(work.partial_output, results, added_columns)
    if next(results, None) is not None:
        raise TableError("there are more saved results than input rows (did the input change?)")
    work.finish(output)
    return report


# -- the whole job ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileJob:
    """One `finsent classify --input FILE --output FILE` run, as the command parsed it."""

    table: InputTable
    output: Path
    identity: JobIdentity
    added_columns: list[str]
    documents: bool = False  # --split sentences: each row is a document, its sentences saved on the side
    sentences_output: Path | None = None  # --sentences-output: those sentences as CSV
    sentence_columns: list[str] | None = None
    chunk_rows: int = CHUNK_ROWS  # rows per classifier call and per save (EXPLAIN_CHUNK_ROWS with --explain)


@dataclass
class JobProgress:
    """What the command shows while the job runs: lines, the rows bar, the end of scoring."""

    say: Callable[[str], None] = lambda line: None
    on_scoring: Callable[[int | None, int], Callable[[int], None]] = lambda total, done: (lambda n: None)
    on_scored: Callable[[], None] = lambda: None  # the rows bar closes; the caller may free the model


class JobInterrupted(JobError):
    """Ctrl-C: what is saved stays for the next run of the same command."""


MakeClassifier = Callable[[int, Callable[[list[dict]], None]], ClassifyChunk]


def run_file_job(job: FileJob, make_classifier: MakeClassifier, progress: JobProgress = JobProgress()) -> JobReport:
    """Claim the work folder, score every row not yet saved, write the sentences (when asked) and the
    output, clean up. `make_classifier(rows_done, save_sentences)` gives the chunk classifier (documents
    number their rows from rows_done + 1 and save their sentences through save_sentences). Raises
    JobError (one line; JobInterrupted for Ctrl-C)."""
    work = WorkFolder(job.output)
    try:
        done, dropped = work.claim(job.identity)
        if job.documents:
            work.trim_sentences(done)
        classify_chunk = make_classifier(done, work.append_sentences)
        total = job.table.count_rows()
        if dropped:
            progress.say(f"note: the saved results in {work.path} were for another input, column, scheme, model or "
                         "reading of the file; starting over")
        elif done:
            progress.say(f"Continuing: {done:,}{f' of {total:,}' if total is not None else ''} rows were already done")
        try:
            score_rows(job.table, work, done, classify_chunk, on_rows=progress.on_scoring(total, done),
                       chunk_rows=job.chunk_rows)
        finally:
            progress.on_scored()
        if job.sentences_output is not None:  # before the output: writing that deletes the saved sentences
            sentences = work.write_sentences_csv(job.sentences_output, job.sentence_columns or [])
            progress.say(f"Wrote {job.sentences_output}: {sentences:,} sentence{'' if sentences == 1 else 's'}")
        try:
            return write_output(job.table, work, job.output, job.added_columns)
        except (TableError, OSError) as e:
            raise JobError(f"cannot write {job.output}: {e} (the results so far are kept in {work.path})") from None
    except JobError:
        work.discard_if_empty()
        raise
    except OSError as e:
        raise JobError(f"cannot keep the job's results in {work.path}: {e}") from None
    except KeyboardInterrupt:
        raise JobInterrupted(f"Interrupted: {work.rows_saved():,} rows are saved in {work.path}; run the same command "
                             "again to continue.") from None
    finally:
        work.release()
