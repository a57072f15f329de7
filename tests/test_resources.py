"""Hundreds of jobs: the concurrency limit holds, and cancelling them all leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import time

import nbp_jupyter as nbp
from nbp_jupyter.jobs import session


def sockets() -> int:
    return sum(os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
               for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}"))


def wait_for(predicate, seconds=20.0):
    end = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.02)


def test_300_jobs_respect_the_limit_and_cancel_all_cleans_up(home, make_sim):
    """300 hanging jobs: 8 on the wire at most; cancel-all closes every socket and task."""
    server = make_sim(profile="ideal", time_scale=0.01, script=",".join(["hang"] * 300))
    session().loop  # its self-pipe is a socket pair: count from after it exists
    before = sockets()
    jobs = [nbp.submit(f"job {i}", provider="gemini", base_url=server.url, api_key="k",
                       time_scale=0.01, max_concurrency=8, timeout=1e6) for i in range(300)]
    wait_for(lambda: server.app.in_flight == 8)
    time.sleep(0.3)
    assert server.max_in_flight == 8
    assert sum(j.status == "queued" for j in jobs) == 292
    assert len(session().cancel(jobs)) == 300  # what %nbp_cancel --all does
    results = [j.result(timeout=20) for j in jobs]
    assert all(j.status == "cancelled" for j in jobs)
    on_wire = [r for r in results if r.attempts]
    assert len(on_wire) == 8 and all(r.attempts[-1].billed == "unknown" for r in on_wire)
    assert all(r.cost_unknown_usd == 0 for r in results if not r.attempts)
    wait_for(lambda: server.app.in_flight == 0)  # the server saw each connection close

    async def tasks_left():
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    loop = session().loop
    assert asyncio.run_coroutine_threadsafe(tasks_left(), loop).result(5) == []
    wait_for(lambda: sockets() <= before)  # no connection left open, pooled or not
