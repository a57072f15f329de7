"""A call the server ends at the deadline we sent it is a free 504, not a cut of unknown cost."""

from __future__ import annotations

import nbp_jupyter as nbp

SCALE = 0.01


def run(server, **kw):
    return nbp.generate("a heron at dawn", size="4K", provider="gemini", base_url=server.url,
                        api_key="test-key", time_scale=SCALE, retries=0, fallback=False, **kw)


def test_a_call_past_our_deadline_ends_in_the_servers_free_504(home, make_sim):
    """The ledger and the cost say 'not billed' for a call the service itself gave up on at
    our X-Server-Timeout; the policy still sees it as our cut (a timeout)."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="ok:300s")
    result = run(server, timeout=60)
    [attempt] = result.attempts
    assert (attempt.outcome, attempt.billed, attempt.http_status) == ("timeout", "no", 504)
    assert result.cost_unknown_usd == 0.0 and "deadline" in attempt.detail
    assert server.log[0]["server_timeout"] == "60"


def test_a_dead_path_is_still_a_cut_of_unknown_cost(home, make_sim):
    """A call nobody answers (a proxy that swallowed it) is cut by us and may be billed."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="hang")
    [attempt] = run(server, timeout=60).attempts
    assert (attempt.outcome, attempt.billed) == ("timeout", "unknown")
