"""`python -m nbp_jupyter.sim` / `nbp-sim`: run the simulator until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import model
from .runner import start


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nbp-sim",
        description="Local simulator of Nano Banana Pro (Gemini generateContent) and "
                    "OpenAI-compatible image endpoints, with realistic latency and failures.",
        epilog=model.failure_help() + "\n\nscript items: " + ", ".join(model.KINDS)
        + " (aliases 503, 429, 500, 502, 504); ':N' or ':Ns' sets the retry delay of 429 "
          "and the answer delay of the others, e.g. --script '503, 429:2s, hang, ok'.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--profile", default="typical", choices=list(model.PROFILES),
                   help="latency and failure profile (default typical)")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="multiply every simulated delay; 0.001 plays a 4K call in ~0.1 s")
    p.add_argument("--seed", type=int, default=0, help="seed for every random draw")
    p.add_argument("--script", default=None,
                   help="comma-separated outcomes consumed one per request, then the profile")
    p.add_argument("--api-key", default=None,
                   help="the only key accepted (default: any non-empty key)")
    p.add_argument("--realistic", action="store_true",
                   help="bodies as large as real ones (a 4K PNG ~16 MB) for benchmarks")
    p.add_argument("--state-dir", default=None,
                   help="keep simulated batches and files in this folder (default: a temporary one)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.time_scale <= 0:
        parser().error("--time-scale must be > 0")
    try:
        model.parse_script(args.script)
    except ValueError as exc:
        parser().error(str(exc))
    try:
        server = start(profile=args.profile, time_scale=args.time_scale, seed=args.seed,
                       script=args.script, api_key=args.api_key, realistic=args.realistic,
                       host=args.host, port=args.port, state_dir=args.state_dir)
    except OSError as exc:
        print(f"nbp-sim: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    print(f"listening on {server.url}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    server.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
