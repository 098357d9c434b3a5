"""Connection scale: holds N idle WebSocket connections to a fresh host and reports the
host's resident memory per connection (VmRSS with N open, less the baseline, over N).

Usage: python3 scripts/scale.py CONDUIT_BINARY [--connections N]
Raises its own descriptor limit (the host inherits it). Prints one JSON line; exits 1 if a
connection fails or an echo over a held connection goes unanswered.
"""
import argparse
import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect

from soak import KEY, decode, encode, hosted, raise_descriptor_limit, rss_kib


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("conduit")
    parser.add_argument("--connections", type=int, default=10_000)
    args = parser.parse_args()
    raise_descriptor_limit()

    with hosted(args.conduit) as (pid, port, _):
        await asyncio.sleep(1)
        baseline = rss_kib(pid)
        started = time.monotonic()
        limit = asyncio.Semaphore(200)  # handshakes in flight at once

        async def open_one(index):
            async with limit:
                return await connect(f"ws://127.0.0.1:{port}/scale-{index}/0?key={KEY}",
                                     compression=None, ping_interval=None, open_timeout=60)

        sockets = await asyncio.gather(*(open_one(i) for i in range(args.connections)))
        opened = time.monotonic() - started
        await asyncio.sleep(2)
        held = rss_kib(pid)
        # The held connections still work: echo over the first and the last.
        for ws in (sockets[0], sockets[-1]):
            await ws.send(encode({"route": "echo", "token": "1"}, b"ping"))
            headers, payload = decode(await asyncio.wait_for(ws.recv(), 30))
            assert payload == b"ping" and headers["token"] == "1", (headers, payload)
        result = {
            "connections": args.connections, "secondsToOpen": round(opened, 2),
            "rssKiB": {"baseline": baseline, "held": held},
            "kibPerConnection": round((held - baseline) / args.connections, 2),
        }
        print(json.dumps(result), flush=True)
        await asyncio.gather(*(ws.close() for ws in sockets))
        return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
