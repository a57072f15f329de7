"""A real LiteLLM proxy on loopback, configured as its docs show, in front of the simulator.

Started once per test session: importing LiteLLM's proxy takes ~10 s. The config is the one a
gateway admin copies from LiteLLM's docs (model_list / litellm_params with `api_base` ending
in /v1beta, a master key) and deliberately has no `drop_params`: that default is what made
every images call fail with `UnsupportedParamsError` before we stopped sending
response_format and n.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

MODEL = "nano-banana-pro"  # what users ask the gateway for
UPSTREAM_MODEL = "gemini/gemini-3-pro-image-preview"
MASTER_KEY = "sk-nbp-test-master"
START_TIMEOUT_S = 120.0  # a cold import on a busy 2-core machine

CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: {upstream}
      api_base: {api_base}
      api_key: os.environ/GEMINI_API_KEY

general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""


@dataclass
class Gateway:
    url: str
    key: str
    model: str
    sim: object  # the simulator behind it (a sim.SimServer)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(process: subprocess.Popen, grace_s: float = 20.0) -> None:
    """Ask a helper process to end; kill it if it will not; always reap it."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def litellm_command() -> list[str]:
    """The proxy's own CLI from this venv; skip without it, except in CI, where it fails."""
    cli = Path(sys.executable).with_name("litellm")
    if cli.exists():
        return [str(cli)]
    message = "needs litellm[proxy] (in the [test] extra)"
    if os.environ.get("CI"):
        pytest.fail(message + "; .ci/run installs it")
    pytest.skip(message)


def start(sim_server, workdir: Path):
    """Start the proxy in front of `sim_server`; returns (Gateway, stop function)."""
    command = litellm_command()
    config = workdir / "litellm.yaml"
    config.write_text(CONFIG.format(model=MODEL, upstream=UPSTREAM_MODEL,
                                    api_base=f"{sim_server.url}/v1beta"))
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.upper().endswith("_PROXY")}  # the gateway talks to loopback directly
    env.update(GEMINI_API_KEY="sim-upstream-key", LITELLM_MASTER_KEY=MASTER_KEY,
               # the price map ships with the package: never fetch it (loopback only)
               LITELLM_LOCAL_MODEL_COST_MAP="True", NO_COLOR="1")
    log = open(workdir / "litellm.log", "wb")
    process = subprocess.Popen(
        command + ["--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                   "--num_workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)

    def stop() -> None:
        stop_process(process)
        log.close()

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            stop()
            pytest.fail("LiteLLM proxy exited at start:\n"
                        + (workdir / "litellm.log").read_text(errors="replace")[-3000:])
        try:
            with httpx.Client(trust_env=False) as client:
                if client.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                    break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop()
            pytest.fail(f"LiteLLM proxy not up after {START_TIMEOUT_S:.0f} s")
        time.sleep(0.25)
    return Gateway(url, MASTER_KEY, MODEL, sim_server), stop
