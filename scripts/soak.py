"""Soak test: many clients connect, echo, drop and reconnect with the same ids while UDP
pushes flow to every id; then every id's pushes are checked and the host's memory is read.

Each client binds a UDP socket through the host (`udp.bind`, `udp.readStart`); one sender
outside the host sends numbered datagrams to every socket the whole time. A client drops its
WebSocket now and then (a clean close), stays away a moment and reconnects with the same id;
meanwhile the host buffers its datagrams. At the end each id must have received every
datagram its socket received (`udp.getState`), in order, none twice, and the host's buffers
must have dropped none. Resident memory is read from /proc before, at the peak and after
every client has left and its id expired.

Usage: python3 scripts/soak.py CONDUIT_BINARY [--clients N] [--seconds S]
Prints one JSON line with the figures; exits 1 if any check fails.
"""
import argparse
import asyncio
import json
import os
import random
import socket
import struct
import subprocess
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

KEY = "soak-shared-key"
GRACE_SECONDS = 10  # longer than any gap a client takes, shorter than the wait at the end


def encode(headers, payload=b""):
    out = bytearray([len(headers)])
    for key, value in headers.items():
        k, v = key.encode(), str(value).encode()
        out += bytes([len(k)]) + k + struct.pack(">H", len(v)) + v
    return bytes(out + struct.pack(">H", len(payload)) + payload)


def decode(data):
    count, offset, headers = data[0], 1, {}
    for _ in range(count):
        klen = data[offset]
        key = data[offset + 1:offset + 1 + klen].decode()
        offset += 1 + klen
        (vlen,) = struct.unpack_from(">H", data, offset)
        headers[key] = data[offset + 2:offset + 2 + vlen].decode()
        offset += 2 + vlen
    (plen,) = struct.unpack_from(">H", data, offset)
    return headers, data[offset + 2:offset + 2 + plen]


def start_host(conduit, **settings):
    """Starts `conduit serve` with the soak key and `settings` as environment; returns the
    process, its pid and its WebSocket port (from the announce line)."""
    env = dict(os.environ, CONDUIT_SHARED_KEY=KEY, **settings)
    host = subprocess.Popen([conduit, "serve"], stdout=subprocess.PIPE, env=env)
    announce = json.loads(host.stdout.readline())
    return host, announce["pid"], announce["port"]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Client:
    """One client id: its UDP port on the host and what it has received so far."""

    def __init__(self, index, port):
        self.id = f"soak-{index}"
        self.url = f"ws://127.0.0.1:{port}/{self.id}/0?key={KEY}"
        self.udp_port = None
        self.last_seq = -1
        self.delivered = 0
        self.out_of_order = 0
        self.echoes = 0
        self.reconnects = 0
        self.replies = {}
        self.token = 0

    async def request(self, ws, headers):
        self.token += 1
        token = str(self.token)
        future = asyncio.get_running_loop().create_future()
        self.replies[token] = future
        await ws.send(encode({**headers, "token": token}))
        reply_headers, payload = await asyncio.wait_for(future, 30)
        if "error" in reply_headers:
            raise RuntimeError(f"{self.id} {headers}: {payload.decode()}")
        return json.loads(payload)["data"] if payload.startswith(b"{") else payload

    def on_message(self, data):
        headers, payload = decode(data)
        if headers.get("route") == "udp.data":
            (seq,) = struct.unpack(">Q", payload[:8])
            if seq <= self.last_seq:
                self.out_of_order += 1
                if os.environ.get("SOAK_DEBUG"):
                    print(f"{self.id}: {seq} after {self.last_seq}, reconnects {self.reconnects}", file=sys.stderr)
            self.last_seq = seq
            self.delivered += 1
        elif headers.get("token") in self.replies:
            self.replies.pop(headers["token"]).set_result((headers, payload))

    async def session(self, stop_at, first):
        """One socket's life: returns it still open at `stop_at`, else (None, None) once dropped."""
        ws = await connect(self.url, compression=None, max_size=None, open_timeout=60)
        reader = asyncio.create_task(self.read(ws))
        if first:
            state = await self.request(ws, {"route": "udp.bind"})
            self.udp_port = state["port"]
            await self.request(ws, {"route": "udp.readStart"})
        stay = time.monotonic() + random.uniform(1, 6)
        while time.monotonic() < min(stay, stop_at):
            await self.request(ws, {"route": "echo"})
            self.echoes += 1
            await asyncio.sleep(random.uniform(0.05, 0.3))
        if time.monotonic() >= stop_at:
            return ws, reader
        await ws.close()  # a clean drop: the reader still gets every message sent before it
        await reader
        return None, None

    async def read(self, ws):
        try:
            async for data in ws:
                self.on_message(data)
        except ConnectionClosed:
            pass

    async def run(self, stop_at):
        """Connects, drops and reconnects until `stop_at`; returns the last open socket."""
        first = True
        while True:
            ws, reader = await self.session(stop_at, first)
            if ws is not None:
                return ws, reader
            first = False
            self.reconnects += 1
            await asyncio.sleep(random.uniform(0.1, 1.5))


async def send_datagrams(clients, stop, rate_per_client):
    """Numbered datagrams (uint64 BE) to every client's host socket until `stop` is set."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = {client.id: 0 for client in clients}
    while not stop.is_set():
        tick = time.monotonic()
        for client in clients:
            if client.udp_port:
                sender.sendto(struct.pack(">Q", sent[client.id]) + b"x" * 56, ("127.0.0.1", client.udp_port))
                sent[client.id] += 1
        await asyncio.sleep(max(0, 1 / rate_per_client - (time.monotonic() - tick)))
    sender.close()
    return sent


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("conduit")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--rate", type=float, default=10, help="datagrams per second per client")
    args = parser.parse_args()

    host, pid, port = start_host(args.conduit, CONDUIT_CLIENT_GRACE_SECONDS=str(GRACE_SECONDS))
    try:
        await asyncio.sleep(1)
        baseline = rss_kib(pid)
        clients = [Client(i, port) for i in range(args.clients)]
        stop_at = time.monotonic() + args.seconds
        stop_sending = asyncio.Event()
        sender = asyncio.create_task(send_datagrams(clients, stop_sending, args.rate))
        peak = baseline

        async def watch():
            nonlocal peak
            while not stop_sending.is_set():
                peak = max(peak, rss_kib(pid))
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(watch())
        sockets = await asyncio.gather(*(client.run(stop_at) for client in clients))
        stop_sending.set()
        sent = await sender
        await watcher
        await asyncio.sleep(1)  # datagrams still in flight reach the host's sockets

        # Every datagram the host's socket received reaches its id: ask each socket, then
        # wait for the deliveries to catch up.
        states = await asyncio.gather(*(c.request(ws, {"route": "udp.getState"}) for c, (ws, _) in zip(clients, sockets)))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
                c.delivered < s["received"] - s["ignored"] for c, s in zip(clients, states)):
            await asyncio.sleep(0.2)
        received = sum(s["received"] - s["ignored"] for s in states)
        dropped = sum(s["pushedDroppingOldest"] for s in states)
        delivered = sum(c.delivered for c in clients)
        lost = sum(max(0, s["received"] - s["ignored"] - c.delivered) for c, s in zip(clients, states))
        out_of_order = sum(c.out_of_order for c in clients)
        peak = max(peak, rss_kib(pid))

        for client, (ws, reader) in zip(clients, sockets):
            await client.request(ws, {"route": "udp.close"})
            await ws.close()
            await reader
        await asyncio.sleep(GRACE_SECONDS + 3)  # ids expire, their buffers go
        after = rss_kib(pid)
        alive = host.poll() is None
        result = {
            "clients": args.clients, "seconds": args.seconds, "reconnects": sum(c.reconnects for c in clients),
            "echoes": sum(c.echoes for c in clients), "datagramsSent": sum(sent.values()),
            "datagramsReceivedByHost": received, "pushesDelivered": delivered, "pushesLost": lost,
            "pushesDroppedByBuffer": dropped, "outOfOrder": out_of_order, "hostAlive": alive,
            "rssKiB": {"baseline": baseline, "peak": peak, "afterClientsLeft": after},
        }
        print(json.dumps(result), flush=True)
        ok = alive and lost == 0 and dropped == 0 and out_of_order == 0 and delivered == received
        # Memory returns near the baseline: within 64 MiB of it once everyone left.
        ok = ok and after - baseline < 64 * 1024
        return 0 if ok else 1
    finally:
        host.terminate()
        host.wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
