"""Reading the ledger back: records, totals, and a pandas view when pandas is there."""

from __future__ import annotations

from collections import defaultdict

from .store import TOKEN_COLUMNS, Store


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
        }


MIN_SAMPLES = 10  # fewer own measurements than this: trust the published figures


def expected_latency(store: Store, model: str, resolution: str) -> tuple[float, float]:
    """(P50, P95) service seconds: this machine's own history once it has enough samples."""
    from .policy import PUBLISHED_LATENCY, percentile
    samples = sorted(store.latencies(model, resolution))
    if len(samples) < MIN_SAMPLES:
        return PUBLISHED_LATENCY[resolution]
    return percentile(samples, 0.5), percentile(samples, 0.95)


def load_history(store: Store, *, limit: int | None = None,
                 session: str | None = None) -> History:
    records = store.jobs(limit=limit, session=session)
    for record in records:
        record["attempts"] = store.attempts(record["id"])
    return History(records)
