"""The server's settings from `finsent serve`'s options. They live in `app.config["FINSENT"]` and every
request reads them from there (context.config()): one source, so a setting known only after start
(the HTTPS port picked by --https-port 0) is seen by every check at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerConfig:
    api_key: str | None = None
    # Origins allowed to call from a browser (e.g. https://addin.xlwings.org for xlwings Lite); none by default.
    cors_origins: tuple[str, ...] = ()
    # Host names accepted besides loopback ones when no API key is set (DNS-rebinding protection).
    allowed_hosts: tuple[str, ...] = ()
    # The HTTPS listener's port, when there is one (the add-in's manifest over HTTP redirects there).
    https_port: int | None = None


CONFIG_KEY = "FINSENT"
