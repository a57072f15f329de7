"""Reading the ledger back (records.load_history): each job with its attempts and turn."""

from __future__ import annotations

import pytest

from benchmarks import history_load
from nbp_jupyter.records import load_history
from nbp_jupyter.store import Store


@pytest.fixture
def ledger(tmp_path):
    """A ledger with this session's jobs (attempts, refines, jobs without an attempt) and
    another live session's."""
    with Store(tmp_path, session="other") as other, Store(tmp_path) as store:
        history_load.fill(other, 6, prefix="o")
        history_load.fill(store, 30)
        yield store


@pytest.mark.parametrize("limit, mine", [(None, True), (None, False), (8, True), (8, False)])
def test_history_holds_what_reading_each_job_on_its_own_finds(ledger, limit, mine):
    """%nbp_history, history() or the panel's totals would show other attempts or turns
    than the ledger holds for a job."""
    session = ledger.session if mine else None
    ours = load_history(ledger, limit=limit, session=session)
    oracle = history_load.per_job_history(ledger, limit=limit, session=session)
    assert ours == oracle
    assert [list(r) for r in ours] == [list(r) for r in oracle]  # same columns, same order
    whole = load_history(ledger, session=session)  # the ledger has every shape compared
    assert any(r.get("refines") for r in whole) and any(not r["attempts"] for r in whole)
    assert any(len(r["attempts"]) > 1 for r in whole)


def test_history_reads_the_ledger_in_a_fixed_number_of_queries(ledger):
    """The panel's totals and %nbp_history would slow down with every job the ledger holds
    (two queries per job: thousands for a long-used ledger)."""
    statements: list[str] = []
    ledger._db.set_trace_callback(statements.append)
    try:
        records = load_history(ledger)
    finally:
        ledger._db.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(records) == 36 and len(selects) == 2, selects
