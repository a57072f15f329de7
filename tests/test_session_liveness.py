"""Crash recovery decides "is that session alive" by a lock the OS releases at death, not
by PID: kernels in containers get the same PID after a restart, and a PID from another
PID namespace (or host) names an unrelated process here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
from filelock import FileLock, Timeout

from nbp_jupyter.store import Store

_CHILD = textwrap.dedent("""
    import os, sys, time
    from nbp_jupyter.store import Store
    from nbp_jupyter.types import Request
    store = Store(sys.argv[1])
    job = sys.argv[2]
    if job != "-":
        store.begin_job(job, Request(prompt="a kite", size="4K", provider="gemini"), "m")
        store.begin_attempt(job, 1, "4K", "m", "gemini", 0.0, 0.24)
    print("pid", os.getpid(), "status", {j["id"]: j["status"] for j in store.jobs()}, flush=True)
    if job != "-":
        time.sleep(120)  # killed by the test while the job is on the wire
    store.close()
""")


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-p", "-f", "true"],
                          capture_output=True).returncode == 0


needs_pid_namespaces = pytest.mark.skipif(
    not _unshare_works() and not os.environ.get("CI"),
    reason="needs root and unshare(1) for fresh PID namespaces (CI has both)")


def _in_fresh_pid_namespace(home, job: str) -> subprocess.Popen:
    return subprocess.Popen(["unshare", "-p", "-f", "--kill-child", sys.executable, "-c",
                             _CHILD, str(home), job], stdout=subprocess.PIPE, text=True)


def _killed(child: subprocess.Popen, home) -> None:
    """SIGKILL the namespace's process and wait until the OS has released its session lock:
    killing unshare reaches its child (PID 1 inside) a moment later, and only its exit
    closes the lock's file descriptor."""
    child.kill()
    child.wait()
    child.stdout.close()
    deadline = time.monotonic() + 20
    for lock in (home / "sessions").glob("*.lock"):
        probe = FileLock(lock)
        while True:
            try:
                probe.acquire(timeout=0)
            except Timeout:
                assert time.monotonic() < deadline, "the killed session still holds its lock"
                time.sleep(0.05)
                continue
            probe.release()  # the file stays, as a dead session leaves it
            break


def _first_line(child: subprocess.Popen) -> tuple[int, dict]:
    words = child.stdout.readline().split(" ", 3)
    assert words[0] == "pid", words
    return int(words[1]), eval(words[3])  # our own child's repr of a dict of str


@needs_pid_namespaces
def test_a_kernel_restarted_with_the_same_pid_recovers_the_dead_ones_jobs(tmp_path):
    """A job cut off by a restart would look 'running' forever in history."""
    first = _in_fresh_pid_namespace(tmp_path, "001abc")
    try:
        first_pid, _ = _first_line(first)
    finally:
        _killed(first, tmp_path)  # SIGKILL: no cleanup code runs
    second = _in_fresh_pid_namespace(tmp_path, "-")
    second_pid, seen = _first_line(second)
    second.wait()
    second.stdout.close()
    assert first_pid == second_pid  # the situation itself: the same PID, another kernel
    assert seen == {"001abc": "interrupted"}


@needs_pid_namespaces
def test_a_live_session_is_left_alone_and_a_dead_one_is_not_kept_alive_by_its_pid(tmp_path):
    """A live kernel's jobs would be marked interrupted by its neighbour, or a dead one's
    kept running because some unrelated process here has the PID it had (PID 1)."""
    live = _in_fresh_pid_namespace(tmp_path, "001abc")
    try:
        pid, _ = _first_line(live)
        assert pid == 1  # in its namespace; here, PID 1 is an unrelated live process
        with Store(tmp_path) as store:
            assert store.job("001abc")["status"] == "running"  # its lock is held
    finally:
        _killed(live, tmp_path)
    with Store(tmp_path) as store:
        job = store.job("001abc")
        assert job["status"] == "interrupted"
        assert job["cost_unknown_usd"] == pytest.approx(0.24)
        assert job["host"]  # which machine ran it, for a ledger shared between hosts
