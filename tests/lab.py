"""JupyterLab on loopback with token auth, and headless Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
# Flags that keep Chromium from calling out of this offline machine (env notes).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
TOKEN = "nbp-browser-test"


def require_browser() -> None:
    """Skip where no Chromium is installed, except in CI, where that is a failure."""
    if os.environ.get("NBP_SKIP_BROWSER"):  # .ci/py313: the browser tests run once, on 3.11
        pytest.skip(f"browser tests run on the main Python only ({os.environ['NBP_SKIP_BROWSER']})")
    if Path(CHROMIUM).exists() and shutil.which("jupyter-lab", path=os.path.dirname(sys.executable)):
        return
    message = f"needs {CHROMIUM} (Debian package chromium) and jupyterlab"
    if os.environ.get("CI"):
        pytest.fail(message + "; .ci/run installs them")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyter_lab(root: Path, env: dict[str, str]):
    """Start JupyterLab serving `root`; yields its base URL (token in LAB_TOKEN)."""
    port = free_port()
    # no "get Jupyter news?" toast over the screenshots
    settings = root / ".lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    # settings and the saved layout (sidebar widths, after a narrow window) stay in this test
    env = {"JUPYTERLAB_SETTINGS_DIR": str(root / ".lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / ".lab-workspaces"), **env}
    log = open(root / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "jupyter-lab"), "--no-browser",
         "--allow-root", "--ip", "127.0.0.1", f"--port={port}", f"--ServerApp.root_dir={root}",
         f"--IdentityProvider.token={TOKEN}", "--ServerApp.open_browser=False",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         # window.jupyterapp: the test switches themes and restarts kernels by command
         "--LabApp.expose_app_in_browser=True"],
        env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/api/status?token={TOKEN}", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError((root / "jupyterlab.log").read_text()[-2000:])
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def browser_page(width: int = 1400, height: int = 1100):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def lab_command(page, command: str, args: dict | None = None) -> None:
    """Run a JupyterLab command (as a menu item would), e.g. 'apputils:change-theme'."""
    page.evaluate("([c, a]) => window.jupyterapp.commands.execute(c, a)", [command, args or {}])


def restart_kernel(page) -> None:
    """Restart the current notebook's kernel without the confirmation dialog."""
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")


def overflowing(page, container: str) -> list[str]:
    """Descendants of `container` that stick out to its right or past the window: what a
    user at this width cannot see (the panel's third row was cut at 900 px)."""
    return page.evaluate("""(selector) => {
      const box = document.querySelector(selector).getBoundingClientRect();
      const right = Math.min(box.right, window.innerWidth) + 1;
      return [...document.querySelectorAll(selector + ' *')]
        .filter(e => e.getClientRects().length && e.getBoundingClientRect().right > right)
        .map(e => (e.className && e.className.baseVal === undefined ? e.className : e.tagName)
                   + ': ' + (e.innerText || e.value || '').slice(0, 30));
    }""", container)


def wait_for_idle_kernel(page, timeout_ms: int = 60_000) -> None:
    """Until the current notebook's kernel is up and idle (asked of JupyterLab itself: the
    status indicators can exist hidden, and a hidden one never counts as shown)."""
    page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " const k = w && w.sessionContext && w.sessionContext.session"
        " && w.sessionContext.session.kernel; return !!k && k.status === 'idle'; }",
        timeout=timeout_ms)
