"""What the routes need at run time: the classification service once the model is loaded, and the
facts /health, /v1/models and the startup banner report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..engine.classifier import EngineOptions
from ..limits import Limits
from ..engine.service import ClassificationService, Counters, open_service
from .errors import ApiError


@dataclass
class Runtime:
    model_path: Path
    engine_options: EngineOptions = field(default_factory=EngineOptions)
    limits: Limits = field(default_factory=Limits)
    cache_path: Path | None = None  # None: no persistent result cache
    counters: Counters = field(default_factory=Counters)
    service: ClassificationService | None = None
    load_error: str | None = None
    closed: bool = False

    @property
    def model_id(self) -> str:
        """The model's name in /health, /v1/status and the OpenAI model list: the file's, with the LoRA
        adapter's when one is applied (two desks' servers on one base file differ)."""
        lora = self.engine_options.lora_path
        return self.model_path.stem + (f"+{Path(lora).stem}" if lora else "")

    @property
    def ready(self) -> bool:
        return self.service is not None

    def load(self) -> None:
        """Load the model (blocking). Errors are kept for /health and re-raised."""
        try:
            service = open_service(self.model_path, self.engine_options, self.cache_path, self.limits, self.counters)
        except Exception as e:
            self.load_error = f"{type(e).__name__}: {e}"
            raise
        if self.closed:  # closed while loading (Ctrl-C): do not start serving
            service.close()
            return
        self.service = service

    def require_service(self) -> ClassificationService:
        if self.service is None:
            if self.load_error:
                raise ApiError(503, "model_failed", f"the model could not be loaded: {self.load_error}")
            raise ApiError(503, "model_loading", "the model is still loading; try again shortly", retry_after=2)
        return self.service

    @property
    def backend(self) -> str:
        return self.service.engine.backend if self.service else "unknown"

    def close(self) -> None:
        self.closed = True
        if self.service is not None:
            self.service.close()
