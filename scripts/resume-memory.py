"""Resume windows against the host's memory (SPEC §9, docs/memory.md): what a window holds
must be what the host-wide budget is charged, whatever its messages look like, and an id
that waits out its grace period without a socket must hold next to nothing.

Two runs, each against its own `conduit serve`:
- tiny: one resuming client has the host echo MESSAGES empty requests and acknowledges none,
  under a small budget. Every kept message takes an entry besides its few bytes; charged by
  bytes alone, such a window took six times its charge. Check: the host's RSS grows by no
  more than the budget plus a fixed overhead.
- idle: IDS resuming clients, one after another, each echo 40 KB, acknowledge it all and
  close; their ids stay for the grace period. Check: RSS grows by at most 20 KiB an id (an
  idle connection's target, docs/soak.md).

Usage: python3 scripts/resume-memory.py CONDUIT_BINARY [--messages N] [--ids N]
Prints one JSON line with the figures; exits 1 if a check fails.
"""
import argparse
import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak import KEY, decode, encode, hosted, ipc_post, rss_kib  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

BUDGET_BYTES = 4 << 20
FIXED_OVERHEAD_KIB = 8 << 10
PER_IDLE_ID_KIB = 20
ECHOES_PER_ID = 40
ECHO_BYTES = 1000


def diagnostics(ipc_port):
    return json.loads(ipc_post(ipc_port, "/internal.conduit.diagnostics")[1])["data"]


async def open_resuming(port, client_id):
    ws = await connect(f"ws://127.0.0.1:{port}/{client_id}/0?key={KEY}&resume=0", compression=None, max_size=None)
    greeting, _ = decode(await ws.recv())
    assert greeting["route"] == "conduit.resume", greeting
    return ws


async def next_numbered(ws):
    """The next message with a host position (the host's own acknowledgements have none)."""
    while True:
        headers, payload = decode(await ws.recv())
        if "pos" in headers:
            return headers, payload


async def tiny(conduit, messages):
    settings = {"CONDUIT_HOST_BUFFER_BYTES": str(BUDGET_BYTES), "CONDUIT_RESUME_WINDOW_BYTES": str(64 << 20)}
    with hosted(conduit, **settings) as (pid, port, ipc_port):
        await asyncio.sleep(0.5)
        baseline = rss_kib(pid)
        ws = await open_resuming(port, "tiny")
        batch = 1000
        for first in range(1, messages + 1, batch):
            last = min(first + batch - 1, messages)
            for position in range(first, last + 1):
                await ws.send(encode({"route": "echo", "pos": position}))
            for _ in range(first, last + 1):
                await next_numbered(ws)
        peak = rss_kib(pid)
        data = diagnostics(ipc_port)
        window = next(client["resume"] for client in data["clients"] if client["id"] == "tiny")
        await ws.close()
        return {"messages": messages, "budgetBytes": BUDGET_BYTES, "usedBytes": data["buffers"]["usedBytes"],
                "windowMessages": window["windowMessages"], "windowBytes": window["windowBytes"],
                # Absent on hosts from before the window reported its memory (the figures "before").
                "windowMemoryBytes": window.get("windowMemoryBytes"), "evicted": window["evicted"],
                "rssBaselineKiB": baseline, "rssKiB": peak,
                "ok": peak - baseline <= BUDGET_BYTES // 1024 + FIXED_OVERHEAD_KIB
                and data["buffers"]["usedBytes"] <= BUDGET_BYTES}


async def idle(conduit, ids):
    with hosted(conduit, CONDUIT_CLIENT_GRACE_SECONDS="600") as (pid, port, _):
        await asyncio.sleep(0.5)
        baseline = rss_kib(pid)
        for index in range(ids):
            ws = await open_resuming(port, f"idle{index}")
            for position in range(1, ECHOES_PER_ID + 1):
                await ws.send(encode({"route": "echo", "pos": position}, b"x" * ECHO_BYTES))
            for _ in range(ECHOES_PER_ID):
                headers, _ = await next_numbered(ws)
            await ws.send(encode({"ack": headers["pos"]}))
            await ws.close()
        await asyncio.sleep(0.5)
        after = rss_kib(pid)
        per_id = (after - baseline) / ids
        return {"ids": ids, "rssBaselineKiB": baseline, "rssKiB": after, "perIdKiB": round(per_id, 1),
                "ok": per_id <= PER_IDLE_ID_KIB}


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("conduit")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--ids", type=int, default=300)
    arguments = parser.parse_args()
    figures = {"tiny": await tiny(arguments.conduit, arguments.messages),
               "idle": await idle(arguments.conduit, arguments.ids)}
    print(json.dumps(figures))
    if not all(run["ok"] for run in figures.values()):
        sys.exit(1)


asyncio.run(main())
