"""The benchmark sets' data path: tests/hub_stand_in.py's dataset repos through huggingface-hub's own client,
then finsent's benchmark reader (download once, cache, offline, one-line failures)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hub_stand_in import HubStandIn  # noqa: E402


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    """A stand-in hub with no model repo, and huggingface-hub pointed at it (its constants are read at import,
    so they are set too)."""
    import huggingface_hub.constants as constants

    with HubStandIn() as hub:
        for key, value in hub.env(tmp_path / "hf").items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        yield hub


def test_the_stand_in_serves_dataset_revisions_through_huggingface_hub(hub_env):
    import huggingface_hub
    from huggingface_hub import errors

    converted = hub_env.add_dataset("takala/financial_phrasebank", {"sentences_50agree/train/0000.parquet": b"rows"},
                                    revision="refs/convert/parquet")
    main = hub_env.add_dataset("takala/financial_phrasebank", {"README.md": b"card", "data/x.zip": b"zip"})
    assert converted != main
    path = huggingface_hub.hf_hub_download("takala/financial_phrasebank", "sentences_50agree/train/0000.parquet",
                                           repo_type="dataset", revision="refs/convert/parquet")
    assert Path(path).read_bytes() == b"rows" and f"/snapshots/{converted}/" in path
    assert any("/resolve/refs%2Fconvert%2Fparquet/" in p for p in hub_env.dataset_gets("takala/financial_phrasebank"))
    folder = huggingface_hub.snapshot_download("takala/financial_phrasebank", repo_type="dataset",
                                               allow_patterns=["data/*"])
    assert Path(folder).name == main and sorted(p.name for p in Path(folder).rglob("*") if p.is_file()) == ["x.zip"]
    assert huggingface_hub.HfApi().list_repo_files("takala/financial_phrasebank", repo_type="dataset") == [
        "README.md", "data/x.zip"]
    with pytest.raises(errors.RevisionNotFoundError):
        huggingface_hub.hf_hub_download("takala/financial_phrasebank", "README.md", repo_type="dataset",
                                        revision="no-such-branch")
    with pytest.raises(errors.RepositoryNotFoundError):
        huggingface_hub.hf_hub_download("nobody/nothing", "README.md", repo_type="dataset")
    with pytest.raises(errors.EntryNotFoundError):
        huggingface_hub.hf_hub_download("takala/financial_phrasebank", "missing.csv", repo_type="dataset")
