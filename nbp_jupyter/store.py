"""The ledger (SQLite, WAL) and the image folder: the only place nbp_jupyter writes files.

Every job and attempt gets a row before the network is touched, so a kernel that dies
mid-call leaves a trace that the next session marks as interrupted, with the attempt's
list price counted as unknown cost. Images are written to a temporary name and renamed,
so a half-written file is never taken for an image.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TypedDict, cast

from filelock import FileLock, Timeout

from .errors import ConfigError
from .states import Billed, JobStatus, LedgerOutcome
from .turns import Exchange
from .types import Attempt, GenerationResult, Request

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, session TEXT, pid INTEGER, host TEXT, created REAL, finished REAL,
    prompt TEXT, requested TEXT, aspect TEXT, model TEXT, provider TEXT, status TEXT,
    resolution TEXT, width INTEGER, height INTEGER, image_path TEXT, attempts INTEGER,
    elapsed_s REAL, cost_usd REAL DEFAULT 0, cost_unknown_usd REAL DEFAULT 0, error TEXT,
    simulated INTEGER, downgraded INTEGER, silent_downgrade INTEGER, text TEXT, grounding TEXT
);
CREATE TABLE IF NOT EXISTS attempts (
    job_id TEXT, number INTEGER, started REAL, resolution TEXT, model TEXT, provider TEXT,
    outcome TEXT, http_status INTEGER, waited_s REAL, elapsed_s REAL, billed TEXT,
    cost_usd REAL, detail TEXT, width INTEGER, height INTEGER, estimate_usd REAL,
    input_text_tokens INTEGER, input_image_tokens INTEGER, output_image_tokens INTEGER,
    output_text_tokens INTEGER, thought_tokens INTEGER, search_queries INTEGER,
    PRIMARY KEY (job_id, number)
);
CREATE TABLE IF NOT EXISTS turns (
    job_id TEXT PRIMARY KEY, parent_id TEXT, number INTEGER, prompt TEXT, refs TEXT,
    parts TEXT, provider TEXT, created REAL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created);
CREATE INDEX IF NOT EXISTS attempts_latency ON attempts(model, resolution, outcome, started);
"""


class JobRow(TypedDict):
    """One row of the ledger's jobs table, as `Store.jobs()` and `Store.job()` return it."""

    id: str
    session: str
    pid: int | None
    host: str | None
    created: float
    finished: float | None
    prompt: str
    requested: str
    aspect: str
    model: str
    provider: str
    status: JobStatus
    resolution: str | None
    width: int | None
    height: int | None
    image_path: str | None
    attempts: int
    elapsed_s: float | None
    cost_usd: float
    cost_unknown_usd: float
    error: str | None
    simulated: int
    downgraded: int | None
    silent_downgrade: int | None
    text: str | None  # the model's words with the image
    grounding: str | None  # grounding.Grounding as JSON, for a search-grounded image


class AttemptRow(TypedDict):
    """One row of the attempts table, as `Store.attempts()` returns it."""

    job_id: str
    number: int
    started: float
    resolution: str
    model: str
    provider: str
    outcome: LedgerOutcome
    http_status: int | None
    waited_s: float
    elapsed_s: float | None
    billed: Billed
    cost_usd: float
    detail: str
    width: int | None
    height: int | None
    estimate_usd: float
    input_text_tokens: int | None
    input_image_tokens: int | None
    output_image_tokens: int | None
    output_text_tokens: int | None
    thought_tokens: int | None
    search_queries: int | None


LEDGER_NAME = "ledger.sqlite"
# A '.part' file untouched this long belongs to no live write: answers stream in seconds.
PART_STALE_S = 3600.0
SESSIONS_DIR = "sessions"  # one lock file per live session: the OS releases it at death
# Columns added after the first release: a ledger from before gets them on open.
TOKEN_COLUMNS = ("input_text_tokens", "input_image_tokens", "output_image_tokens",
                 "output_text_tokens", "thought_tokens")
LATER_COLUMNS = {"jobs": ("host TEXT", "text TEXT", "grounding TEXT"),
                 "attempts": tuple(f"{c} INTEGER" for c in TOKEN_COLUMNS)
                 + ("search_queries INTEGER",)}


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe piece of a prompt: it can never hold a path separator or '..'."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "image"


class Store:
    def __init__(self, home: Path | str, session: str | None = None):
        self.home = Path(home).resolve()  # config.resolve already expanded '~' 
        self.images = self.home / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self.session = session or uuid.uuid4().hex[:12]
        self.path = self.home / LEDGER_NAME
        if not self.path.exists():  # owner-only: prompts and spending are private
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._lock = threading.Lock()
        self._naming = threading.Lock()
        # Held for the life of this session. Liveness is "is this lock held", not "is there
        # a process with that PID": PIDs repeat across container restarts, and a PID says
        # nothing about a kernel on another host sharing this folder.
        self._session_lock = _session_lock(self.home, self.session)
        self._session_lock.acquire(timeout=0)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            # WAL + NORMAL survives a killed kernel (our crash case); only a power cut can
            # lose the last commits, and each commit stops costing an fsync.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            for table, later in LATER_COLUMNS.items():  # a ledger from an older release
                have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                for column in later:
                    if column.split()[0] not in have:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        self.recover()
        self.sweep_parts()

    def close(self) -> None:
        """Close the ledger and end this session: its lock goes, so later sessions may
        recover whatever it left running. Safe to call twice."""
        with self._lock:
            self._db.close()
        if self._session_lock.is_locked:
            self._session_lock.release()
            Path(self._session_lock.lock_file).unlink(missing_ok=True)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, sql: str, args: tuple | dict = ()) -> None:
        with self._lock:
            self._db.execute(sql, args)

    @contextmanager
    def _transaction(self):
        """Several statements in one commit (the connection autocommits otherwise)."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            yield self._db

    # ----- jobs and attempts -----------------------------------------------------------
    def begin_job(self, job_id: str, request: Request, model: str) -> None:
        self._write(
            "INSERT INTO jobs (id, session, pid, host, created, prompt, requested, aspect,"
            " model, provider, status, attempts, simulated) VALUES (?,?,?,?,?,?,?,?,?,?,?,0,?)",
            (job_id, self.session, os.getpid(), socket.gethostname(), time.time(), request.prompt, request.size,
             request.aspect, model, request.provider, "running",
             int(request.provider == "sim")))

    def begin_attempt(self, job_id: str, number: int, resolution: str, model: str,
                      provider: str, waited_s: float, estimate_usd: float) -> None:
        """An attempt about to go out: if we die now, it may still be billed."""
        self._write(
            "INSERT OR REPLACE INTO attempts (job_id, number, started, resolution, model,"
            " provider, outcome, waited_s, billed, cost_usd, estimate_usd, detail)"
            " VALUES (?,?,?,?,?,?,'running',?,'unknown',0,?,'in flight')",
            (job_id, number, time.time(), resolution, model, provider, waited_s, estimate_usd))

    def end_attempt(self, job_id: str, attempt: Attempt, image_path: Path | None = None,
                    turn: Exchange | None = None) -> None:
        """Record an attempt's outcome; with the image it paid for, in the same commit, so
        that a kill right after cannot leave a paid image that the ledger does not know;
        and with the conversation turn it ends (turns.py), so a later refine finds it."""
        row = asdict(attempt)
        with self._transaction() as db:
            db.execute(
                "UPDATE attempts SET outcome=:outcome, http_status=:http_status,"
                " elapsed_s=:elapsed_s, billed=:billed, cost_usd=:cost_usd,"
                " detail=:detail, width=:width, height=:height,"
                " input_text_tokens=:input_text_tokens, input_image_tokens=:input_image_tokens,"
                " output_image_tokens=:output_image_tokens,"
                " output_text_tokens=:output_text_tokens, thought_tokens=:thought_tokens,"
                " search_queries=:search_queries WHERE job_id=:job_id AND number=:number",
                {**row, "job_id": job_id})
            db.execute("UPDATE jobs SET attempts=? WHERE id=?", (attempt.number, job_id))
            if image_path is not None:
                db.execute(
                    "UPDATE jobs SET image_path=?, resolution=?, width=?, height=?"
                    " WHERE id=?", (str(image_path), attempt.resolution, attempt.width,
                                    attempt.height, job_id))
            if turn is not None:
                _put_turn(db, turn)

    def save_turn(self, turn: Exchange) -> None:
        """Write a job's conversation turn again: when a hedge's race had both calls land,
        the turn is the winner's, whose image the job shows (engine._race)."""
        with self._transaction() as db:
            _put_turn(db, turn)

    def turn_of(self, job_id: str) -> dict:
        """{"turn": n, "refines": parent id} for a job that refined another, else {}."""
        with self._lock:
            row = self._db.execute("SELECT number, parent_id FROM turns WHERE job_id=?",
                                   (job_id,)).fetchone()
        return {"turn": row[0], "refines": row[1]} if row and row[1] else {}

    def conversation(self, job_id: str) -> list[Exchange]:
        """The conversation that ends with this job, first turn first; empty when the job
        has no recorded turn (it failed, or came from a batch or an older version)."""
        with self._lock:
            rows = self._db.execute(
                # `seen` stops a loop of parents (a hand-edited ledger) at its first repeat
                "WITH RECURSIVE chain(id, depth, seen) AS (SELECT ?1, 0, '/' || ?1 || '/'"
                " UNION ALL SELECT t.parent_id, chain.depth + 1, chain.seen || t.parent_id || '/'"
                " FROM turns t JOIN chain ON t.job_id = chain.id WHERE t.parent_id IS NOT NULL"
                " AND instr(chain.seen, '/' || t.parent_id || '/') = 0 AND chain.depth < 10000)"
                " SELECT turns.* FROM chain JOIN turns ON turns.job_id = chain.id"
                " ORDER BY chain.depth DESC", (job_id,)).fetchall()
        return [_exchange(dict(row)) for row in rows]

    def finish_job(self, result: GenerationResult, status: str) -> None:
        # An attempt row still 'running' here was cut off before its outcome was recorded
        # (the engine records a cancel's itself; this is for anything else): it may have
        # gone out, so it may be billed.
        with self._lock:
            extra = self._close_open_attempts(result.job_id,
                                              "cancelled before its outcome was recorded")
        self._write(
            "UPDATE jobs SET finished=?, status=?, resolution=?, width=?, height=?,"
            " image_path=?, attempts=?, elapsed_s=?, cost_usd=?, cost_unknown_usd=?, error=?,"
            " simulated=?, downgraded=?, silent_downgrade=?, text=?, grounding=? WHERE id=?",
            (time.time(), status, result.resolution, result.width, result.height,
             str(result.image_path) if result.image_path else None, len(result.attempts),
             result.elapsed_s, result.cost_usd, result.cost_unknown_usd + extra, result.error,
             int(result.simulated), int(result.downgraded), int(result.silent_downgrade),
             result.text or None, result.grounding.to_json() if result.grounding else None,
             result.job_id))

    # ----- images ----------------------------------------------------------------------
    def save_image(self, job_id: str, prompt: str, resolution: str, data: bytes,
                   ext: str = "png", folder: str | None = None) -> Path:
        """Write atomically under home/images; the name comes from the prompt, safely."""
        path = self._image_path(job_id, prompt, resolution, ext, folder)
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:6]}.part"
        # Written whole under a temporary name, then renamed: a killed kernel leaves either
        # the image or a '.part' file, never a truncated image. No fsync: like the ledger
        # (WAL, synchronous=NORMAL) this survives a crashed process, not a power cut.
        with open(tmp, "wb") as fh:
            fh.write(data)
        return self._place(tmp, path)

    def adopt_image(self, job_id: str, prompt: str, resolution: str, part: Path,
                    ext: str = "png", folder: str | None = None) -> Path:
        """Rename a complete, checked '.part' file under home/images (an answer streamed
        there, answer_stream.py) into place, named as save_image names images."""
        return self._place(part, self._image_path(job_id, prompt, resolution, ext, folder))

    def _place(self, source: Path, path: Path) -> Path:
        """Rename `source` to `path`, or to `path` with -2, -3... if an image has that name:
        two images of one job at one size within a second (both calls of a hedge, retries
        each refused and kept) are each paid for, and each keeps its file."""
        with self._naming:  # the decode pool's two threads may place images at once
            free, number = path, 1
            while free.exists():
                number += 1
                free = path.with_name(f"{path.stem}-{number}{path.suffix}")
            os.replace(source, free)
        return free

    def sweep_parts(self, older_than_s: float = PART_STALE_S) -> int:
        """Delete '.part' files nobody has written to for a while: what a killed kernel left
        mid-write or mid-stream (a live answer writes its file every few seconds at most)."""
        gone = 0
        for part in self.images.rglob(".*.part"):
            try:
                if time.time() - part.stat().st_mtime > older_than_s:
                    part.unlink()
                    gone += 1
            except OSError:  # another kernel renamed or swept it first
                pass
        return gone

    def _image_path(self, job_id: str, prompt: str, resolution: str, ext: str,
                    folder: str | None) -> Path:
        target_dir = self.images / folder if folder else self.images
        target_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = f"{stamp}-{job_id}-{slug(prompt)}-{resolution}.{re.sub(r'[^a-z0-9]', '', ext) or 'bin'}"
        return target_dir / name

    # ----- reading ---------------------------------------------------------------------
    def jobs(self, *, limit: int | None = None, session: str | None = None) -> list[JobRow]:
        sql, args = "SELECT * FROM jobs", []
        if session:
            sql += " WHERE session=?"
            args.append(session)
        sql += " ORDER BY created DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            return [cast(JobRow, dict(r)) for r in self._db.execute(sql, args)]

    def history(self, *, limit: int | None = None,
                session: str | None = None) -> list[dict]:
        """`jobs()`, newest first, each with its `attempts` list and, for a refine, its `turn`
        and the job it `refines`: two queries in one read transaction (one snapshot), not
        two per job."""
        where, args = ("WHERE jobs.session=?", [session]) if session else ("", [])
        # rowid breaks ties in `created`, so both queries pick the same jobs under a limit
        order = "ORDER BY jobs.created DESC, jobs.rowid DESC" + (
            f" LIMIT {int(limit)}" if limit else "")
        with self._transaction() as db:
            jobs = _dicts(db, "SELECT jobs.*, turns.number AS turn_number, turns.parent_id AS"
                          f" turn_parent FROM jobs LEFT JOIN turns ON turns.job_id = jobs.id"
                          f" {where} {order}", args)
            attempts: dict[str, list[dict]] = {}
            for row in _dicts(db, "SELECT * FROM attempts WHERE job_id IN (SELECT jobs.id"
                              f" FROM jobs {where} {order}) ORDER BY job_id, number", args):
                attempts.setdefault(row["job_id"], []).append(row)
        for job in jobs:
            number, parent = job.pop("turn_number"), job.pop("turn_parent")
            job["attempts"] = attempts.get(job["id"], [])
            if parent:  # a first turn refines nothing: like turn_of(), no keys at all
                job.update(turn=number, refines=parent)
        return jobs

    def attempts(self, job_id: str) -> list[AttemptRow]:
        with self._lock:
            return [cast(AttemptRow, dict(r)) for r in self._db.execute(
                "SELECT * FROM attempts WHERE job_id=? ORDER BY number", (job_id,))]

    def job(self, job_id: str) -> JobRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return cast(JobRow, dict(row)) if row else None

    def latencies(self, model: str, resolution: str, limit: int = 200) -> list[float]:
        """Service seconds of the latest successful attempts for this model and size."""
        with self._lock:
            rows = self._db.execute(
                "SELECT elapsed_s FROM attempts WHERE model=? AND resolution=? AND outcome='ok'"
                " ORDER BY started DESC LIMIT ?", (model, resolution, limit)).fetchall()
        return [r[0] for r in rows if r[0] is not None]

    def success_counts(self, model: str, resolution: str, limit: int = 500) -> tuple[int, int]:
        """(successful, finished) among the latest attempts for this model and size."""
        with self._lock:
            rows = self._db.execute(
                "SELECT outcome FROM attempts WHERE model=? AND resolution=?"
                " AND outcome NOT IN ('running', 'cancelled') ORDER BY started DESC LIMIT ?",
                (model, resolution, limit)).fetchall()
        return sum(r[0] == "ok" for r in rows), len(rows)

    # ----- after a crash ---------------------------------------------------------------
    def recover(self) -> int:
        """Close the jobs of processes that are gone; returns how many.

        A job whose image reached the disk is done (its image was paid for and is kept);
        any other is interrupted, with the list price of a cut-off attempt as unknown cost.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, session FROM jobs WHERE status='running' AND session IS NOT ?",
                (self.session,)).fetchall()
        recovered = 0
        for other in sorted({r["session"] for r in rows}, key=str):
            found = _session_lock(self.home, other)
            lock: FileLock | None = found
            if not Path(found.lock_file).exists():
                # No lock file: that session closed (its jobs should not be running) or
                # another session already recovered it; either way nobody holds it.
                lock = None
            elif not _try_acquire(found):
                continue  # alive: its kernel, here or on another host, still holds it
            try:
                dead = [r["id"] for r in rows if r["session"] == other]
                self._recover_jobs(dead)
                recovered += len(dead)
            finally:
                if lock is not None:
                    lock.release()
                    Path(lock.lock_file).unlink(missing_ok=True)
        return recovered

    def _recover_jobs(self, dead: list[str]) -> None:
        for job_id in dead:
            with self._transaction():
                image = self._kept_image(job_id)
                if image is not None:  # renamed into place, killed before its row was written
                    # the open attempt of the file's size (a hedged job has two), else the last
                    size = Path(image).stem.rsplit("-", 1)[-1]
                    self._db.execute(
                        "UPDATE attempts SET outcome='ok', billed='yes', cost_usd=estimate_usd,"
                        " detail='image kept; recorded after a restart' WHERE job_id=? AND"
                        " number=(SELECT number FROM attempts WHERE job_id=? AND"
                        " outcome='running' ORDER BY resolution=? DESC, number DESC LIMIT 1)",
                        (job_id, job_id, size))
                unknown = self._close_open_attempts(
                    job_id, "interrupted: the kernel stopped during this attempt")
                count, paid, resolution = self._db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0),"
                    " (SELECT resolution FROM attempts WHERE job_id=? AND outcome='ok')"
                    " FROM attempts WHERE job_id=?", (job_id, job_id)).fetchone()
                self._db.execute(
                    "UPDATE jobs SET status=?, finished=?, image_path=?, resolution=?,"
                    " attempts=?, cost_usd=?, cost_unknown_usd=COALESCE(cost_unknown_usd, 0) + ?,"
                    " error=? WHERE id=?",
                    ("done" if image else "interrupted", time.time(), image,
                     resolution if image else None, count, paid, unknown,
                     None if image else "interrupted: the kernel stopped while this job ran",
                     job_id))

    def _kept_image(self, job_id: str) -> str | None:
        """The image a job saved, from its row or, if the kill beat the row, from its name."""
        row = self._db.execute("SELECT image_path FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row and row[0] and os.path.isfile(row[0]):
            return row[0]
        # images are named '<stamp>-<job id>-<slug>-<size>[-N].<ext>'; '.part' files start with '.'
        found = sorted(p for p in self.images.glob(f"*-{job_id}-*")
                       if not p.name.startswith(".") and p.name.split("-")[2:3] == [job_id])
        return str(found[0]) if found else None

    def _close_open_attempts(self, job_id: str, detail: str) -> float:
        """Mark attempts with no outcome as cancelled, maybe billed; their list price is
        returned to count as unknown cost. Call with the lock held."""
        unknown = self._db.execute(
            "SELECT COALESCE(SUM(estimate_usd), 0) FROM attempts"
            " WHERE job_id=? AND outcome='running'", (job_id,)).fetchone()[0]
        self._db.execute(
            "UPDATE attempts SET outcome='cancelled', billed='unknown', detail=?"
            " WHERE job_id=? AND outcome='running'", (detail, job_id))
        return unknown


def _dicts(db: sqlite3.Connection, sql: str, args: list) -> list[dict]:
    """The rows as dicts, made from plain tuples: dict(sqlite3.Row) looks every column up
    by name, which is most of the time a history of thousands of rows takes."""
    cursor = db.cursor()
    cursor.row_factory = None
    cursor.execute(sql, args)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor]


def _session_lock(home: Path, session: str) -> FileLock:
    folder = home / SESSIONS_DIR
    folder.mkdir(exist_ok=True)
    return FileLock(folder / f"{slug(session, 64)}.lock")


def _try_acquire(lock: FileLock) -> bool:
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    return True


def _put_turn(db: sqlite3.Connection, turn: Exchange) -> None:
    db.execute("INSERT OR REPLACE INTO turns (job_id, parent_id, number, prompt, refs, parts,"
               " provider, created) VALUES (:job_id, :parent_id, :number, :prompt, :refs,"
               " :parts, :provider, :created)", turn.as_row())


def _exchange(row: dict) -> Exchange:
    """A turns row as an Exchange; a damaged cell (edited or cut short by hand) is a one-line
    ConfigError naming the job, not a JSON traceback from deep inside the ledger."""
    try:
        return Exchange.from_row(row)
    except (ValueError, TypeError, AttributeError, KeyError):
        raise ConfigError(f"the ledger's conversation turn of job {row.get('job_id')} is "
                          "damaged (its parts are not the JSON nbp_jupyter wrote)",
                          hint="its images are untouched: give the one to go on from as a "
                               "reference instead (images=[its path])") from None
