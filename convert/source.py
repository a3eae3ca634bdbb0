"""Where the checkpoint comes from: a local directory, or a Hugging Face hub repo downloaded with
huggingface-hub (only the files conversion needs)."""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from .errors import ConversionError, DownloadInterrupted, HubUnreachable

NEEDED_FILES = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "README.md",
]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ResolvedSource:
    path: Path
    repo_id: str | None
    revision: str | None  # the commit hash for hub downloads


def _license_from_card(path: Path) -> str | None:
    card = path / "README.md"
    if not card.exists():
        return None
    text = card.read_text(encoding="utf-8", errors="replace")
    match = re.search(r"^---\s*\n(.*?)\n---", text, re.S)
    if match:
        found = re.search(r"^license:\s*(\S+)", match.group(1), re.M)
        if found:
            return found.group(1).strip("'\"")
    return None


def license_of(source: ResolvedSource) -> str | None:
    return _license_from_card(source.path)


def resolve_source(source: str, revision: str | None = None, quiet: bool = False) -> ResolvedSource:
    """A local checkpoint directory as is, or a hub repo id downloaded to the Hugging Face cache.

    The token comes from the environment (HF_TOKEN) or a previous `hf auth login`, as usual with
    huggingface-hub; HF_HUB_OFFLINE=1 uses only what is already cached.
    """
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConversionError(f"{source} is a file; give the checkpoint's directory")
        return ResolvedSource(path.resolve(), None, revision)
    if not _REPO_ID.match(source):
        raise ConversionError(f"{source}: no such directory, and not a Hugging Face repo id (owner/name)")
    return _download(source, revision, quiet)


def _download(repo_id: str, revision: str | None, quiet: bool) -> ResolvedSource:
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    if quiet:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    cleared = clear_stale_partial_downloads(repo_id)
    if cleared and not quiet:
        print(f"Removed {len(cleared)} unfinished download(s) of {repo_id} ({sum(cleared) / 1e6:.0f} MB) left by a "
              "run that was stopped", file=sys.stderr, flush=True)
    try:
        local = huggingface_hub.snapshot_download(repo_id, revision=revision, allow_patterns=NEEDED_FILES)
    except hub_errors.GatedRepoError:
        raise ConversionError(f"{repo_id} is gated: accept its license on the hub, then set HF_TOKEN") from None
    except hub_errors.RepositoryNotFoundError:
        raise ConversionError(f"{repo_id}: no such model on the Hugging Face hub (or it is private: set HF_TOKEN)") from None
    except hub_errors.RevisionNotFoundError:
        raise ConversionError(f"{repo_id}: revision {revision!r} not found") from None
    except (hub_errors.LocalEntryNotFoundError, hub_errors.OfflineModeIsEnabled) as e:
        # Not in the cache, and the hub could not say why not: the reason is the error underneath.
        raise _not_reached(repo_id, e.__cause__ or e) from None
    except hub_errors.HfHubHTTPError as e:
        raise _refused(repo_id, e) from None
    except Exception as e:
        if isinstance(e, _transport_errors()):
            raise DownloadInterrupted(repo_id, _first_line(e)) from None
        if _raised_in_xet_download(e):  # hf_xet gives up (after its own retries) with a plain RuntimeError
            raise DownloadInterrupted(repo_id, f"Xet storage: {_first_line(e)}",
                                      "or set HF_HUB_DISABLE_XET=1 to download over plain HTTPS") from None
        if isinstance(e, OSError):
            raise ConversionError(f"cannot download {repo_id}: {_first_line(e)}") from None
        raise
    # The snapshot folder is named after the commit the revision resolved to.
    return ResolvedSource(Path(local), repo_id, Path(local).name)


# -- why a download failed, in words --------------------------------------------------------------------
# huggingface-hub reports a failed download in three ways: its own HTTP errors (HfHubHTTPError, with the
# hub's status code and X-Error-Message), a LocalEntryNotFoundError when the hub did not answer usefully and
# nothing is cached (the reason is its __cause__), and the transport's own errors (httpx2 in 2.x, httpx in
# 1.x, requests before) when a connection breaks during a file's download after its retries, or hf_xet's
# RuntimeError when a file stored in Xet cannot be fetched.

def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _transport_errors() -> tuple[type[BaseException], ...]:
    found = []
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"),
                         ("requests", "ConnectionError"), ("requests.exceptions", "ChunkedEncodingError")):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _raised_in_xet_download(error: BaseException) -> bool:
    """Whether huggingface-hub's Xet download (hf_xet, the hub's chunked storage) raised `error`."""
    frame = error.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_name == "xet_get" and "huggingface_hub" in frame.tb_frame.f_code.co_filename:
            return True
        frame = frame.tb_next
    return False


def _not_reached(repo_id: str, cause: BaseException) -> ConversionError:
    from huggingface_hub import constants
    from huggingface_hub import errors as hub_errors

    if isinstance(cause, hub_errors.HfHubHTTPError):
        return _refused(repo_id, cause)
    if isinstance(cause, hub_errors.OfflineModeIsEnabled) or constants.HF_HUB_OFFLINE:
        return HubUnreachable(repo_id, why="the hub is unreachable in offline mode (HF_HUB_OFFLINE=1)")
    if isinstance(cause, hub_errors.LocalEntryNotFoundError):  # nothing underneath: no network, as far as we know
        return HubUnreachable(repo_id)
    return HubUnreachable(repo_id, why=f"the hub is unreachable ({_first_line(cause)})")


def _refused(repo_id: str, error) -> ConversionError:
    """The hub (or something in between) answered with an error status."""
    response = error.response
    status = response.status_code
    said = response.headers.get("X-Error-Message") or ""
    answer = f"{status} {_reason(response)}" + (f": {said}" if said else "")
    if status >= 500:
        return HubUnreachable(repo_id, why=f"the hub is down (HTTP {answer}; try again later)")
    if status == 401 and _token_sent(response):
        return ConversionError(f"cannot download {repo_id}: the hub refused the token it was sent ({answer}); set a "
                               "valid one in HF_TOKEN or with `hf auth login`, or none at all for a public model "
                               "(unset HF_TOKEN, `hf auth logout`)")
    if status == 401:
        return ConversionError(f"cannot download {repo_id}: the hub asks for a token ({answer}); set HF_TOKEN or run "
                               "`hf auth login`")
    if status == 403 and _token_sent(response):
        return ConversionError(f"cannot download {repo_id}: access refused ({answer}); the token in use (HF_TOKEN or "
                               "`hf auth login`) may not read this repo: give it read access, or use another")
    if status == 403:
        return ConversionError(f"cannot download {repo_id}: access refused ({answer}), by the hub or a proxy in "
                               "between; if the repo needs a token, set HF_TOKEN")
    if status == 429:
        return ConversionError(f"cannot download {repo_id}: the hub is limiting requests ({answer}); try again in a "
                               "few minutes")
    return ConversionError(f"cannot download {repo_id}: the hub answered HTTP {answer}")


def _reason(response) -> str:
    reason = getattr(response, "reason_phrase", None) or getattr(response, "reason", None)
    if not reason:
        try:
            reason = HTTPStatus(response.status_code).phrase
        except ValueError:
            reason = ""
    return reason


def _token_sent(response) -> bool:
    try:
        return bool(response.request.headers.get("authorization"))
    except (AttributeError, RuntimeError):  # a response built without its request
        return False


# -- downloads a killed run left behind ---------------------------------------------------------------------
# huggingface-hub (2.x) writes each file to `blobs/<etag>.<8 hex>.incomplete`, a name unique to the process,
# and deletes it when the download fails; it never resumes one across runs (the unique name keeps processes
# from writing one file when a lock fails, huggingface_hub PR #4228). Only a run that could not clean up
# (SIGKILL, power loss) leaves one, up to the model's 1.8 GB each time, and nothing would ever remove it.
# (Older releases named it `<etag>.incomplete` and resumed it: those are left alone.)
_PARTIAL = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})\.[0-9a-f]{8}\.incomplete$")


def clear_stale_partial_downloads(repo_id: str) -> list[int]:
    """Remove the unfinished downloads of `repo_id` in the hub cache that no process is writing: a process
    downloading a file holds huggingface-hub's lock for that file (`.locks/<repo>/<etag>.lock`) from before
    its partial file exists until it is gone, so a partial file whose lock is free is stale. Returns the
    sizes of the removed files."""
    from filelock import FileLock, Timeout
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    folder = repo_folder_name(repo_id=repo_id, repo_type="model")
    blobs = Path(constants.HF_HUB_CACHE) / folder / "blobs"
    locks = Path(constants.HF_HUB_CACHE) / ".locks" / folder
    removed = []
    try:
        partial = sorted(p for p in blobs.iterdir() if _PARTIAL.match(p.name))
    except OSError:  # no such folder yet
        return removed
    for path in partial:
        try:
            locks.mkdir(parents=True, exist_ok=True)
            with FileLock(str(locks / f"{_PARTIAL.match(path.name).group(1)}.lock"), timeout=0):
                size = path.stat().st_size
                path.unlink()
        except Timeout:  # being downloaded right now
            continue
        except OSError:  # gone meanwhile, or not ours to remove
            continue
        removed.append(size)
    return removed
