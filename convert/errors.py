"""The one error type the converter raises for problems a user can fix; the CLI prints it as one line."""


class ConversionError(Exception):
    pass


class HubUnreachable(ConversionError):
    """The hub cannot be reached and the checkpoint is not cached: each command says what to do instead."""

    def __init__(self, repo_id: str, instead: str = "convert from a local directory instead"):
        super().__init__(f"cannot download {repo_id}: the hub is unreachable and it is not in the local cache "
                         f"({instead})")
        self.repo_id = repo_id
