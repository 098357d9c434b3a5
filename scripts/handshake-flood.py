"""Connections without the key that never finish their handshake (docs/soak.md): what they
may cost the host's memory. Each of CONNECTIONS connections sends an unfinished request head
of HEAD bytes and waits; twice, once with heads over the host's `maxHandshakeBytes` (16 KiB:
each is answered 431 and closed) and once just under it (`maxPendingHandshakes`, 1,024, wait
at once: each new one closes the oldest). Checks: the host's RSS grows by at most 56 MiB
(1,024 waiting heads of up to 16 KiB, each in a buffer of up to 32 KiB, and about 12 KiB a
connection costs besides), and a client with the key is then served in both cases.

Usage: python3 scripts/handshake-flood.py CONDUIT_BINARY [--connections N]
Prints one JSON line with the figures; exits 1 if a check fails.
"""
import argparse
import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak import KEY, hosted, open_fds, raise_descriptor_limit, rss_kib  # noqa: E402

ALLOWED_GROWTH_KIB = 56 << 10
UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n")


async def served_with_key(port):
    """The status line a client with the key gets, or the error it meets."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        writer.write(f"GET /keyed/0?key={KEY} HTTP/1.1\r\nHost: 127.0.0.1\r\n{UPGRADE}".encode())
        line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        return line.decode().strip() or "closed"
    except (OSError, asyncio.TimeoutError) as error:
        return type(error).__name__


async def flood(conduit, connections, head_bytes):
    with hosted(conduit, CONDUIT_HANDSHAKE_TIMEOUT_SECONDS="60") as (pid, port, _):
        await asyncio.sleep(0.5)
        baseline = rss_kib(pid)
        head = (b"GET /flood/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ").ljust(head_bytes, b"a")
        streams = []
        for index in range(connections):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                break
            writer.write(head)
            streams.append((reader, writer))
            if index % 100 == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(2)
        peak = rss_kib(pid)
        figures = {"connections": len(streams), "headBytes": head_bytes, "hostFds": open_fds(pid),
                   "rssBaselineKiB": baseline, "rssKiB": peak, "keyedClient": await served_with_key(port)}
        for _, writer in streams:
            writer.close()
        return figures


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("conduit")
    parser.add_argument("--connections", type=int, default=2000)
    arguments = parser.parse_args()
    raise_descriptor_limit()
    over = await flood(arguments.conduit, arguments.connections, 79_000)
    under = await flood(arguments.conduit, arguments.connections, 15_000)
    ok = all(run["rssKiB"] - run["rssBaselineKiB"] <= ALLOWED_GROWTH_KIB for run in (over, under))
    ok = ok and all(run["keyedClient"].startswith("HTTP/1.1 101") for run in (over, under))
    print(json.dumps({"overLimit": over, "underLimit": under, "ok": ok}))
    if not ok:
        sys.exit(1)


asyncio.run(main())
