#!/usr/bin/env python3
"""The benchmark workloads of benchmarks/README.md, run on the Python
`eventsourcing` library the way its users write applications: an `Aggregate`
with `@event` methods, an `Application`, `save`, `repository.get`, the
notification log, and persistence chosen through environment variables.

Prints one JSON object per measurement on stdout (the README's schema);
progress goes to stderr.

    python bench.py [--quick] [--runs N] [--backends memory,sqlite,postgres]
                    [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import statistics
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from time import perf_counter, sleep
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError
from eventsourcing.system import MultiThreadedRunner, ProcessApplication, System

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from uuid import UUID

SYSTEM = "python-eventsourcing"
LIBRARY = f"eventsourcing {version('eventsourcing')}"
BACKENDS = ("memory", "sqlite", "postgres")
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test"
PAGE_SIZE = 1000
LOADS_PER_W3_RUN = 5
COMMANDS_PER_W1_ACCOUNT = 9
COMMANDS_PER_W2_ACCOUNT = 5
W5_THREADS = (1, 4, 16)
ZIPF_THREADS = 16


# --- The domain model, as a user of the library writes it -------------------


class BankAccount(Aggregate):
    @event("Opened")
    def __init__(self, owner: str, balance: int) -> None:
        self.owner = owner
        self.balance = balance

    @event("Deposited")
    def deposit(self, amount: int, note: str) -> None:
        self.balance += amount


def next_deposit(account: BankAccount) -> None:
    """Command number k on an account (counting from 0) is the README's deposit."""
    # Version 1 is the Opened event, so the version counts the commands so far,
    # also after a reload in W2 and W5-zipf.
    k = account.version - 1
    account.deposit(amount=10 + k % 90, note=f"note {k}")


def expected_balance(commands: int) -> int:
    return 100 + sum(10 + k % 90 for k in range(commands))


class Bank(Application):
    # The notification log refuses pages larger than its section size (10 by
    # default), so an application that is read in pages of 1,000 says so.
    log_section_size = PAGE_SIZE


# One application class per store: the application's name picks the PostgreSQL
# tables (`pybenchw1_events`, ...), so this part never touches another system's
# tables in the shared database.
class PyBenchW1(Bank):
    """W1 writes it, W2 commands on it, W4 reads its log."""


class PyBenchW3(Bank):
    pass


class PyBenchW3Snapshots(Bank):
    snapshotting_intervals = {BankAccount: 100}


class PyBenchW5(Bank):
    pass


class PyBenchW5Zipf(Bank):
    pass


class PyBenchLeader(Bank):
    """F1: writes the log the follower catches up with."""


class Mirror(Aggregate):
    """What the F1 follower derives: one event per leader event, naming it."""

    @event("Copied")
    def __init__(self, source: int) -> None:
        self.source = source


class PyBenchFollower(ProcessApplication):
    """F1: a mirror of each account opened, as a user of the library writes
    a follower; it reads its leader's log in pages as large as the others'."""

    log_section_size = PAGE_SIZE
    pull_section_size = PAGE_SIZE

    def policy(self, domain_event: Any, processing_event: Any) -> None:
        if isinstance(domain_event, BankAccount.Opened):
            source = processing_event.tracking.notification_id
            processing_event.collect_events(Mirror(source=source))


class PyLiveLeader(Bank):
    """F2: the leader saving at a steady rate under the runner."""


class PyLiveFollower(PyBenchFollower):
    """F2: the F1 follower, noting when each derived event was committed
    (`_notify` is called after the follower's record has returned)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.committed: dict[int, float] = {}

    def _notify(self, recordings: Any) -> None:
        super()._notify(recordings)
        now = perf_counter()
        for recording in recordings:
            source = getattr(recording.domain_event, "source", None)
            if source is not None:
                self.committed[source] = now


# --- Backends ----------------------------------------------------------------

SQLITE_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


class Backend:
    """Configures the library's persistence for one backend and hands out
    fresh, empty stores."""

    name = ""

    def __init__(self) -> None:
        self.durability = ""

    def environment(self) -> dict[str, str]:
        raise NotImplementedError

    @contextmanager
    def store(self, app_class: type[Bank]) -> Iterator[Bank]:
        os.environ.update(self.environment())
        app = app_class()
        try:
            if not self.durability:
                self.durability = self.probe_durability(app)
            yield app
        finally:
            app.close()

    def probe_durability(self, app: Bank) -> str:
        raise NotImplementedError

    @contextmanager
    def system_environment(self, app_classes: list[type[Bank]]) -> Iterator[dict[str, str]]:
        """The environment of a system of fresh, empty `app_classes`."""
        yield self.environment()


class MemoryBackend(Backend):
    name = "memory"

    def environment(self) -> dict[str, str]:
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}

    def probe_durability(self, app: Bank) -> str:
        return "none (in memory)"


class SQLiteBackend(Backend):
    name = "sqlite"

    def environment(self) -> dict[str, str]:
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite"}

    @contextmanager
    def store(self, app_class: type[Bank]) -> Iterator[Bank]:
        # A database file of its own in a new directory makes every store
        # empty; a file (not ":memory:") is what makes it durable.
        with tempfile.TemporaryDirectory(prefix="pybench-") as directory:
            os.environ["SQLITE_DBNAME"] = os.path.join(
                directory, f"{app_class.name}.sqlite3"
            )
            with super().store(app_class) as app:
                yield app

    @contextmanager
    def system_environment(self, app_classes: list[type[Bank]]) -> Iterator[dict[str, str]]:
        # A file per application, named by the variable prefixed with the
        # application's name, which the library reads before the plain one.
        with tempfile.TemporaryDirectory(prefix="pybench-") as directory:
            env = self.environment()
            for app_class in app_classes:
                env[f"{app_class.name.upper()}_SQLITE_DBNAME"] = os.path.join(
                    directory, f"{app_class.name}.sqlite3"
                )
            yield env

    def probe_durability(self, app: Bank) -> str:
        # The library sets the journal mode itself and leaves `synchronous` at
        # SQLite's default, so read both back from one of its own connections
        # rather than assume them.
        with app.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode")
            journal_mode = str(cursor.fetchone()[0]).upper()
            cursor.execute("PRAGMA synchronous")
            synchronous = SQLITE_SYNCHRONOUS.get(cursor.fetchone()[0], "?")
        settings = f"journal_mode={journal_mode}, synchronous={synchronous}"
        if synchronous in ("FULL", "EXTRA"):
            return f"fsync on ({settings})"
        if synchronous == "NORMAL" and journal_mode == "WAL":
            return f"fsync at checkpoints only ({settings})"
        return f"fsync off ({settings})"


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, url: str) -> None:
        super().__init__()
        parts = urlsplit(url)
        self.connection = {
            "host": parts.hostname or "127.0.0.1",
            "port": str(parts.port or 5432),
            "user": unquote(parts.username or "postgres"),
            "password": unquote(parts.password or ""),
            "dbname": parts.path.lstrip("/") or "test",
        }

    def environment(self) -> dict[str, str]:
        c = self.connection
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": c["dbname"],
            "POSTGRES_HOST": c["host"],
            "POSTGRES_PORT": c["port"],
            "POSTGRES_USER": c["user"],
            # The library insists on the variable; empty is right for trust auth.
            "POSTGRES_PASSWORD": c["password"],
        }

    def connect(self) -> Any:
        # Imported here so the other backends run without the PostgreSQL driver.
        import psycopg

        try:
            return psycopg.connect(**self.connection, autocommit=True)
        except psycopg.OperationalError as e:
            c = self.connection
            where = f"{c['user']}@{c['host']}:{c['port']}/{c['dbname']}"
            raise SystemExit(f"bench.py: cannot reach PostgreSQL at {where}: {e}") from e

    def drop_tables(self, app_class: type[Bank]) -> None:
        # The library names its tables after the application, lower-cased.
        prefix = app_class.name.lower()
        with self.connect() as conn:
            conn.execute(
                f"DROP TABLE IF EXISTS {prefix}_events, {prefix}_snapshots, {prefix}_tracking"
            )

    @contextmanager
    def store(self, app_class: type[Bank]) -> Iterator[Bank]:
        self.drop_tables(app_class)
        try:
            with super().store(app_class) as app:
                yield app
        finally:
            self.drop_tables(app_class)

    @contextmanager
    def system_environment(self, app_classes: list[type[Bank]]) -> Iterator[dict[str, str]]:
        for app_class in app_classes:
            self.drop_tables(app_class)
        try:
            yield self.environment()
        finally:
            for app_class in app_classes:
                self.drop_tables(app_class)

    def probe_durability(self, app: Bank) -> str:
        with self.connect() as conn:
            fsync = conn.execute("SHOW fsync").fetchone()[0]
            synchronous_commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
        return f"server fsync {fsync}, synchronous_commit {synchronous_commit}"


# --- Workloads -----------------------------------------------------------------


@dataclass
class Sizes:
    accounts: int  # W1, W2, W4
    w3_events: int
    w5_saves: int
    zipf_accounts: int
    zipf_commands_per_thread: int
    follower_events: int  # F1
    live_saves: int  # F2, at LIVE_SAVES_PER_SECOND


FULL = Sizes(
    accounts=2000,
    w3_events=10_000,
    w5_saves=4000,
    zipf_accounts=100,
    zipf_commands_per_thread=250,
    follower_events=100_000,
    live_saves=500,
)
QUICK = Sizes(
    accounts=20,
    w3_events=200,
    w5_saves=100,
    zipf_accounts=20,
    zipf_commands_per_thread=10,
    follower_events=2_000,
    live_saves=30,
)
# Accounts opened per leader save while the F1 log is built.
OPENED_PER_SAVE = 100
# The leader's steady rate of saves in F2, as es-bench's.
LIVE_SAVES_PER_SECOND = 100


def percentile_us(latencies: list[float], p: float) -> float:
    """Nearest-rank percentile of latencies in seconds, in microseconds."""
    ordered = sorted(latencies)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1] * 1e6, 1)


def w1_write(app: Bank, accounts: int) -> tuple[list[UUID], float]:
    ids = []
    started = perf_counter()
    for i in range(accounts):
        account = BankAccount(owner=f"owner-{i}", balance=100)
        app.save(account)
        for _ in range(COMMANDS_PER_W1_ACCOUNT):
            next_deposit(account)
            app.save(account)
        ids.append(account.id)
    elapsed = perf_counter() - started
    return ids, accounts * (1 + COMMANDS_PER_W1_ACCOUNT) / elapsed


def w2_command_cycle(app: Bank, ids: list[UUID]) -> float:
    started = perf_counter()
    for account_id in ids:
        for _ in range(COMMANDS_PER_W2_ACCOUNT):
            account = app.repository.get(account_id)
            next_deposit(account)
            app.save(account)
    elapsed = perf_counter() - started

    commands = COMMANDS_PER_W1_ACCOUNT + COMMANDS_PER_W2_ACCOUNT
    account = app.repository.get(ids[0])
    assert account.version == 1 + commands, account.version
    assert account.balance == expected_balance(commands), account.balance
    return len(ids) * COMMANDS_PER_W2_ACCOUNT / elapsed


def w4_log_read(app: Bank, expected: int) -> float:
    count = 0
    started = perf_counter()
    start = 1
    while True:
        page = app.notification_log.select(start, PAGE_SIZE)
        count += len(page)
        if len(page) < PAGE_SIZE:
            break
        # Notification ids may have gaps (a PostgreSQL sequence does), so go
        # on from the last one seen rather than counting.
        start = page[-1].id + 1
    elapsed = perf_counter() - started
    assert count == expected, (count, expected)
    return count / elapsed


def w3_build_and_load(app: Bank, events: int) -> float:
    """Builds one account of `events` events, saved 100 events at a time, and
    returns the median of 5 whole loads in seconds."""
    assert events % 100 == 0, "W3 sizes are whole batches of 100"
    account = BankAccount(owner="owner-0", balance=100)
    while account.version < events:
        next_deposit(account)
        # Saving at every 100th version gives 100 saves of 100 events each
        # (the first with Opened), and puts a snapshot at each of them when
        # the application snapshots every 100 events.
        if account.version % 100 == 0:
            app.save(account)

    times = []
    for _ in range(LOADS_PER_W3_RUN):
        started = perf_counter()
        loaded = app.repository.get(account.id)
        times.append(perf_counter() - started)
        assert loaded.version == events, loaded.version
        assert loaded.balance == expected_balance(events - 1), loaded.balance
    return statistics.median(times)


def run_threads(threads: int, work: Callable[[int], None]) -> float:
    """Runs work(t) on `threads` threads started together; returns the wall
    time from the common start until the last one finished."""
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def body(t: int) -> None:
        barrier.wait()
        try:
            work(t)
        except BaseException as e:  # re-raised on the main thread
            errors.append(e)

    workers = [threading.Thread(target=body, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    started = perf_counter()
    for w in workers:
        w.join()
    elapsed = perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def w5_concurrent_writes(app: Bank, threads: int, saves: int) -> tuple[float, list[float]]:
    quotas = [saves // threads + (t < saves % threads) for t in range(threads)]
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def writer(t: int) -> None:
        mine = latencies[t]
        remaining = quotas[t]
        for i in itertools.count():
            if remaining == 0:
                return
            account = BankAccount(owner=f"owner-{t + threads * i}", balance=100)
            for command in range(min(remaining, 1 + COMMANDS_PER_W1_ACCOUNT)):
                if command:
                    next_deposit(account)
                started = perf_counter()
                app.save(account)
                mine.append(perf_counter() - started)
                remaining -= 1

    elapsed = run_threads(threads, writer)
    all_latencies = [x for per_thread in latencies for x in per_thread]
    assert len(all_latencies) == saves
    return saves / elapsed, all_latencies


def f1_follower_catch_up(
    leader: Bank, follower: PyBenchFollower, events: int
) -> tuple[float, float]:
    """The leader writes `events` accounts opened, OPENED_PER_SAVE to a save;
    then the follower processes them all. Both rates, in events/s."""
    start = perf_counter()
    for first in range(0, events, OPENED_PER_SAVE):
        accounts = [
            BankAccount(owner=f"owner-{i}", balance=100)
            for i in range(first, min(first + OPENED_PER_SAVE, events))
        ]
        leader.save(*accounts)
    leader_rate = events / (perf_counter() - start)
    follower.follow(leader.name, leader.notification_log)
    start = perf_counter()
    follower.pull_and_process(leader.name)
    elapsed = perf_counter() - start
    assert follower.recorder.max_tracking_id(leader.name) == events
    return leader_rate, events / elapsed


def f2_live_latencies(backend: Backend, saves: int) -> list[float]:
    """The seconds from the start of each leader save to the commit of the
    follower's event derived from it, under the library's
    MultiThreadedRunner, the leader saving LIVE_SAVES_PER_SECOND times a
    second."""
    apps: list[type[Bank]] = [PyLiveLeader, PyLiveFollower]  # type: ignore[list-item]
    with backend.system_environment(apps) as env:
        runner = MultiThreadedRunner(System(pipes=[[PyLiveLeader, PyLiveFollower]]), env=env)
        runner.start()
        try:
            leader = runner.get(PyLiveLeader)
            follower = runner.get(PyLiveFollower)
            interval = 1.0 / LIVE_SAVES_PER_SECOND
            saved: list[tuple[int, float]] = []
            start = perf_counter()
            for i in range(saves):
                sleep(max(0.0, start + i * interval - perf_counter()))
                began = perf_counter()
                recordings = leader.save(BankAccount(owner=f"owner-{i}", balance=100))
                saved.append((recordings[0].notification.id, began))
            last = saved[-1][0]
            deadline = perf_counter() + 60
            while (follower.recorder.max_tracking_id(leader.name) or 0) < last:
                if perf_counter() > deadline:
                    raise SystemExit("bench.py: F2: the follower did not catch up in 60 s")
                sleep(0.001)
            committed = dict(follower.committed)
        finally:
            runner.stop()
    return [committed[notification_id] - began for notification_id, began in saved]


def w5_zipf(
    app: Bank, accounts: int, commands_per_thread: int
) -> tuple[float, list[float], int]:
    ids = []
    for i in range(accounts):
        account = BankAccount(owner=f"owner-{i}", balance=100)
        app.save(account)
        ids.append(account.id)
    # Zipf with s = 1: the account of rank r is chosen with weight 1/r.
    cum_weights = list(itertools.accumulate(1 / rank for rank in range(1, accounts + 1)))
    latencies: list[list[float]] = [[] for _ in range(ZIPF_THREADS)]
    conflicts = [0] * ZIPF_THREADS

    def worker(t: int) -> None:
        rng = random.Random(t)
        mine = latencies[t]
        for _ in range(commands_per_thread):
            account_id = rng.choices(ids, cum_weights=cum_weights)[0]
            started = perf_counter()
            while True:
                account = app.repository.get(account_id)
                next_deposit(account)
                try:
                    app.save(account)
                    break
                except IntegrityError:
                    # Another thread saved this account since it was loaded:
                    # the library refuses the stale version, so reload and retry.
                    conflicts[t] += 1
            mine.append(perf_counter() - started)

    elapsed = run_threads(ZIPF_THREADS, worker)
    commands = ZIPF_THREADS * commands_per_thread
    recorded = sum(app.repository.get(i).version - 1 for i in ids)
    assert recorded == commands, (recorded, commands)
    all_latencies = [x for per_thread in latencies for x in per_thread]
    return commands / elapsed, all_latencies, sum(conflicts)


# --- Running and reporting -------------------------------------------------------


@dataclass
class Measurement:
    workload: str
    unit: str
    runs: list[float] = field(default_factory=list)
    p50_us: list[float] | None = None
    p99_us: list[float] | None = None
    conflicts: list[int] | None = None
    note: str = ""

    def add_latencies(self, latencies: list[float]) -> None:
        if self.p50_us is None:
            self.p50_us, self.p99_us = [], []
        assert self.p99_us is not None
        self.p50_us.append(percentile_us(latencies, 50))
        self.p99_us.append(percentile_us(latencies, 99))

    def line(self, backend: Backend) -> str:
        record: dict[str, Any] = {
            "system": SYSTEM,
            "backend": backend.name,
            "workload": self.workload,
            "unit": self.unit,
            "runs": [round(r, 3) for r in self.runs],
            "durability": backend.durability,
        }
        for key in ("p50_us", "p99_us", "conflicts"):
            if getattr(self, key) is not None:
                record[key] = getattr(self, key)
        record["note"] = f"{LIBRARY}; {self.note}" if self.note else LIBRARY
        return json.dumps(record)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_backend(backend: Backend, sizes: Sizes, runs: int) -> list[Measurement]:
    w1 = Measurement("W1", "events/s")
    w2 = Measurement(
        "W2", "commands/s", note="repository without cache (the default): each get replays"
    )
    w3 = Measurement("W3", "events/s", note=f"median of {LOADS_PER_W3_RUN} loads")
    w3s = Measurement("W3-snapshots", "ms")
    w4 = Measurement(
        "W4",
        "events/s",
        note=f"notification_log.select in pages of {PAGE_SIZE}, notifications not decoded",
    )
    w5 = {
        n: Measurement(f"W5-{n}", "events/s", note=f"{n} Python thread(s), GIL")
        for n in W5_THREADS
    }
    zipf = Measurement(
        "W5-zipf",
        "commands/s",
        conflicts=[],
        note=f"{ZIPF_THREADS} Python threads, GIL; on IntegrityError reload and retry; "
        "repository without cache (the default)",
    )
    fractions = []
    f1_leader = Measurement(
        "F1-leader",
        "events/s",
        note=f"the leader writing the F1 log, {OPENED_PER_SAVE} accounts opened per save",
    )
    f1 = Measurement(
        "F1",
        "events/s",
        note=f"ProcessApplication.pull_and_process, pull_section_size={PAGE_SIZE}; "
        "one transaction per event",
    )

    f2 = Measurement(
        "F2",
        "ms",
        note=f"p99 of leader save to derived event committed, MultiThreadedRunner, "
        f"{LIVE_SAVES_PER_SECOND} saves/s",
    )

    for run in range(1, runs + 1):
        tag = f"[{backend.name} run {run}/{runs}]"

        with backend.store(PyBenchW1) as app:
            ids, rate = w1_write(app, sizes.accounts)
            w1.runs.append(rate)
            progress(f"{tag} W1 {rate:,.0f} events/s")
            rate = w2_command_cycle(app, ids)
            w2.runs.append(rate)
            progress(f"{tag} W2 {rate:,.0f} commands/s")
            total = sizes.accounts * (1 + COMMANDS_PER_W1_ACCOUNT + COMMANDS_PER_W2_ACCOUNT)
            rate = w4_log_read(app, total)
            w4.runs.append(rate)
            progress(f"{tag} W4 {rate:,.0f} events/s")

        with backend.store(PyBenchW3) as app:
            replay = w3_build_and_load(app, sizes.w3_events)
            w3.runs.append(sizes.w3_events / replay)
            progress(f"{tag} W3 {sizes.w3_events / replay:,.0f} events/s")
        with backend.store(PyBenchW3Snapshots) as app:
            from_snapshot = w3_build_and_load(app, sizes.w3_events)
            w3s.runs.append(from_snapshot * 1000)
            fractions.append(from_snapshot / replay)
            progress(
                f"{tag} W3-snapshots {from_snapshot * 1000:.3f} ms "
                f"({from_snapshot / replay:.2%} of full replay)"
            )

        for threads in W5_THREADS:
            with backend.store(PyBenchW5) as app:
                rate, latencies = w5_concurrent_writes(app, threads, sizes.w5_saves)
            w5[threads].runs.append(rate)
            w5[threads].add_latencies(latencies)
            progress(f"{tag} W5-{threads} {rate:,.0f} events/s")

        with backend.store(PyBenchW5Zipf) as app:
            rate, latencies, conflicts = w5_zipf(
                app, sizes.zipf_accounts, sizes.zipf_commands_per_thread
            )
        zipf.runs.append(rate)
        zipf.add_latencies(latencies)
        assert zipf.conflicts is not None
        zipf.conflicts.append(conflicts)
        progress(f"{tag} W5-zipf {rate:,.0f} commands/s, {conflicts} conflicts")

        if backend.name != "memory":
            with backend.store(PyBenchLeader) as leader, backend.store(
                PyBenchFollower  # type: ignore[arg-type]
            ) as follower:
                leader_rate, rate = f1_follower_catch_up(
                    leader,
                    follower,  # type: ignore[arg-type]
                    sizes.follower_events,
                )
            f1_leader.runs.append(leader_rate)
            f1.runs.append(rate)
            progress(f"{tag} F1 {rate:,.0f} events/s (leader wrote {leader_rate:,.0f})")
            latencies = f2_live_latencies(backend, sizes.live_saves)
            f2.runs.append(percentile_us(latencies, 99) / 1000)
            f2.add_latencies(latencies)
            progress(f"{tag} F2 p99 {f2.runs[-1]:.1f} ms")

    w3s.note = (
        "snapshotting_intervals = {BankAccount: 100}; median of "
        f"{LOADS_PER_W3_RUN} loads; fraction of the full replay time per run: "
        + ", ".join(f"{f:.4f}" for f in fractions)
    )
    followers = [f1_leader, f1, f2] if f1.runs else []
    return [w1, w2, w3, w3s, w4, *w5.values(), zipf, *followers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 run")
    parser.add_argument("--runs", type=int, default=None, help="runs of each (default 3)")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("ES_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
    )
    args = parser.parse_args()

    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    if runs < 1:
        parser.error("--runs must be at least 1")
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(names) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; choose from {BACKENDS}")
    sizes = QUICK if args.quick else FULL

    factories = {
        "memory": MemoryBackend,
        "sqlite": SQLiteBackend,
        "postgres": lambda: PostgresBackend(args.postgres_url),
    }
    progress(f"{LIBRARY} on Python {sys.version.split()[0]}")
    for name in names:
        backend = factories[name]()
        for measurement in run_backend(backend, sizes, runs):
            print(measurement.line(backend), flush=True)


if __name__ == "__main__":
    main()
