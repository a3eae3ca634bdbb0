"""`finsent serve`: the Flask app under waitress (a production WSGI server that also runs on Windows)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

from ..engine.classifier import EngineOptions
from ..limits import Limits
from ..engine.llama_runtime import GpuUnavailable, gpu_layers
from . import ServerConfig, create_app
from .config import CONFIG_KEY
from .runtime import Runtime
from .security import is_loopback_name


class ServeError(Exception):
    """A problem the user can fix; printed as one line."""


@dataclass(frozen=True)
class ServeOptions:
    model_path: Path
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    gpu: str = "auto"  # auto | on | off
    prompt_preset: str = "card"
    threads: int = 0
    use_extra_bufts: bool | None = None  # None: where checked to work (cpu_buffers.py)
    result_cache: Path | None = None
    http_threads: int = 16
    https_port: int | None = None  # also serve HTTPS on this port (0: any free one), for the Office add-in
    lora_path: Path | None = None  # a LoRA adapter GGUF applied to the model at load time


def check_exposure(host: str, api_key: str | None) -> None:
    if not is_loopback_name(host) and not api_key:
        raise ServeError(f"refusing to listen on {host} without an API key: set --api-key or FINSENT_API_KEY")


def build_runtime(options: ServeOptions) -> Runtime:
    try:
        n_gpu_layers = gpu_layers(options.gpu)
    except GpuUnavailable:
        raise ServeError("--gpu on, but this llama-cpp-python was built without GPU support (see docs/gpu.md)") \
            from None
    engine_options = EngineOptions(prompt_preset=options.prompt_preset, n_threads=options.threads,
                                   n_gpu_layers=n_gpu_layers, use_extra_bufts=options.use_extra_bufts,
                                   lora_path=options.lora_path)
    return Runtime(model_path=options.model_path, engine_options=engine_options, limits=Limits(),
                   cache_path=options.result_cache)


KEY_PLACEHOLDER = "YOUR_KEY"


def banner(runtime: Runtime, url: str, https_url: str | None = None, has_key: bool = False) -> str:
    """What the server prints once the model is loaded. With an API key, the lines to try carry
    `key=YOUR_KEY` (the key itself is never printed: logs are read by others)."""
    size_mb = runtime.model_path.stat().st_size / 1e6
    engine = runtime.service.engine
    threads = runtime.engine_options.n_threads or os.cpu_count()
    key = f"key={KEY_PLACEHOLDER}&" if has_key else ""
    formula_url = f"{url}/v1/label?scheme=7&{key}text="
    return "\n".join([
        f"FinSent Local is ready at {url}",
        f"  web page: {url}/   (paste headlines or drop a CSV/XLSX file; see the labels and a chart)",
        f"  model:    {runtime.model_path} ({engine.model.description()}, {size_mb:.0f} MB)",
    ] + ([f"  adapter:  {runtime.engine_options.lora_path} (LoRA, applied at load time)"]
         if runtime.engine_options.lora_path else []) + [
        f"  backend:  {runtime.backend}" + (" (all layers offloaded)" if runtime.backend == "CUDA" else f" ({threads} threads)"),
        f"  weights:  extra CPU buffer types {'on' if engine.cpu_buffers.use else 'off'}: {engine.cpu_buffers.reason}",
        f"  prompt:   {runtime.engine_options.prompt_preset}",
        f"  cache:    {_cache_state(runtime)}",
        f"  try:      curl '{url}/v1/label?scheme=7&{key}text={quote('Profit soared 40% to a record')}'"
        + (f"   ({KEY_PLACEHOLDER}: the server's --api-key)" if has_key else ""),
        '  Excel:    =FINSENT(A2,"7")   (xlwings add-in; see: finsent excel --help)',
        f'  no add-in: =IF(A2="","",WEBSERVICE("{formula_url}"&ENCODEURL(A2)))',
        "  OpenAI:   base_url=" + url + "/v1, model=finsent-7 (or finsent-3)",
    ] + ([f"  https:    {https_url}   (Excel for Mac and the web: add-in manifest at {https_url}/addin/manifest.xml,"
          " see: finsent excel --help)"] if https_url else []))


def _cache_state(runtime: Runtime) -> str:
    if runtime.cache_path is None:
        return "off (--no-cache)"
    if runtime.service.cache is None:
        return f"off: {runtime.cache_path} cannot be used (see the warning above)"
    return str(runtime.cache_path)


def start_https(app, options: ServeOptions):
    """The same app over HTTPS on a second port (waitress has no TLS; cheroot, CherryPy's WSGI server,
    does), with the local certificate for localhost; made or renewed here when needed."""
    from cheroot import wsgi
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    from .tls import CertificateError, ensure_certificates

    try:
        certs, notes = ensure_certificates()  # in $FINSENT_TLS_DIR or the user config folder
    except CertificateError as e:
        raise ServeError(str(e)) from None
    for note in notes:
        print(f"note: {note}", flush=True)
    server = wsgi.Server((options.host, options.https_port), app, numthreads=options.http_threads,
                         server_name="finsent-local", timeout=60)
    server.ssl_adapter = BuiltinSSLAdapter(str(certs.cert), str(certs.key))
    try:
        server.prepare()
    except OSError as e:
        raise ServeError(f"cannot listen on {options.host}:{options.https_port} (HTTPS): {e.strerror or e}") from None
    threading.Thread(target=server.serve, name="finsent-https", daemon=True).start()
    return server


LOAD_WAIT_ON_EXIT_S = 10  # a model load cannot be interrupted; it is mmap-backed and takes seconds


def serve(options: ServeOptions) -> None:
    """Run until Ctrl-C (then KeyboardInterrupt is raised, after a clean shutdown) or SIGTERM (returns)."""
    import waitress

    check_exposure(options.host, options.api_key)
    runtime = build_runtime(options)
    app = create_app(runtime, ServerConfig(api_key=options.api_key, cors_origins=options.cors_origins,
                                           allowed_hosts=options.allowed_hosts))
    try:
        server = waitress.create_server(app, host=options.host, port=options.port, threads=options.http_threads,
                                        clear_untrusted_proxy_headers=True, ident="finsent-local")
    except OSError as e:
        raise ServeError(f"cannot listen on {options.host}:{options.port}: {e.strerror or e}") from None
    host = f"[{options.host}]" if ":" in options.host else options.host
    url = f"http://{host}:{server.effective_port}"
    https = start_https(app, options) if options.https_port is not None else None
    https_url = None
    if https is not None:
        https_url = f"https://localhost:{https.bind_addr[1]}"
        # Known only now (--https-port 0 picks one): the add-in's manifest over HTTP redirects there.
        app.config[CONFIG_KEY] = replace(app.config[CONFIG_KEY], https_port=https.bind_addr[1])
    print(f"Loading {options.model_path} ... (serving /health at {url} meanwhile)", flush=True)

    def load_then_announce():
        try:
            runtime.load()
        except Exception as e:
            print(f"Error: the model could not be loaded: {e}", file=sys.stderr, flush=True)
            server.close()
            return
        if runtime.ready:
            print(banner(runtime, url, https_url, has_key=bool(options.api_key)), flush=True)

    received = _stop_on_signals(runtime)
    loader = threading.Thread(target=load_then_announce, name="finsent-load", daemon=True)
    loader.start()
    try:
        server.run()  # returns after a stop signal, once waitress has shut its threads down
    finally:
        if https is not None:
            https.stop()
        loader.join(timeout=LOAD_WAIT_ON_EXIT_S)
        runtime.close()
    if received.get("signal") == signal.SIGINT:
        raise KeyboardInterrupt
    if runtime.load_error:
        raise ServeError(f"the model could not be loaded: {runtime.load_error}")


def _stop_on_signals(runtime: Runtime) -> dict:
    """On Ctrl-C or SIGTERM, stop the engine first: waiting requests get 503, a running generation
    stream ends at its next token, so waitress's threads finish at once instead of after the
    longest stream. Then waitress stops (it treats KeyboardInterrupt as its stop request)."""
    received: dict = {}
    if threading.current_thread() is not threading.main_thread():
        return received

    def on_signal(signum, frame):
        if received:
            return  # a second Ctrl-C while stopping: keep stopping
        received["signal"] = signum
        print("Stopping: finishing the current step, refusing new requests ...", file=sys.stderr, flush=True)
        runtime.close()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return received


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" chatter under load
