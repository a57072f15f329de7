"""Published figures the code and the simulator both rely on, in one place.

Each number is written up, with its public source, in docs/facts.md under the heading given
in its comment; change a figure there and here together. The last block holds our own
thresholds that several modules share (not published figures, but one value each).
"""

from __future__ import annotations

from typing import NamedTuple


class Quantiles(NamedTuple):
    p50: float
    p95: float
    p99: float


# docs/facts.md "Latency and success": end-to-end seconds of a healthy call, per size.
LATENCY: dict[str, Quantiles] = {
    "1K": Quantiles(45.0, 90.0, 150.0),
    "2K": Quantiles(65.0, 120.0, 180.0),
    "4K": Quantiles(120.0, 170.0, 250.0),
}
# docs/facts.md "Latency and success": the shortest generation times reported per size.
GENERATION_FLOOR_S: dict[str, float] = {"1K": 15.0, "2K": 45.0, "4K": 60.0}
# docs/facts.md "Latency and success": share of calls that deliver an image, typical hours.
TYPICAL_SUCCESS: dict[str, float] = {"1K": 0.95, "2K": 0.85, "4K": 0.50}
# docs/facts.md "Latency and success": 4K success by time of day (Beijing), worst to best.
FOURK_SUCCESS_BY_HOUR: dict[str, float] = {"00-08": 0.30, "08-16": 0.50, "16-24": 0.70}
# docs/facts.md "Latency and success": the service ends a call after this many seconds.
SERVER_LIMIT_S = 600.0
# docs/facts.md "Latency and success": on 2026-01-17 healthy calls took 180 s+ instead of
# 20-40 s, roughly 3-4x the usual latency, for a while.
SLOWDOWN_FACTOR_2026_01 = (3.0, 4.0)

# docs/facts.md "The seed articles' client policy": the baseline the benchmarks beat.
SEED_TIMEOUTS: dict[str, float] = {"1K": 60.0, "2K": 180.0, "4K": 660.0}
SEED_TRIES: dict[str, int] = {"1K": 2, "2K": 2, "4K": 3}
SEED_FIRST_WAIT_S: dict[str, float] = {"1K": 15.0, "2K": 30.0, "4K": 60.0}

# docs/facts.md "Request limits".
MAX_REFERENCES = 14
MAX_HIGH_FIDELITY_OBJECTS = 6
MAX_CHARACTER_REFERENCES = 5
MAX_INLINE_REQUEST_BYTES = 20 * 1024 * 1024
# docs/facts.md "References, edits and search grounding": one input image at most 7 MB; a
# long side past the largest the model makes (4096 px) is scaled down before sending.
MAX_REFERENCE_BYTES = 7 * 1024 * 1024
MAX_REFERENCE_SIDE = 4096
# docs/facts.md "References, edits and search grounding": Gemini 3 bills each search query.
SEARCH_QUERY_USD = 14.0 / 1000

# docs/facts.md "Prices and tokens".
OUTPUT_TOKENS: dict[str, int] = {"1K": 1120, "2K": 1120, "4K": 2000}
IMAGE_OUTPUT_USD_PER_MTOK = 120.0
TEXT_INPUT_USD_PER_MTOK = 2.0
INPUT_IMAGE_TOKENS = 560
FLASH_IMAGE_TOKENS = 1290
FLASH_IMAGE_USD = 0.039
RESELLER_USD: dict[str, float] = {"1K": 0.04, "2K": 0.14, "4K": 0.24}
# A 4K PNG body is 10-25 MB (docs/facts.md "Answers on the wire").
LARGEST_IMAGE_BYTES = 25 * 1024 * 1024

# docs/facts.md "Networks": idle connections are cut by middle boxes after this long.
IDLE_CUT_S: dict[str, float] = {"AWS ALB": 60.0, "nginx": 60.0, "Cloudflare": 100.0}

# docs/facts.md "Batch API": half the interactive price; a batch pending or running for more
# than 48 hours expires without results.
BATCH_PRICE_FACTOR = 0.5
BATCH_EXPIRES_AFTER_S = 48 * 3600.0

# ----- our own thresholds, shared so that each has one value --------------------------
# Finished attempts of one model and size before this machine's own figures replace the
# published ones: for the status line's "usually", the panel's success rate, and the
# learned timeouts and hedge points. 20 keeps a P95 from resting on one or two calls.
MIN_SAMPLES = 20
