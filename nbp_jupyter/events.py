"""What the engine tells the world while a job runs; the display and panel only read these."""

from __future__ import annotations

from dataclasses import dataclass

from .types import Attempt, GenerationResult


@dataclass(frozen=True)
class AttemptStarted:
    job_id: str
    number: int
    resolution: str
    model: str
    timeout_s: float
    tries_on_rung: int  # k of this attempt at this rung
    max_on_rung: int


@dataclass(frozen=True)
class AttemptFailed:
    job_id: str
    attempt: Attempt
    hint: str
    gateway_retried: bool = False  # a gateway's error after its own upstream retries


@dataclass(frozen=True)
class Waiting:
    job_id: str
    wait_s: float
    reason: str


@dataclass(frozen=True)
class FellBack:
    job_id: str
    from_label: str
    to_label: str
    reason: str
    hedge: bool = False  # the lower rung runs beside the slow one instead of after it


@dataclass(frozen=True)
class Finished:
    job_id: str
    result: GenerationResult


Event = AttemptStarted | AttemptFailed | Waiting | FellBack | Finished
