"""A real IPython kernel driven over ZMQ, recording every message per cell."""

from __future__ import annotations

import os
import queue
import time

from jupyter_client.manager import KernelManager


class Kernel:
    def __init__(self, env: dict[str, str]):
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env={**os.environ, **env})
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.iopub: list[dict] = []

    def submit(self, code: str) -> str:
        """Send a cell; returns its msg_id without waiting."""
        return self.kc.execute(code, allow_stdin=True)

    def reply(self, msg_id: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.kc.get_shell_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg["content"]
        raise TimeoutError(msg_id)

    def run(self, code: str, timeout: float = 60) -> dict:
        return self.reply(self.submit(code), timeout)

    def drain(self, seconds: float = 0.0) -> list[dict]:
        """Collect iopub messages for `seconds` (or what is queued now)."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            try:
                self.iopub.append(self.kc.get_iopub_msg(timeout=max(left, 0.05)))
            except queue.Empty:
                if time.monotonic() >= end:
                    return self.iopub

    def text(self, msg_id: str) -> str:
        """stdout of one cell."""
        self.drain(0.2)
        return "".join(m["content"].get("text", "") for m in self.iopub
                       if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream")

    def eval(self, expr: str) -> str:
        mid = self.submit(f"print({expr})")
        self.reply(mid)
        return self.text(mid).strip()

    def restart(self) -> None:
        self.km.restart_kernel(now=True)
        self.kc.wait_for_ready(timeout=60)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
