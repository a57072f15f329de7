"""A fast, pure model of the worlds that drives the real policy object, to search its settings.

Not the benchmark: goodput.py's numbers go through the real engine against the simulator.
This is a discrete-event model of the same worlds (nbp_jupyter.sim.model draws each call's
fate, with the same seeds and clock) with no sockets and no sleeping, so thousands of jobs
run in a second and a grid of settings in a minute on one core. It keeps the engine's
semantics that matter to the policy: a job holds one of `concurrency` slots from its first
attempt to its end, its time counts from then, an attempt is cut at its timeout (a hang
always is), billed calls cost their price and abandoned ones their price as unknown cost,
and every finished attempt feeds the session's evidence (policy.regime). A hedge takes a
second slot and races its main attempt; the first image wins, the loser is unknown cost.

    python benchmarks/policy_search.py                  # ours (and hedge=True) vs seeds
    python benchmarks/policy_search.py --requests 60 --concurrency 4   # issue 13's scale
    python benchmarks/policy_search.py --search         # the grid, judged in every world
    python benchmarks/policy_search.py --frontier slow  # what any setting can do in one world
    python benchmarks/policy_search.py --hedges         # which hedge pays, if any
    python benchmarks/policy_search.py --steps          # session 5's changes, one at a time
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import itertools
import random
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nbp_jupyter import policy as pol  # noqa: E402
from nbp_jupyter.pricing import image_price  # noqa: E402
from nbp_jupyter.sim import model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from goodput import WORLDS, policies  # noqa: E402

MODEL = "gemini-3-pro-image-preview"
OK_KINDS = ("ok", "thought", "downgrade")
# How the engine names each simulated failure, and whether it is billed (False), or of
# unknown cost (True: the call was out and may still be made).
FAILED_AS = {"overloaded": ("overloaded", False), "rate_limited": ("rate_limited", False),
             "server_error": ("server_error", False), "deadline": ("server_error", False),
             "html502": ("bad_response", False), "html200": ("bad_response", False),
             "truncated": ("bad_response", True), "disconnect": ("connection", True),
             "no_image": ("bad_response", False), "safety": ("blocked", False)}
CUT = ("hang", "drip")  # only the client's timeout ends these


def seeds_policy() -> pol.RetryPolicy:
    """The seed articles' policy, exactly as goodput.py runs it (docs/facts.md)."""
    return policies(480.0)["seeds"]


def simulate(world: str, policy: pol.RetryPolicy, requests: int = 200, concurrency: int = 20,
             seed: int = 7, hedge_slots: str = "first") -> dict:
    """Run `requests` 4K jobs through `policy` in `world`; the goodput.py row.

    A hedge (policy.hedge) needs a slot under `concurrency`: "first" (the engine's rule,
    nbp_jupyter/slots.py) waits, while its main attempt flies, for the next slot to come
    free, ahead of jobs that have not started; "free" takes one only if it is free when the
    hedge is due (the engine's rule before issue 13)."""
    profile = model.PROFILES[world]
    rng = random.Random(seed)
    seen: list[pol.Seen] = []
    seen_count: dict[tuple, int] = {}
    events: list = []
    order = itertools.count()
    jobs = [{"i": i, "history": [], "cost": 0.0, "unknown": 0.0, "got": None, "live": {},
             "done": False} for i in range(requests)]
    queue = list(reversed(jobs))
    waiting: list[tuple] = []  # hedges due, waiting for a slot: (job, attempt number)
    done = []
    busy = [0]  # slots held: one per started job, one per flying hedge
    attempt_ids = itertools.count()
    hedges = [0]

    def push(t, kind, job, data=None):
        heapq.heappush(events, (t, next(order), kind, job["i"], data))

    def free_slot(t):
        busy[0] -= 1
        while waiting:  # a due hedge whose main attempt still flies goes first
            job, main_id, hedge = waiting.pop(0)
            if main_id in job["live"] and not job["done"]:
                busy[0] += 1
                launch(t, job, hedge, hedged=True)
                return
        if queue:
            nxt = queue.pop()
            nxt["start"] = t
            busy[0] += 1
            push(t, "decide", nxt)

    def launch(t, job, decision, hedged=False):
        i = job["i"]
        resolution = policy.ladder[decision.rung].resolution
        key = (i, resolution)
        seen_count[key] = seen_count.get(key, 0) + 1
        digest = hashlib.sha256(f"{seed}|{key}|{seen_count[key]}".encode()).digest()
        fate = model.draw(profile, resolution, random.Random(digest), t)
        took, outcome, unknown, retry = _play(fate, decision.timeout_s)
        aid = next(attempt_ids)
        job["live"][aid] = (resolution, hedged)
        past = pol.Past(decision.rung, outcome, t - job["start"], took, decision.timeout_s, retry)
        got = ("2K" if fate.kind == "downgrade" else resolution) if outcome == "ok" else None
        push(t + took, "end", job, (aid, past, pol.Seen(resolution, outcome, t + took, took,
                                                        decision.timeout_s), unknown, got))
        if hedged:
            hedges[0] += 1
        return aid

    for _ in range(min(concurrency, requests)):
        job = queue.pop()
        job["start"] = 0.0
        busy[0] += 1
        push(0.0, "decide", job)
    while events:
        t, _, kind, i, data = heapq.heappop(events)
        job = jobs[i]
        if job["done"]:
            continue
        if kind == "decide":
            now = t - job["start"]
            regime = pol.regime(seen[-64:], t, policy)
            decision = pol.decide(policy, job["history"], now, rng.random(), regime=regime)
            if isinstance(decision, pol.Stop):
                finish(job, now, done)
                free_slot(t)
                continue
            push(t + decision.wait_s, "send", job, decision)
        elif kind == "send":
            aid = launch(t, job, data)
            hedge = pol.hedge(policy, replace(data, wait_s=0.0), t - job["start"],
                              regime=pol.regime(seen[-64:], t, policy))
            if hedge is not None:
                push(t + hedge.wait_s, "hedge", job, (aid, replace(hedge, wait_s=0.0)))
        elif kind == "hedge":
            main_id, hedge = data
            if main_id not in job["live"]:
                continue
            if busy[0] < concurrency:
                busy[0] += 1
                launch(t, job, hedge, hedged=True)
            elif hedge_slots == "first":
                waiting.append((job, main_id, hedge))
        elif kind == "end":  # the policy learns of an attempt only when it ends
            aid, past, seen_now, unknown, got = data
            if aid not in job["live"]:
                continue
            _, hedged = job["live"].pop(aid)
            price = image_price(MODEL, seen_now.resolution)
            if hedged:
                free_slot(t)
            job["history"].append(past)
            seen.append(seen_now)
            if got:
                job["cost"] += price
                job["got"] = got
                for other, (res, other_hedged) in list(job["live"].items()):
                    job["unknown"] += image_price(MODEL, res)  # cancelled mid-flight
                    job["live"].pop(other)
                    if other_hedged:
                        free_slot(t)
                finish(job, t - job["start"], done)
                free_slot(t)
                continue
            if unknown:
                job["unknown"] += price
            if not job["live"]:
                job["history"].sort(key=lambda p: (p.started_s, p.rung))
                push(t, "decide", job)
    row = _row(done)
    row["hedges/img"] = hedges[0] / max(sum(1 for j in done if j["got"]), 1)
    return row


def finish(job: dict, elapsed: float, done: list) -> None:
    job["elapsed"], job["done"] = elapsed, True
    done.append(job)


def _play(fate: model.Outcome, timeout: float) -> tuple[float, str, bool, float | None]:
    """(seconds, outcome, cost unknown?, server's retry delay) of one attempt."""
    if fate.kind in CUT:  # a dead path: only our cut ends it, at an unknown cost
        return timeout, "timeout", True, None
    if fate.delay_s > min(timeout, model.SERVER_LIMIT_S):
        # The server ends the call at the deadline we sent it (X-Server-Timeout) or at its
        # own limit, with a 504 that is not billed (engine.SERVER_DEADLINE_GRACE_S).
        if timeout <= model.SERVER_LIMIT_S:
            return timeout, "timeout", False, None
        return model.SERVER_LIMIT_S, "server_error", False, None
    if fate.kind in OK_KINDS:
        return fate.delay_s, "ok", False, None
    outcome, unknown = FAILED_AS[fate.kind]
    return fate.delay_s, outcome, unknown, fate.retry_after_s


def _row(done: list[dict]) -> dict:
    got = [j for j in done if j["got"]]
    times = sorted(j["elapsed"] for j in got)
    n = max(len(got), 1)
    return {"delivered %": 100 * len(got) / len(done),
            "at 4K %": 100 * sum(j["got"] == "4K" for j in got) / len(done),
            "P95 s": pol.percentile(times, 0.95) if times else float("nan"),
            "cost/img": sum(j["cost"] + j["unknown"] for j in done) / n}


def judge(ours: dict, seeds: dict) -> dict:
    """Issue 13's goals as numbers: delivered ratio, at-4K points, P95 ratio, cost ratio."""
    return {"delivered": ours["delivered %"] / max(seeds["delivered %"], 1e-9),
            "at4K": ours["at 4K %"] - seeds["at 4K %"],
            "P95": ours["P95 s"] / seeds["P95 s"],
            "cost": ours["cost/img"] / max(seeds["cost/img"], 1e-9)}


def meets(j: dict) -> bool:
    return j["delivered"] >= 0.995 and j["at4K"] >= -5 and j["P95"] <= 0.6 and j["cost"] <= 1.1


_SEEDS_ROWS: dict[tuple, dict] = {}


def evaluate(policy: pol.RetryPolicy, worlds=WORLDS, seeds=(1, 2, 3), requests=200,
             concurrency=20, hedge_slots: str = "first") -> dict[str, dict]:
    """Per world, the judged ratios averaged over `seeds`."""
    out = {}
    for world in worlds:
        rows = []
        for s in seeds:
            key = (world, requests, concurrency, s)
            if key not in _SEEDS_ROWS:
                _SEEDS_ROWS[key] = simulate(world, seeds_policy(), requests, concurrency, s)
            rows.append(judge(simulate(world, policy, requests, concurrency, s, hedge_slots),
                              _SEEDS_ROWS[key]))
        out[world] = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    return out


def grid():
    """The settings searched: cut margin and pace before any success, tries at 4K, breaker
    length and cooldown, patience, and whether a retry after a cut waits longer."""
    base = pol.RetryPolicy(ladder=pol.build_ladder("4K", True))
    for margin, unseen, tries, breaker, cooldown, patience, escalate in itertools.product(
            (0.8, 1.0), (1.5, 2.0), (3, 4), (6, 8, 10), (120.0, 180.0), (300.0, 600.0),
            (False, True)):
        yield (f"margin {margin} unseen {unseen} tries {tries} breaker {breaker} "
               f"cooldown {cooldown:.0f} patience {patience:.0f} escalate {escalate}",
               replace(base, timeout_margin=margin, unseen_pace=unseen,
                       attempts={**pol.DEFAULT_ATTEMPTS, "4K": tries},
                       breaker_failures=breaker, breaker_cooldown_s=cooldown,
                       patience_s=patience, escalate=escalate))


def frontier(world: str, requests: int, concurrency: int) -> None:
    """What any setting of the policy can do in one world: the lowest P95 ratio among the
    settings that keep delivery and the share at 4K within the goals, and the lowest at all."""
    base = pol.RetryPolicy(ladder=pol.build_ladder("4K", True))
    results = []
    for margin, unseen, tries, ceiling, breaker in itertools.product(
            (0.8, 1.0, 1.3, 1.6), (1.0, 2.0, 2.6), (2, 3, 4, 5), (450.0, 550.0, 660.0), (6, None)):
        candidate = replace(base, timeout_margin=margin, unseen_pace=unseen,
                            attempts={**pol.DEFAULT_ATTEMPTS, "4K": tries},
                            timeouts={**pol.DEFAULT_TIMEOUTS, "4K": ceiling},
                            breaker_failures=breaker)
        name = (f"margin {margin} unseen {unseen} tries {tries} 4K ceiling {ceiling:.0f} "
                f"breaker {breaker}")
        results.append((name, evaluate(candidate, (world,), requests=requests,
                                       concurrency=concurrency)[world]))
    within = [r for r in results if r[1]["delivered"] >= 0.995 and r[1]["at4K"] >= -5]
    for label, pool in (("best P95 within the delivery and 4K goals", within),
                        ("best P95 at all", results)):
        if pool:
            name, best = min(pool, key=lambda r: r[1]["P95"])
            show(f"{world}, {label} ({len(pool)} of {len(results)} settings): {name}",
                 {world: best})


def hedges(worlds, requests: int, concurrency: int) -> None:
    """Which hedge, if any, pays: when it fires (P95 or P99), what it asks for (the same
    size while healthy, or the next size down), and where its slot comes from (only a free
    one, or the next to come free ahead of jobs not started), over seeds 1-10."""
    base = pol.RetryPolicy(ladder=pol.build_ladder("4K", True))
    seeds = tuple(range(1, 11))
    show("no hedge (the defaults)", evaluate(base, worlds, seeds, requests, concurrency))
    points = {"P95": pol.SAME_SIZE_HEDGE_AFTER, "P99": pol.HEDGE_AFTER}
    for (point, after), same, slots in itertools.product(points.items(), (True, False),
                                                         ("first", "free")):
        candidate = replace(base, hedge_after=dict(after), hedge_same_size=same,
                            learn_hedge=False)
        what = "same size while healthy" if same else "next size down"
        show(f"hedge at {point}, {what}, slot {slots}",
             evaluate(candidate, worlds, seeds, requests, concurrency, slots))


def steps(worlds, requests: int, concurrency: int, seeds) -> None:
    """The defaults before session 5 and each of its changes added in turn: the cut at
    0.8 x P99, a fourth try at the size asked after quick failures, a breaker of ten."""
    now = pol.RetryPolicy(ladder=pol.build_ladder("4K", True))
    before = replace(now, timeout_margin=1.0, quick_extra_tries=0, breaker_failures=6)
    for name, candidate in (
            ("before: cut at P99, 3 tries at 4K, breaker of 6", before),
            ("+ cut at 0.8 x P99", replace(before, timeout_margin=now.timeout_margin)),
            ("+ a fourth try after quick failures",
             replace(before, timeout_margin=now.timeout_margin,
                     quick_extra_tries=now.quick_extra_tries)),
            ("+ breaker of 10: the defaults", now),
            ("the defaults + hedge=True", replace(now, hedge_after=dict(pol.SAME_SIZE_HEDGE_AFTER),
                                                  hedge_same_size=True))):
        show(name, evaluate(candidate, worlds, seeds, requests, concurrency))


def show(name: str, result: dict[str, dict], out=sys.stdout) -> str:
    """One line per setting: per world, delivered ratio, 4K points, P95 and cost ratios."""
    cells = "  ".join(f"{w} d{r['delivered']:.2f} 4K{r['at4K']:+.0f} P95 {r['P95']:.2f} "
                      f"$ {r['cost']:.2f}" for w, r in result.items())
    if out is not None:
        print(f"{name}: {cells}", file=out, flush=True)
    return f"{name}: {cells}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--search", action="store_true", help="search the grid")
    p.add_argument("--frontier", metavar="WORLD",
                   help="the best P95 any setting reaches in one world, within the goals or not")
    p.add_argument("--hedges", action="store_true",
                   help="compare hedges (when, which size, which slot) with none, seeds 1-10")
    p.add_argument("--steps", action="store_true",
                   help="session 5's changes one at a time (seeds 1-10, or 1-30 below 100 jobs)")
    p.add_argument("--world", default=",".join(WORLDS))
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=20)
    args = p.parse_args(argv)
    worlds = args.world.split(",")
    if args.frontier:
        frontier(args.frontier, args.requests, args.concurrency)
        return 0
    ours = pol.RetryPolicy(ladder=pol.build_ladder("4K", True))
    if args.steps:
        steps(worlds, args.requests, args.concurrency,
              tuple(range(1, 11 if args.requests >= 100 else 31)))
        return 0
    if args.hedges:
        hedges(worlds, args.requests, args.concurrency)
        return 0
    if not args.search:  # ratios against the seeds, averaged over seeds 1-3
        lines = [show(name, evaluate(policies(480.0)[name], worlds, requests=args.requests,
                                     concurrency=args.concurrency), out=None)
                 for name in ("ours", "ours+hedge")]
        print("ratios: " + "; ".join(lines))
        return 0
    show("ours", evaluate(ours, worlds, requests=args.requests, concurrency=args.concurrency))
    scored = []
    for name, candidate in grid():
        result = evaluate(candidate, worlds, requests=args.requests,
                          concurrency=args.concurrency)
        worst = max(r["P95"] for r in result.values())
        scored.append((sum(not meets(r) for r in result.values()), worst, name, result))
    scored.sort(key=lambda s: s[:2])
    print("\nbest by (worlds missed, worst P95 ratio):")
    for missed, _, name, result in scored[:8]:
        show(f"[{missed} missed] {name}", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
