"""Batches in the ledger: the intent before the create, the progress, and each result line
as a job with one attempt at the batch price.

It shares `ledger.sqlite` with store.py (its own connection: SQLite in WAL mode serialises
writers across connections) and adds two tables. A line's job, its attempt, its place in the
batch and the download offset after it are committed together, so a kernel killed
mid-download resumes from the last whole line and never records an image twice. Image files
get a name fixed by batch and line, written whole then renamed: a line processed twice
overwrites its own file instead of adding a second.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from .store import LEDGER_NAME, slug
from .types import Attempt, GenerationResult

# Our states of a batch: "creating" from the recorded intent until the service has named it.
BatchState = Literal["creating", "pending", "running", "collecting", "done", "failed",
                     "cancelled", "expired"]
BATCH_STATES: tuple[str, ...] = get_args(BatchState)
UNFINISHED: tuple[str, ...] = ("creating", "pending", "running", "collecting")
FINAL_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled", "expired"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY, display_name TEXT UNIQUE, name TEXT, session TEXT, created REAL,
    finished REAL, provider TEXT, base_url TEXT, model TEXT, time_scale REAL, state TEXT,
    remote_state TEXT, total INTEGER, done INTEGER DEFAULT 0, failed INTEGER DEFAULT 0,
    cost_usd REAL DEFAULT 0, create_sent INTEGER DEFAULT 0, input_file TEXT,
    responses_file TEXT, download_offset INTEGER DEFAULT 0, error TEXT, simulated INTEGER
);
CREATE TABLE IF NOT EXISTS batch_lines (
    batch_id TEXT, key TEXT, number INTEGER, prompt TEXT, size TEXT, aspect TEXT,
    job_id TEXT, status TEXT DEFAULT 'waiting', error TEXT, PRIMARY KEY (batch_id, key)
);
"""


@dataclass(frozen=True)
class LineRow:
    key: str
    number: int
    prompt: str
    size: str
    aspect: str
    job_id: str | None
    status: str
    error: str | None


class BatchLedger:
    """The batches tables of one NBP_HOME's ledger (create the Store first: it owns jobs)."""

    def __init__(self, home: Path | str):
        self.home = Path(home).resolve()
        self.folder = self.home / "images" / "batches"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.home / LEDGER_NAME, check_same_thread=False,
                                   isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> BatchLedger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _transaction(self):
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db

    def _one(self, sql: str, args: tuple = ()) -> dict | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return dict(row) if row else None

    def _write(self, sql: str, args: tuple | dict = ()) -> None:
        with self._lock:
            self._db.execute(sql, args)

    # ----- a batch's life -----------------------------------------------------------------
    def record_intent(self, batch_id: str, display_name: str, session: str, provider: str,
                      base_url: str | None, model: str, time_scale: float,
                      lines: list[tuple[str, str, str, str]]) -> None:
        """Written before anything is sent: the batch and its lines (key, prompt, size, aspect)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO batches (id, display_name, session, created, provider, base_url,"
                " model, time_scale, state, total, simulated) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (batch_id, display_name, session, time.time(), provider, base_url, model,
                 time_scale, "creating", len(lines), int(provider == "sim")))
            db.executemany(
                "INSERT INTO batch_lines (batch_id, key, number, prompt, size, aspect)"
                " VALUES (?,?,?,?,?,?)",
                [(batch_id, key, n, prompt, size, aspect)
                 for n, (key, prompt, size, aspect) in enumerate(lines)])

    def update(self, batch_id: str, **fields) -> None:
        """Set columns of a batch row (names are ours, never user input)."""
        names = [name for name in fields if name in _COLUMNS]
        if names:
            self._write(f"UPDATE batches SET {', '.join(f'{n}=?' for n in names)} WHERE id=?",
                        (*[fields[n] for n in names], batch_id))

    def finish(self, batch_id: str, state: BatchState, error: str | None = None,
               line_status: str | None = None) -> None:
        """End a batch; lines still without a result get `line_status` and the error."""
        with self._transaction() as db:
            db.execute("UPDATE batches SET state=?, error=?, finished=? WHERE id=?",
                       (state, error, time.time(), batch_id))
            if line_status:
                db.execute("UPDATE batch_lines SET status=?, error=? WHERE batch_id=?"
                           " AND job_id IS NULL", (line_status, error, batch_id))

    # ----- reading --------------------------------------------------------------------------
    def batch(self, batch_id: str) -> dict | None:
        return self._one("SELECT * FROM batches WHERE id=?", (batch_id,))

    def batches(self, limit: int | None = None) -> list[dict]:
        sql = "SELECT * FROM batches ORDER BY created DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            return [dict(r) for r in self._db.execute(sql)]

    def unfinished(self) -> list[dict]:
        marks = ",".join("?" * len(UNFINISHED))
        with self._lock:
            return [dict(r) for r in self._db.execute(
                f"SELECT * FROM batches WHERE state IN ({marks}) ORDER BY created", UNFINISHED)]

    def lines(self, batch_id: str) -> list[LineRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, number, prompt, size, aspect, job_id, status, error"
                " FROM batch_lines WHERE batch_id=? ORDER BY number", (batch_id,)).fetchall()
        return [LineRow(**dict(r)) for r in rows]

    def line(self, batch_id: str, key: str) -> LineRow | None:
        row = self._one("SELECT key, number, prompt, size, aspect, job_id, status, error"
                        " FROM batch_lines WHERE batch_id=? AND key=?", (batch_id, key))
        return LineRow(**row) if row else None

    # ----- result lines -----------------------------------------------------------------------
    def image_path(self, batch_id: str, line: LineRow, resolution: str, ext: str) -> Path:
        """Fixed by batch and line: a line processed again lands on the same file."""
        return (self.folder / batch_id /
                f"{line.number:05d}-{slug(line.prompt)}-{resolution}.{ext}")

    def save_image(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.part")
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return path

    def record_line(self, batch_id: str, session: str, line: LineRow, result: GenerationResult,
                    attempt: Attempt, offset: int | None, provider: str) -> bool:
        """The line's job, its one attempt, the batch's counts and the download offset, in
        one commit. False (and nothing written but the offset) if the line already has one."""
        now = time.time()
        job_id = result.job_id
        with self._transaction() as db:
            if offset is not None:
                db.execute("UPDATE batches SET download_offset=MAX(download_offset, ?)"
                           " WHERE id=?", (offset, batch_id))
            known = db.execute("SELECT job_id FROM batch_lines WHERE batch_id=? AND key=?",
                               (batch_id, line.key)).fetchone()
            if known is None or known[0] is not None:
                return False
            batch = db.execute("SELECT created FROM batches WHERE id=?", (batch_id,)).fetchone()
            status = "done" if result.success else "failed"
            db.execute(
                "INSERT INTO jobs (id, session, pid, host, created, finished, prompt, requested,"
                " aspect, model, provider, status, resolution, width, height, image_path,"
                " attempts, elapsed_s, cost_usd, cost_unknown_usd, error, simulated, downgraded,"
                " silent_downgrade) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,1,?,?,0,?,?,?,?)",
                (job_id, session, os.getpid(), socket.gethostname(), batch[0], now,
                 line.prompt, line.size, line.aspect, result.model, provider, status,
                 result.resolution, result.width, result.height,
                 str(result.image_path) if result.image_path else None, result.elapsed_s,
                 result.cost_usd, result.error, int(result.simulated), int(result.downgraded),
                 int(result.silent_downgrade)))
            # elapsed_s stays empty: a batch's turnaround must not teach the interactive
            # timeouts (store.latencies) what a call takes.
            db.execute(
                "INSERT INTO attempts (job_id, number, started, resolution, model, provider,"
                " outcome, http_status, waited_s, elapsed_s, billed, cost_usd, detail, width,"
                " height, estimate_usd, input_text_tokens, input_image_tokens,"
                " output_image_tokens, output_text_tokens, thought_tokens)"
                " VALUES (?,1,?,?,?,?,?,?,0,NULL,?,?,?,?,?,?,?,?,?,?,?)",
                (job_id, batch[0], attempt.resolution, attempt.model, provider, attempt.outcome,
                 attempt.http_status, attempt.billed, attempt.cost_usd, attempt.detail,
                 attempt.width, attempt.height, attempt.cost_usd, attempt.input_text_tokens,
                 attempt.input_image_tokens, attempt.output_image_tokens,
                 attempt.output_text_tokens, attempt.thought_tokens))
            db.execute("UPDATE batch_lines SET job_id=?, status=?, error=? WHERE batch_id=?"
                       " AND key=?", (job_id, status, result.error, batch_id, line.key))
            db.execute(f"UPDATE batches SET {'done' if result.success else 'failed'}="
                       f"{'done' if result.success else 'failed'}+1, cost_usd=cost_usd+?"
                       " WHERE id=?", (result.cost_usd, batch_id))
        return True


_COLUMNS = frozenset({"name", "state", "remote_state", "done", "failed", "create_sent",
                      "input_file", "responses_file", "download_offset", "error", "finished",
                      "base_url"})
