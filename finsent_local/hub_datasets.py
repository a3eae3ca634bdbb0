"""Data sets from the Hugging Face hub: some files of one revision, downloaded once with huggingface-hub
into its cache (the one every hub client uses, HF_HOME) and read from there offline. Every failure is one
line, in the words the model download uses (convert/source.py): a refused token, a hub that is down or a
dropped connection read the same for a model and for a data set; a set neither reachable nor cached names
the command that downloads it elsewhere and the folder to copy it to.

Used by `finsent eval --benchmark` (quality/benchmark_data.py) and by `finsent tune`'s default reference
texts (tuning/reference.py).
"""

from __future__ import annotations

from pathlib import Path


class HubDatasetError(RuntimeError):
    """The data set cannot be had: one line for the user."""


def download_dataset_files(repo_id: str, revision: str, patterns: list[str], what: str, quiet: bool = False,
                           short_what: str | None = None) -> Path:
    """The snapshot folder (named after the commit `revision` resolved to) holding the files that match
    `patterns`. `what` names the set in messages ("the FPB benchmark set (takala/financial_phrasebank)");
    `short_what` (default `what`) in the long not-cached line, which names the repo anyway."""
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    from .convert.source import _first_line, _not_reached, _refused, _transport_errors

    if quiet:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    try:
        return Path(huggingface_hub.snapshot_download(repo_id, repo_type="dataset", revision=revision,
                                                      allow_patterns=patterns))
    except hub_errors.GatedRepoError:
        raise HubDatasetError(f"{what} is gated: accept its terms on the hub, then set HF_TOKEN") from None
    except hub_errors.RepositoryNotFoundError:
        raise HubDatasetError(f"{what}: no such dataset on the Hugging Face hub any more (or it is private: set "
                              "HF_TOKEN)") from None
    except hub_errors.RevisionNotFoundError:
        raise HubDatasetError(f"{what}: the hub has no revision {revision!r} of it any more") from None
    except (hub_errors.LocalEntryNotFoundError, hub_errors.OfflineModeIsEnabled) as e:
        # Not cached, and the hub could not be asked: the reason is the error underneath.
        reason = _not_reached(repo_id, e.__cause__ or e)
        why = getattr(reason, "why", None)
        raise HubDatasetError(not_cached_advice(repo_id, revision, patterns, short_what or what, why) if why
                              else f"{what}: {reason}") from None
    except hub_errors.HfHubHTTPError as e:
        reason = _refused(repo_id, e)
        why = getattr(reason, "why", None)
        raise HubDatasetError(not_cached_advice(repo_id, revision, patterns, short_what or what, why) if why
                              else str(reason)) from None
    except Exception as e:
        if isinstance(e, _transport_errors()):
            raise HubDatasetError(f"the download of {what} was interrupted ({_first_line(e)}); run the same command "
                                  "again to resume") from None
        if isinstance(e, OSError):
            raise HubDatasetError(f"cannot download {what}: {_first_line(e)}") from None
        raise


def not_cached_advice(repo_id: str, revision: str, patterns: list[str], what: str, why: str) -> str:
    """One line: why the set cannot be had, what to download elsewhere and where to put it here."""
    from shlex import quote

    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    folder = repo_folder_name(repo_id=repo_id, repo_type="dataset")
    include = " ".join(f"--include {quote(p)}" for p in patterns)
    return (f"cannot download {what}: {why} and it is not in the local cache; on a machine with network run "
            f"`hf download {repo_id} --repo-type dataset --revision {quote(revision)} {include}`, then copy its "
            f"folder {folder} from that machine's hub cache to {Path(constants.HF_HUB_CACHE) / folder}")
