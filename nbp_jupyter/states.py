"""The closed sets of words that describe a job and its attempts, as types.

A type checker (mypy, pyright) rejects any other word where these are expected, so a typo
such as `billed="unkown"` fails a check instead of a ledger query. The tuples are the same
sets at run time, for validation and for the simulator's tests.
"""

from __future__ import annotations

from typing import Literal, get_args

# What became of one HTTP attempt (errors.py maps each error class to one of these).
Outcome = Literal["ok", "timeout", "overloaded", "rate_limited", "server_error", "connection",
                  "bad_response", "blocked", "auth", "bad_request", "cancelled"]
# Whether the provider charged for an attempt: "unknown" when a request may have finished on
# the server after we stopped listening (a timeout, a cut connection, a cancel).
Billed = Literal["yes", "no", "unknown"]
# A job's state: the first seven while this session runs it; "interrupted" is what crash
# recovery writes for a job whose kernel died.
JobStatus = Literal["queued", "running", "retrying", "fell_back", "hedging", "done", "failed",
                    "cancelled", "interrupted"]
# The attempt row's outcome in the ledger: an Outcome, or "running" while it is on the wire.
LedgerOutcome = Literal[Outcome, "running"]

OUTCOMES: tuple[str, ...] = get_args(Outcome)
BILLED: tuple[str, ...] = get_args(Billed)
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
FINAL_OUTCOMES: frozenset[str] = frozenset({"blocked", "auth", "bad_request", "cancelled"})
