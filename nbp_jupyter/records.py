"""Reading the ledger back: records, totals, and a pandas view when pandas is there."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import fields
from pathlib import Path

from . import facts
from .grounding import Grounding
from .store import TOKEN_COLUMNS, Store
from .timefmt import clock
from .types import Attempt, GenerationResult


class History(list):
    """A list of job records (dicts, newest first), each with its `attempts` list."""

    def to_pandas(self, *, attempts: bool = False):
        """A DataFrame with one row per job, or per attempt (with its job's prompt and
        requested size) when `attempts=True`; times are Timestamps (UTC)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("history().to_pandas() needs pandas: pip install pandas") from None
        if attempts:
            rows = [{**a, "prompt": r["prompt"], "requested": r["requested"]}
                    for r in self for a in r["attempts"]]
        else:
            rows = [{**r, "attempts": len(r["attempts"])} for r in self]  # a count per job
        frame = pd.DataFrame(rows)
        for column in ("created", "finished", "started"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
        return frame

    def totals(self) -> dict:
        """Images, attempts, billed and unknown cost, success rate per requested size, and
        the tokens the answers reported, by kind (input_text, output_image, thought, ...)."""
        tried: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        attempts = 0
        for record in self:
            for attempt in record["attempts"]:
                attempts += 1
                counts = tried[attempt["resolution"]]
                counts[0] += attempt["outcome"] == "ok"
                counts[1] += 1
        return {
            "jobs": len(self),
            "images": sum(1 for r in self if r["status"] == "done"),
            "attempts": attempts,
            "cost_usd": round(sum(r["cost_usd"] or 0 for r in self), 6),
            "cost_unknown_usd": round(sum(r["cost_unknown_usd"] or 0 for r in self), 6),
            "success_rate": {res: ok / n for res, (ok, n) in sorted(tried.items()) if n},
            "tokens": {column.removesuffix("_tokens"): sum(
                a.get(column) or 0 for r in self for a in r["attempts"])
                for column in TOKEN_COLUMNS},
            "search_queries": sum(a.get("search_queries") or 0
                                  for r in self for a in r["attempts"]),
        }


MIN_SAMPLES = facts.MIN_SAMPLES  # fewer own measurements than this: trust the published figures


def expected_latency(store: Store, model: str, resolution: str) -> tuple[float, float]:
    """(P50, P95) service seconds: this machine's own history once it has enough samples."""
    from .stats import percentile
    samples = sorted(store.latencies(model, resolution))
    if len(samples) < MIN_SAMPLES:  # docs/facts.md "Latency and success"
        return facts.LATENCY[resolution].p50, facts.LATENCY[resolution].p95
    return percentile(samples, 0.5), percentile(samples, 0.95)


def load_history(store: Store, *, limit: int | None = None,
                 session: str | None = None) -> History:
    """Job records, newest first, with their attempts and a refine's turn (Store.history)."""
    return History(store.history(limit=limit, session=session))


def result_from_record(record: dict) -> GenerationResult:
    """A ledger record (with its `attempts`) as the GenerationResult it was, so a past image
    gets the same caption as a fresh one (SIMULATED included)."""
    names = {f.name for f in fields(Attempt)}
    attempts = [Attempt(**{k: v for k, v in a.items() if k in names}) for a in record["attempts"]]
    return GenerationResult(
        success=record["status"] == "done", requested=record["requested"],
        resolution=record["resolution"], downgraded=bool(record["downgraded"]),
        width=record["width"], height=record["height"],
        image_path=Path(record["image_path"]) if record["image_path"] else None,
        model=record["model"], attempts=attempts, elapsed_s=ran_for(record)[0],
        cost_usd=record["cost_usd"] or 0.0, cost_unknown_usd=record["cost_unknown_usd"] or 0.0,
        error=record["error"], simulated=bool(record["simulated"]), prompt=record["prompt"],
        job_id=record["id"], silent_downgrade=bool(record["silent_downgrade"]),
        turn=record.get("turn") or 1, refines=record.get("refines"),
        text=record.get("text") or "", grounding=Grounding.from_json(record.get("grounding")))


def ran_for(record: dict, scale: float = 1.0) -> tuple[float, bool]:
    """(service seconds the job ran, whether that is only an upper bound).

    A job cut off by a dead kernel has no figure of its own: the ledger knows when it began
    and when the next session found it dead, so it ran at most that long (the time scale of
    these settings turns the wall-clock span into service time). Shown as '≤ 0:35', not 0:00.
    """
    if record.get("elapsed_s") is not None:
        return record["elapsed_s"], False
    if record.get("finished") and record.get("created"):
        return max(0.0, record["finished"] - record["created"]) / scale, True
    return 0.0, True


def ran_for_text(record: dict, scale: float = 1.0) -> str:
    seconds, upper = ran_for(record, scale)
    return ("≤ " if upper else "") + clock(seconds)
