"""`python -m nbp_jupyter.sim` starts, announces its URL, serves, and stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx


def test_cli_announces_url_serves_and_stops_cleanly():
    """The first stdout line is the URL; SIGTERM ends the process with exit code 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbp_jupyter.sim", "--port", "0", "--profile", "ideal",
         "--time-scale", "0.001", "--seed", "7", "--script", "503"],
        stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.split()[-1]
        response = httpx.post(url + "/v1beta/models/gemini-3-pro-image:generateContent",
                              json={"contents": [{"parts": [{"text": "x"}]}]},
                              headers={"x-goog-api-key": "k"}, timeout=5)
        assert response.status_code == 503
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_cli_help_documents_profiles_and_failure_mix():
    """--help lists every option, profile and failure kind."""
    out = subprocess.run([sys.executable, "-m", "nbp_jupyter.sim", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for word in ("--time-scale", "--profile", "--script", "--seed", "--realistic",
                 "typical", "peak", "outage", "ideal", "overloaded", "drip", "hang"):
        assert word in out


def test_cli_rejects_a_bad_script_in_one_line():
    """A typo in --script is a usage error, not a traceback."""
    run = subprocess.run([sys.executable, "-m", "nbp_jupyter.sim", "--script", "50x"],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and "unknown script item '50x'" in run.stderr
