"""A local simulator of the image services, on loopback, for tests, tutorials and no-key use.

    with nbp_jupyter.sim.start(profile="typical", time_scale=0.001, seed=7) as sim:
        ...  # point a client at sim.url

It speaks the Gemini `generateContent` and the OpenAI-compatible `/v1/images/generations`
wire formats (docs/facts.md "Answers on the wire"), with latency and failures modelled on
the published figures.
"""

from __future__ import annotations

from .model import KINDS, PROFILES
from .runner import SimServer, start

__all__ = ["KINDS", "PROFILES", "SimServer", "start"]
