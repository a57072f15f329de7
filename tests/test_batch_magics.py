"""%%nbp_batch and %nbp_batches in an in-process IPython shell."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from .test_magics_inprocess import ip  # noqa: F401  (the shared shell fixture)


def test_batch_cell_sends_one_prompt_per_line_and_lists_it(ip, monkeypatch):  # noqa: F811
    """Each non-empty line is a prompt; --wait collects; %nbp_batches lists the batch."""
    ip.run_line_magic("config", "Nbp.time_scale = 0.0005")
    ip.run_cell_magic("nbp_batch", "--size 1K --aspect 16:9 --name cats --out cats --wait",
                      "a grey cat\n\n  a black cat  \n")
    job = ip.user_ns["cats"]
    assert job.state == "done" and job.total == 2
    assert sorted(line.prompt for line in job._lines()) == ["a black cat", "a grey cat"]
    assert all(r.requested == "1K" for r in job.results())
    from nbp_jupyter import batch_magics
    shown = []
    monkeypatch.setattr(batch_magics, "display", lambda obj: shown.append(obj.data))
    ip.run_line_magic("nbp_batches", "")
    assert shown and "cats-" in shown[-1] and "done" in shown[-1]


def test_batch_from_a_variable(ip):  # noqa: F811
    """%nbp_batch --from takes the prompts from a list in the user's namespace."""
    ip.run_line_magic("config", "Nbp.time_scale = 0.0005")
    ip.user_ns["prompts"] = ["one", "two", "three"]
    ip.run_line_magic("nbp_batch", "--from prompts --out b --wait")
    assert ip.user_ns["b"].total == 3 and ip.user_ns["b"].done()


@pytest.mark.parametrize("line,cell,words", [
    ("--from prompts", "also a prompt", "not both"),
    ("--from nowhere", None, "no such variable"),
    ("--size 3K", "a cat", "unknown size"),
    ("", "\n", "no prompts"),
    ("--out 1bad", "a cat", "Python name")])
def test_batch_mistakes_are_usage_errors(ip, line, cell, words):  # noqa: F811
    """Mistakes are one line, before anything is sent."""
    ip.user_ns["prompts"] = ["x"]
    with pytest.raises(UsageError, match=words):
        if cell is None:
            ip.run_line_magic("nbp_batch", line)
        else:
            ip.run_cell_magic("nbp_batch", line, cell)


def test_unknown_batch_is_a_usage_error(ip):  # noqa: F811
    with pytest.raises(UsageError, match="no batch"):
        ip.run_line_magic("nbp_batches", "nothing-like-this")


def test_a_batch_counts_the_captions_clock_and_stops_at_its_end(ip):  # noqa: F811
    """The batch line said '0:46 elapsed' (wall clock, still counting after the end) above
    captions saying '15:34 simulated time' for the same batch."""
    import re
    import time

    from nbp_jupyter import batch_view
    from nbp_jupyter.timefmt import clock

    ip.run_line_magic("config", "Nbp.time_scale = 0.0005")
    ip.run_cell_magic("nbp_batch", "--size 1K --out b --wait", "a grey cat\na black cat")
    job = ip.user_ns["b"]
    first = batch_view.status_text(job)
    time.sleep(0.2)  # 400 simulated seconds at this scale
    assert batch_view.status_text(job) == first and "simulated time" in first, first
    shown = re.search(r"([0-9:]+) elapsed", first).group(1)
    assert shown == clock((job.finished - job.created) / 0.0005)
