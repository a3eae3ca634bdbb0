"""The one error type the converter raises for problems a user can fix; the CLI prints it as one line."""


class ConversionError(Exception):
    pass


class HubUnreachable(ConversionError):
    """The hub cannot be reached (no network, offline mode) or is down, and the checkpoint is not cached: each
    command says what to do instead. `what` is the message without that advice."""

    def __init__(self, repo_id: str, instead: str = "give a local checkpoint folder as SOURCE instead",
                 why: str = "the hub is unreachable"):
        self.repo_id = repo_id
        self.why = why
        self.what = f"cannot download {repo_id}: {why} and it is not in the local cache"
        super().__init__(f"{self.what} ({instead})")


class DownloadInterrupted(ConversionError):
    """A connection broke during a file's download, after huggingface-hub's own retries."""

    def __init__(self, repo_id: str, detail: str, other_way: str = ""):
        super().__init__(f"the download of {repo_id} was interrupted ({detail}); run the same command again to "
                         "resume: the files already downloaded are kept" + (f" ({other_way})" if other_way else ""))
        self.repo_id = repo_id
