"""A kernel killed with SIGKILL mid-work: the ledger stays consistent and nothing paid is lost."""

from __future__ import annotations

import os
import random
import signal
import time

from PIL import Image

from nbp_jupyter.store import Store

from .kernel import Kernel


def check_consistent(home) -> dict[str, int]:
    """Every invariant a later session relies on, read with a fresh Store (which recovers)."""
    store = Store(home)
    counts: dict[str, int] = {}
    ledger_images = set()
    for job in store.jobs():
        counts[job["status"]] = counts.get(job["status"], 0) + 1
        attempts = store.attempts(job["id"])
        assert job["status"] in ("done", "failed", "cancelled", "interrupted"), job
        assert all(a["outcome"] != "running" for a in attempts), attempts
        if job["status"] == "done":
            path = job["image_path"]
            assert path and os.path.isfile(path) and not path.endswith(".part")
            with Image.open(path) as image:
                image.verify()
            ledger_images.add(os.path.realpath(path))
            assert attempts[-1]["outcome"] == "ok" and attempts[-1]["billed"] == "yes"
        if job["status"] == "interrupted":
            assert job["cost_unknown_usd"] > 0 or not attempts
            assert job["image_path"] is None
    # an image on disk without a finished row can only be one whose row the kill cut off;
    # a half-written file never has an image's name
    for path in (home / "images").glob("*"):
        assert path.name.endswith(".part") or path.suffix in (".png", ".jpg", ".webp"), path
    store.close()
    return counts


def test_sigkill_with_jobs_in_flight_and_images_arriving(tmp_path, make_sim):
    """Kill the kernel at random moments while images arrive; the ledger always reads true."""
    server = make_sim(profile="typical", time_scale=0.01, seed=3)  # a 2K call: ~0.65 s
    home = tmp_path / "home"
    rng = random.Random(5)
    totals: dict[str, int] = {}
    for round_ in range(3):
        kernel = Kernel({"NBP_HOME": str(home), "NBP_PROVIDER": "gemini",
                         "NBP_BASE_URL": server.url, "NBP_API_KEY": "crash-key",
                         "NBP_TIME_SCALE": "0.01", "NBP_WAIT": "never"})
        try:
            kernel.run("import nbp_jupyter as nbp")
            kernel.run(f"jobs = [nbp.submit(f'crash {round_} {{i}}', size='2K') for i in range(12)]")
            # kill right after an image arrives (the first one), at a random offset
            assert kernel.run("import time\nwhile not any(j.done() for j in jobs): "
                              "time.sleep(0.01)", timeout=60)["status"] == "ok"
            time.sleep(rng.uniform(0.0, 0.2))
            pid = kernel.km.provisioner.process.pid
            os.kill(pid, signal.SIGKILL)
            kernel.km.provisioner.process.wait()
        finally:
            kernel.kc.stop_channels()
            kernel.km.cleanup_resources()
        for status, n in check_consistent(home).items():
            totals[status] = n
    assert totals.get("done", 0) > 0, totals  # images did arrive before the kills
    assert totals.get("interrupted", 0) > 0, totals  # and some jobs were cut off


def test_a_half_written_file_is_never_an_image(tmp_path):
    """A '.part' file left by a kill is not listed in the ledger or taken for an image."""
    store = Store(tmp_path)
    (store.images / ".20261126-x-1K.png.abc123.part").write_bytes(b"\x89PNG half")
    assert store.jobs() == []
    path = store.save_image("job1", "a prompt", "1K", b"whole")
    assert path.suffix == ".png" and path.read_bytes() == b"whole"
    assert not list(store.images.glob("*job1*.part"))
