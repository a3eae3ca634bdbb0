"""`finsent serve`: the Flask app under waitress (a production WSGI server that also runs on Windows)."""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .engine import EngineOptions
from .llama_runtime import gpu_offload_supported
from .server import ServerConfig, create_app
from .server.runtime import Runtime
from .service import Limits


class ServeError(Exception):
    """A problem the user can fix; printed as one line."""


@dataclass(frozen=True)
class ServeOptions:
    model_path: Path
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    gpu: str = "auto"  # auto | on | off
    prompt_preset: str = "card"
    threads: int = 0
    use_extra_bufts: bool = False
    result_cache: Path | None = None
    http_threads: int = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: str | None) -> None:
    if not is_loopback(host) and not api_key:
        raise ServeError(f"refusing to listen on {host} without an API key: set --api-key or FINSENT_API_KEY")


def gpu_layers(gpu: str) -> int:
    if gpu == "off":
        return 0
    supported = gpu_offload_supported()
    if gpu == "on" and not supported:
        raise ServeError("--gpu on, but this llama-cpp-python was built without GPU support (see the README: CUDA)")
    return -1 if supported else 0


def build_runtime(options: ServeOptions) -> Runtime:
    engine_options = EngineOptions(prompt_preset=options.prompt_preset, n_threads=options.threads,
                                   n_gpu_layers=gpu_layers(options.gpu), use_extra_bufts=options.use_extra_bufts)
    return Runtime(model_path=options.model_path, engine_options=engine_options, limits=Limits(),
                   cache_path=options.result_cache)


def banner(runtime: Runtime, url: str) -> str:
    size_mb = runtime.model_path.stat().st_size / 1e6
    engine = runtime.service.worker.engine
    threads = runtime.engine_options.n_threads or os.cpu_count()
    formula_url = f"{url}/v1/label?scheme=7&text="
    return "\n".join([
        f"FinSent Local is ready at {url}",
        f"  model:    {runtime.model_path} ({engine.model.description()}, {size_mb:.0f} MB)",
        f"  backend:  {runtime.backend}" + (" (all layers offloaded)" if runtime.backend == "CUDA" else f" ({threads} threads)"),
        f"  prompt:   {runtime.engine_options.prompt_preset}",
        f"  try:      curl '{url}/v1/label?scheme=7&text={quote('Profit soared 40% to a record')}'",
        '  Excel:    =FINSENT(A2,"7")   (xlwings add-in; see: finsent excel --help)',
        f'  no add-in: =WEBSERVICE("{formula_url}"&ENCODEURL(A2))',
        "  OpenAI:   base_url=" + url + "/v1, model=finsent-7 (or finsent-3)",
    ])


def serve(options: ServeOptions) -> None:
    import waitress

    check_exposure(options.host, options.api_key)
    runtime = build_runtime(options)
    app = create_app(runtime, ServerConfig(api_key=options.api_key, cors_origins=options.cors_origins))
    try:
        server = waitress.create_server(app, host=options.host, port=options.port, threads=options.http_threads,
                                        clear_untrusted_proxy_headers=True, ident="finsent-local")
    except OSError as e:
        raise ServeError(f"cannot listen on {options.host}:{options.port}: {e.strerror or e}") from None
    host = f"[{options.host}]" if ":" in options.host else options.host
    url = f"http://{host}:{server.effective_port}"
    print(f"Loading {options.model_path} ... (serving /health at {url} meanwhile)", flush=True)

    def load_then_announce():
        try:
            runtime.load()
        except Exception as e:
            print(f"Error: the model could not be loaded: {e}", file=sys.stderr, flush=True)
            server.close()
            return
        print(banner(runtime, url), flush=True)

    threading.Thread(target=load_then_announce, name="finsent-load", daemon=True).start()
    try:
        server.run()
    finally:
        runtime.close()
    if runtime.load_error:
        raise ServeError(f"the model could not be loaded: {runtime.load_error}")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" chatter under load
