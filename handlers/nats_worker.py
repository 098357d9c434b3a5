#!/usr/bin/env python3
"""An example NATS worker for Conduit's `nats` routes (docs/nats.md); needs nats-py
(`pip install nats-py`, or the python3 that scripts/nats-python.sh prints).

    python3 handlers/nats_worker.py --url nats://127.0.0.1:4222 --subject 'work.>' --queue workers --name py-1

Every worker started with the same --queue shares the requests of --subject. The host sends a
request's Conduit headers as NATS headers (`route`, `token`, …, plus `conduit-client`: the id
of the client that asked); the reply's headers and payload become the client's reply.

    route ending .upper  replies with the payload in upper case
    route ending .count  replies {"worker":<name>,"handled":<requests this worker handled>}
    anything else        replies with the payload
    every reply carries the header `worker: <name>`.

A request with the header `push: yes` first pushes `working on <token>` to the asking client
(route `work.progress`) by publishing to `conduit.push.<conduit-client>`.
The Swift twin of this file is Sources/conduit-nats-worker.
"""
import argparse
import asyncio
import json
import re
import signal
import sys

import nats


async def serve(args):
    handled = 0

    async def on_request(msg):
        nonlocal handled
        if not msg.reply:
            return  # a plain publish, not a request: nobody to answer
        handled += 1
        headers = msg.headers or {}
        route = headers.get("route", "")
        client = headers.get("conduit-client")
        if headers.get("push") == "yes" and client:
            # A push goes to any client id through its subject; the NATS headers are the
            # push's Conduit headers. Published before the reply, so it arrives first.
            await nc.publish(f"conduit.push.{client}", f"working on {headers.get('token', '')}".encode(),
                             headers={"route": "work.progress", "worker": args.name})
        if route.endswith(".upper"):
            payload = msg.data.upper()
        elif route.endswith(".count"):
            payload = json.dumps({"worker": args.name, "handled": handled}, separators=(",", ":")).encode()
        else:
            payload = msg.data
        # Not msg.respond(): nats-py's respond sends the request's own headers back with it.
        # The host puts the request's route and token on the reply itself.
        await nc.publish(msg.reply, payload, headers={"worker": args.name})

    last_error = None

    async def on_error(error):
        nonlocal last_error
        if str(error) != last_error:  # a server that stays away: said once, not every 2 s
            last_error = str(error)
            print(f"nats_worker {args.name}: {error}", file=sys.stderr, flush=True)

    async def on_reconnected():
        nonlocal last_error
        last_error = None
        print(f"nats_worker {args.name}: reconnected", file=sys.stderr, flush=True)

    stop = asyncio.Event()
    where = re.sub(r"//[^/@]*@", "//", args.url)  # the URL without its credentials, for messages

    async def on_closed():
        stop.set()

    try:
        # nats-py reconnects by itself (60 attempts, 2 s apart, by default); once it gives up
        # the connection is closed and so is the worker: a supervisor starts it again.
        nc = await nats.connect(args.url, name=args.name, error_cb=on_error, reconnected_cb=on_reconnected,
                                closed_cb=on_closed, drain_timeout=3)
    except Exception as error:
        sys.exit(f"nats_worker {args.name}: can't connect to {where}: {error!r}")
    await nc.subscribe(args.subject, queue=args.queue, cb=on_request)
    await nc.flush()  # the server has the subscription once this returns
    print("ready", flush=True)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if nc.is_closed:
        sys.exit(f"nats_worker {args.name}: the connection to {where} is closed")
    try:
        # Finish the requests already received (3 s for that), then close; 5 s at most in all.
        await asyncio.wait_for(nc.drain() if nc.is_connected else nc.close(), timeout=5)
    except (Exception, asyncio.CancelledError):
        pass  # the server went away while we were leaving: nothing more to do


def main():
    parser = argparse.ArgumentParser(description="An example worker for Conduit's nats routes.")
    parser.add_argument("--url", default="nats://127.0.0.1:4222", help="the NATS server")
    parser.add_argument("--subject", default="work.>", help="the subject to serve (wildcards allowed)")
    parser.add_argument("--queue", default="workers", help="the queue group workers of this subject share")
    parser.add_argument("--name", default="py-1", help="this worker's name, sent back in the `worker` header")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
