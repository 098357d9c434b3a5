"""A client with the key that opens and closes sockets under new ids as fast as it can
(docs/soak.md): each id outlives its socket by the grace period, so the ids held are bounded
only by `limits.maxClients`. Runs WORKERS such loops against a host with `maxClients` LIMIT,
and 4 loops naming new ids in IPC invocations, while one client stays connected, until a fifth
more ids than LIMIT were named, or SECONDS ran out (a fixed 6 s named fewer than LIMIT on a
slow machine, and no place was evicted). Checks: the host holds at most LIMIT
ids (the ids away the longest gave their places), its RSS grows by at most 1.5 KiB an id
held plus 8 MiB, and the connected client is still served.

Usage: python3 scripts/id-churn.py CONDUIT_BINARY [--limit N] [--seconds S] [--workers W]
Prints one JSON line with the figures; exits 1 if a check fails.
"""
import argparse
import asyncio
import json
import os
import sys
import time
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak import decode, encode, hosted, ipc_post, masked_frame, raise_descriptor_limit, raw_socket, rss_kib  # noqa: E402

ALLOWED_KIB_PER_ID = 1.5
ALLOWED_OVERHEAD_KIB = 8 << 10


async def echoed(reader, writer, payload):
    """The payload of the echo route's reply to one request (a short one: one frame)."""
    writer.write(masked_frame(encode({"route": "echo", "token": "1"}, payload)))
    await writer.drain()
    _, length = await asyncio.wait_for(reader.readexactly(2), 10)
    return decode(await reader.readexactly(length & 0x7F))[1]


def going(deadline, counts, target):
    return time.monotonic() < deadline and counts["opened"] + counts["named"] < target


async def churn(port, worker, deadline, counts, target):
    index = 0
    while going(deadline, counts, target):
        try:
            _, writer = await raw_socket(port, f"churn-{worker}-{index}")
            writer.close()
            counts["opened"] += 1
        except (OSError, RuntimeError, asyncio.IncompleteReadError):
            counts["failed"] += 1
        index += 1


async def name_over_ipc(ipc_port, worker, deadline, counts, target):
    index = 0
    while going(deadline, counts, target):
        try:
            await asyncio.to_thread(ipc_post, ipc_port, f"/echo?id=named-{worker}-{index}")
            counts["named"] += 1
        except urllib.error.HTTPError:
            # A refusal (503: every id held connected) fails the check, with the counts.
            counts["failed"] += 1
        index += 1


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("conduit")
    parser.add_argument("--limit", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=32)
    arguments = parser.parse_args()
    raise_descriptor_limit()
    with hosted(arguments.conduit, CONDUIT_MAX_CLIENTS=str(arguments.limit), CONDUIT_CLIENT_GRACE_SECONDS="600") as (pid, port, ipc_port):
        await asyncio.sleep(0.5)
        baseline = rss_kib(pid)
        steady_reader, steady_writer = await raw_socket(port, "steady")
        counts = {"opened": 0, "named": 0, "failed": 0}
        started = time.monotonic()
        deadline, target = started + arguments.seconds, arguments.limit * 6 // 5
        await asyncio.gather(*(churn(port, worker, deadline, counts, target) for worker in range(arguments.workers)),
                             *(name_over_ipc(ipc_port, worker, deadline, counts, target) for worker in range(4)))
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.5)
        grown = rss_kib(pid) - baseline
        served = await echoed(steady_reader, steady_writer, b"still here") == b"still here"
        _, body = ipc_post(ipc_port, "/internal.conduit.diagnostics")
        places = json.loads(body)["data"]["places"]
        steady_writer.close()
    ok = (places["held"] <= arguments.limit and places["evicted"] > 0 and served and counts["failed"] == 0
          and grown <= ALLOWED_KIB_PER_ID * places["held"] + ALLOWED_OVERHEAD_KIB)
    print(json.dumps({**counts, "seconds": round(elapsed, 1), "perSecond": round(counts["opened"] / elapsed), "places": places,
                      "rssGrowthKiB": grown, "steadyClientServed": served, "ok": ok}))
    if not ok:
        sys.exit(1)


asyncio.run(main())
