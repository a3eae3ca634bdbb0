"""`finsent serve` in a subprocess, for the tests and the benchmarks (a plain module: importing it
sets nothing up, unlike conftest)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time


class RunningServer:
    """`finsent serve` in a subprocess on a free port, with its output collected."""

    def __init__(self, *args: str, env: dict | None = None):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "finsent_local.cli", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
        )
        self.url = None
        threading.Thread(target=self._collect, daemon=True).start()
        deadline = time.time() + 120
        while time.time() < deadline and self.proc.poll() is None:
            ready = [line for line in self.lines if "is ready at" in line]
            if ready:
                self.url = re.search(r"(http://\S+)", ready[0]).group(1)
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not start:\n" + "".join(self.lines))

    def _collect(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
