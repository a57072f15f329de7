"""The engine feeds every job's outcomes to the policy: one job's wave of failures changes the
next job's first decision (real engine, simulator on loopback)."""

from __future__ import annotations

import nbp_jupyter as nbp
from nbp_jupyter.events import Waiting
from nbp_jupyter.policy import BREAKER_COOLDOWN_S, BREAKER_FAILURES

SCALE = 0.002  # the breaker's 180 s cooldown plays in 0.36 s


def _submit(server, **kw):
    return nbp.submit("a lighthouse in a storm", size="4K", provider="gemini",
                      base_url=server.url, api_key="test-key", time_scale=SCALE, **kw)


def test_a_wave_seen_by_one_job_holds_the_next_jobs_4k_until_it_is_probed(home, make_sim):
    """After six 4K failures in a row (any jobs), a new 4K job waits for the size to be
    probed again instead of walking into the same wave, and then gets its 4K image."""
    server = make_sim(profile="ideal", time_scale=SCALE,
                      script=", ".join(["503"] * BREAKER_FAILURES))
    storm = _submit(server, retries=BREAKER_FAILURES - 1, fallback=False).result(60)
    assert [a.outcome for a in storm.attempts] == ["overloaded"] * BREAKER_FAILURES
    after = _submit(server)
    result = after.result(60)
    waits = [e for e in after.events if isinstance(e, Waiting)]
    assert result.resolution == "4K" and len(result.attempts) == 1
    assert waits and "failing for every job" in waits[0].reason
    assert 0 < result.attempts[0].waited_s <= BREAKER_COOLDOWN_S
