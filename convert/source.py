"""Where the checkpoint comes from: a local directory, or a Hugging Face hub repo downloaded with
huggingface-hub (only the files conversion needs)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConversionError, HubUnreachable

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
    try:
        local = huggingface_hub.snapshot_download(repo_id, revision=revision, allow_patterns=NEEDED_FILES)
    except hub_errors.GatedRepoError:
        raise ConversionError(f"{repo_id} is gated: accept its license on the hub, then set HF_TOKEN") from None
    except hub_errors.RepositoryNotFoundError:
        raise ConversionError(f"{repo_id}: no such model on the Hugging Face hub (or it is private: set HF_TOKEN)") from None
    except hub_errors.RevisionNotFoundError:
        raise ConversionError(f"{repo_id}: revision {revision!r} not found") from None
    except (hub_errors.LocalEntryNotFoundError, hub_errors.OfflineModeIsEnabled):
        raise HubUnreachable(repo_id) from None
    except OSError as e:  # connection errors surface as requests/httpx subclasses of OSError
        raise ConversionError(f"cannot download {repo_id}: {type(e).__name__}: {e}".splitlines()[0]) from None
    # The snapshot folder is named after the commit the revision resolved to.
    return ResolvedSource(Path(local), repo_id, Path(local).name)
