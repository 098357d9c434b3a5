#!/usr/bin/env python3
"""Tokens per second through the AI stream path, pacing off: starts `conduit serve` (the binary
given, e.g. .build/release/conduit) with an `ai.*` route at tokensPerSecond 0, asks one
WebSocket client (Python `websockets`) for N tokens and times them until `complete: true`.
Usage: scripts/ai-throughput.py CONDUIT_BINARY [TOKENS=100000] [RUNS=3]"""
import asyncio, json, os, struct, subprocess, sys, tempfile, time

import websockets

CONFIG = """routes:
  - route: ai.*
    handler: ai
    options: {backend: builtin, tokensPerSecond: 0}
"""


def encode(headers, payload=b""):
    out = bytes([len(headers)])
    for key, value in headers:
        k, v = key.encode(), value.encode()
        out += bytes([len(k)]) + k + struct.pack(">H", len(v)) + v
    return out + struct.pack(">H", len(payload)) + payload


def decode_headers(data):
    count, i, headers = data[0], 1, {}
    for _ in range(count):
        k = data[i]
        key = data[i + 1:i + 1 + k].decode()
        i += 1 + k
        v = struct.unpack(">H", data[i:i + 2])[0]
        headers[key] = data[i + 2:i + 2 + v].decode()
        i += 2 + v
    return headers


async def measure(port, key, tokens, run):
    url = f"ws://127.0.0.1:{port}/bench{run}/0?key={key}"
    async with websockets.connect(url, max_size=None, max_queue=None) as ws:
        started = time.perf_counter()
        await ws.send(encode([("route", "ai.chat.generate"), ("token", "b"), ("prompt", "measure"),
                              ("maxTokens", str(tokens))]))
        received = gaps = 0
        while True:
            headers = decode_headers(await ws.recv())
            if "error" in headers:
                raise SystemExit(f"error reply: {headers}")
            gaps += int(headers["index"]) != received
            if headers["complete"] == "true":
                break
            received += 1
        seconds = time.perf_counter() - started
    print(f"run {run}: {received} tokens in {seconds:.3f} s = {received / seconds:,.0f} tokens/s, index gaps {gaps}")


def main():
    binary, tokens, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100_000, \
        int(sys.argv[3]) if len(sys.argv) > 3 else 3
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as config:
        config.write(CONFIG)
    env = dict(os.environ, CONDUIT_SHARED_KEY="throughput-key", CONDUIT_RUNTIME_FILE=config.name + ".json")
    server = subprocess.Popen([binary, "serve", "--config", config.name], stdout=subprocess.PIPE, env=env, text=True)
    try:
        announce = json.loads(server.stdout.readline())
        for run in range(1, runs + 1):
            asyncio.run(measure(announce["port"], "throughput-key", tokens, run))
    finally:
        server.terminate()
        server.wait()
        os.unlink(config.name)


if __name__ == "__main__":
    main()
