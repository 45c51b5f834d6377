"""engine_scale: plan and apply N items between two spokes of the memory kind.

For each size in (1k, 10k, 50k) up to N: an initial sync of N items from a
two-way spoke `a` through the hub into a two-way spoke `b`, then 1 % of the
items edited in `a` and synced again, then an idle round. Reports wall time,
hub store records read/written (the SQLite store counts them like Firestore
bills documents), spoke API calls and item writes, and the cost per item, so
that growth with N and with the number of changes shows. Runs are started as
polls (`reason="poll"`), as the scheduler and push notifications start them:
an idle round then takes the idle path (no lease, no record). `content_hashes`
counts `content_hash` calls (the engine's hashing), per phase.

The spokes keep their items and change logs in an SQLite file
(`bench/_sqlite_calendar.py`), outside the Python heap, and answer in pages of
1,000 items (`page_size`), as paging servers do: `peak_rss_mb` is what the
engine costs (runs read, plan and write the hub's changes and the spoke's
answer a page at a time, docs/decisions/2026-12-01-paged-runs.md), not the
benchmark's data. Each size runs in a fresh interpreter, so that its
`peak_rss_mb` is its own (not the largest size's so far); `rss_filled_mb` is
the process after the two spokes were filled, `engine_rss_mb` the growth from
there to the peak. `ENGINE_SCALE_SPOKES=heap` keeps the spokes' items as
Python objects instead (no pickling: the engine's CPU time alone, its data in
the peak). `cpu_s` is the process's CPU time of a phase
(`time.process_time`; wall times on a shared machine vary by 2×). Sizes are
1k, 10k, 50k up to N: `--n 200000` adds the 200,000-item figures (minutes;
the test suite never runs it).

`peer`: vdirsyncer 0.21.0, installed from PyPI into a separate venv by the
benchmark (kept in the system temp directory between runs), syncing the same
generated events between two filesystem storages (fs ⇄ fs, one .ics file per
event), for each size up to 50,000: its initial sync's wall and CPU time (the
child process's user+system time) beside the engine's initial sync over
in-memory spokes (`engine_heap_spokes`, a run of its own with
`ENGINE_SCALE_SPOKES=heap`, as the issue compares them; the ratios use it).
`VDIRSYNCER=0` skips both.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench._common  # noqa: F401 - puts the package on sys.path
from bench._common import peak_rss_mb, rss_mb
from bench._sqlite_calendar import sqlite_calendar
from spokesync.bootstrap import build_context
from spokesync.config import Config
from spokesync.connectors import memory_registry
from spokesync.engine import rules
from spokesync.engine.runner import Runner
from spokesync.model.event import Event
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore

DEFAULT_N = 10_000
SIZES = (1_000, 10_000, 50_000)
SPOKE_PAGE = 1_000  # items per answer of the benchmark's spokes


def _event(i: int, now: datetime) -> Event:
    start = now + timedelta(days=i % 365, hours=i % 9)
    return Event(title=f"Event {i}", start=start, end=start + timedelta(hours=1), description=f"Item {i}",
                 location=f"Room {i % 40}", categories=("team",), reminders=(10,), modified=now)


_HASHES = [0]


def _counting_hash(event: Any, names: Any) -> str:
    _HASHES[0] += 1
    return _content_hash(event, names)


_content_hash = rules.content_hash


def _phase(store: SqliteHubStore, cals: list[Any], fn: Any) -> dict[str, Any]:
    store.stats.clear()
    _HASHES[0] = 0
    calls, writes = sum(c.api_calls for c in cals), sum(c.writes for c in cals)
    started, cpu = time.perf_counter(), time.process_time()
    runs = fn()
    return {
        "wall_s": round(time.perf_counter() - started, 3),
        "cpu_s": round(time.process_time() - cpu, 3),
        "hub_reads": store.stats["reads"],
        "hub_writes": store.stats["writes"],
        "api_calls": sum(c.api_calls for c in cals) - calls,
        "spoke_writes": sum(c.writes for c in cals) - writes,
        "content_hashes": _HASHES[0],
        "runs": runs,
    }


def measure(n: int) -> dict[str, Any]:
    rules.content_hash = _counting_hash  # type: ignore[assignment]
    try:
        return _measure(n)
    finally:
        rules.content_hash = _content_hash  # type: ignore[assignment]


def _measure(n: int) -> dict[str, Any]:
    memory_registry.CALENDARS.clear()
    with tempfile.TemporaryDirectory() as tmp:
        clock = FakeClock(datetime(2026, 3, 1, 8, tzinfo=UTC))
        store = SqliteHubStore(f"{tmp}/hub.sqlite3")
        queue = LocalTaskQueue()
        ctx = build_context(Config(data_dir=tmp, run_budget_s=3600, lease_ttl_s=7200), clock=clock, store=store,
                            queue=queue)
        queue.handler = ctx.run_task
        hub = hubs.create_hub(ctx, "Bench")
        if os.environ.get("ENGINE_SCALE_SPOKES") != "heap":  # heap: plain in-memory spokes, as before
            for name in ("a", "b"):
                memory_registry.CALENDARS[name] = sqlite_calendar(name, f"{tmp}/spoke-{name}.sqlite3")
        a = hubs.add_spoke(ctx, hub.id, "a", "memory", {"calendar": "a", "page_size": SPOKE_PAGE},
                           options={"direction": "two_way"})
        b = hubs.add_spoke(ctx, hub.id, "b", "memory", {"calendar": "b", "page_size": SPOKE_PAGE},
                           options={"direction": "two_way"})
        cal_a, cal_b = memory_registry.calendar("a"), memory_registry.calendar("b")
        for i in range(n):
            cal_a.user_create(_event(i, clock.now()))
        filled = rss_mb()

        def sync_all() -> list[str]:
            statuses = [Runner(ctx).sync(a.id, reason="poll").status, Runner(ctx).sync(b.id, reason="poll").status]
            queue.drain()
            return statuses

        initial = _phase(store, [cal_a, cal_b], sync_all)
        settle = _phase(store, [cal_a, cal_b], sync_all)  # each spoke reads back its own writes once
        changed = max(1, n // 100)
        clock.advance(60)
        for item_id in cal_a.ids_after("", changed):
            item = cal_a.items[item_id]
            cal_a.user_update(item_id, replace(item.event, title=item.event.title + " (moved)", modified=clock.now()))
        one_pct = _phase(store, [cal_a, cal_b], sync_all)
        _phase(store, [cal_a, cal_b], sync_all)
        idle = _phase(store, [cal_a, cal_b], sync_all)
        assert len(cal_b.items) == n, "the benchmark's spokes did not converge"
    memory_registry.CALENDARS.clear()
    peak = peak_rss_mb()
    return {
        "n": n,
        "peak_rss_mb": peak,
        "rss_filled_mb": filled,
        "engine_rss_mb": round(peak - filled, 1),
        "initial": {**initial, "ms_per_item": round(initial["wall_s"] * 1000 / n, 3),
                    "hub_reads_per_item": round(initial["hub_reads"] / n, 3),
                    "hub_writes_per_item": round(initial["hub_writes"] / n, 3),
                    "content_hashes_per_item": round(initial["content_hashes"] / n, 3)},
        "settle": settle,
        "changed_1pct": {**one_pct, "changed": changed, "ms_per_change": round(one_pct["wall_s"] * 1000 / changed, 3)},
        "idle": idle,
    }


# ------------------------------------------------------------------ vdirsyncer, the peer
VDIRSYNCER = "0.21.0"
PEER_MAX_N = 50_000


def _ics(i: int, now: datetime) -> str:
    """The event `_event(i)` as one iCalendar object (the fields vdirsyncer stores as they are)."""
    e = _event(i, now)
    fmt = "%Y%m%dT%H%M%SZ"
    assert e.start is not None and e.end is not None
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//spokesync//bench//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:bench-{i}@spokesync\r\nDTSTAMP:{now.strftime(fmt)}\r\n"
            f"DTSTART:{e.start.strftime(fmt)}\r\nDTEND:{e.end.strftime(fmt)}\r\n"
            f"SUMMARY:{e.title}\r\nDESCRIPTION:{e.description}\r\nLOCATION:{e.location}\r\n"
            f"CATEGORIES:team\r\nLAST-MODIFIED:{now.strftime(fmt)}\r\n"
            "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Reminder\r\nTRIGGER:-PT10M\r\nEND:VALARM\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n")


def _vdirsyncer_bin() -> Path:
    venv = Path(tempfile.gettempdir()) / f"spokesync-bench-vdirsyncer-{VDIRSYNCER}"
    binary = venv / "bin" / "vdirsyncer"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"vdirsyncer=={VDIRSYNCER}"], check=True)
    return binary


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def peer(n: int) -> dict[str, Any]:
    binary = _vdirsyncer_bin()
    now = datetime(2026, 3, 1, 8, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "a").mkdir()
        (root / "b").mkdir()
        for i in range(n):
            (root / "a" / f"bench-{i}.ics").write_text(_ics(i, now), newline="")
        config = root / "config"
        config.write_text(f"""[general]
status_path = "{root}/status/"

[pair bench]
a = "bench_a"
b = "bench_b"
collections = null
conflict_resolution = "a wins"

[storage bench_a]
type = "filesystem"
path = "{root}/a/"
fileext = ".ics"

[storage bench_b]
type = "filesystem"
path = "{root}/b/"
fileext = ".ics"
""")
        env = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        cmd = [str(binary), "-c", str(config), "--verbosity", "ERROR"]
        subprocess.run([*cmd, "discover"], check=True, env=env, capture_output=True)
        cpu, started = _child_cpu(), time.perf_counter()
        subprocess.run([*cmd, "sync"], check=True, env=env, capture_output=True)
        initial = {"wall_s": round(time.perf_counter() - started, 3), "cpu_s": round(_child_cpu() - cpu, 3)}
        copied = len(list((root / "b").glob("*.ics")))
        assert copied == n, f"vdirsyncer copied {copied} of {n} events"
        cpu, started = _child_cpu(), time.perf_counter()
        subprocess.run([*cmd, "sync"], check=True, env=env, capture_output=True)
        idle = {"wall_s": round(time.perf_counter() - started, 3), "cpu_s": round(_child_cpu() - cpu, 3)}
    return {"tool": f"vdirsyncer {VDIRSYNCER}", "storages": "filesystem ⇄ filesystem", "n": n,
            "initial": initial, "idle": idle}


def _in_subprocess(n: int, spokes: str | None = None) -> dict[str, Any]:
    """One size in a fresh interpreter: its own peak RSS (`spokes="heap"`: in-memory spokes)."""
    code = f"import json, bench.engine_scale as e; print(json.dumps(e.measure({n})))"
    env = dict(os.environ)
    if spokes is not None:
        env["ENGINE_SCALE_SPOKES"] = spokes
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, env=env)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run(n: int) -> dict[str, Any]:
    sizes = [s for s in SIZES if s < n] + [n]
    series = [_in_subprocess(s) for s in sizes]
    if os.environ.get("VDIRSYNCER", "1") != "0":
        for entry in series:
            if entry["n"] <= PEER_MAX_N:
                # the engine beside the peer as the issue compares them: the spokes in memory (the
                # default spokes' pickling and SQLite work is the benchmark's, not the engine's)
                heap = _in_subprocess(entry["n"], "heap")["initial"]
                p = peer(entry["n"])
                p["engine_heap_spokes"] = {"cpu_s": heap["cpu_s"], "wall_s": heap["wall_s"]}
                p["engine_over_peer_cpu"] = round(heap["cpu_s"] / max(p["initial"]["cpu_s"], 1e-9), 2)
                p["engine_over_peer_wall"] = round(heap["wall_s"] / max(p["initial"]["wall_s"], 1e-9), 2)
                entry["peer"] = p
    top = series[-1]
    return {
        "name": "engine_scale",
        "n": n,
        "api_calls": top["initial"]["api_calls"],
        "hub_reads": top["initial"]["hub_reads"],
        "hub_writes": top["initial"]["hub_writes"],
        "series": series,
        "peak_rss_mb": max(e["peak_rss_mb"] for e in series),
    }
