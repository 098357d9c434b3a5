"""Handler paths measured against a real `conduit serve` (the binary given, e.g. the release
build): UDP datagrams delivered to one WebSocket client, bytes through the TLS bridge to the
local TLS echo service, and the IPC invocation round trip. Prints one JSON line per figure.

Usage: python3 scripts/measure-handlers.py CONDUIT_BINARY [--datagrams N] [--tls-mib M]
The clients are Python (`websockets`, `urllib`): where they, not the host, are the limit, the
figure says so (client CPU seconds next to the host's).
"""
import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import struct
import time
import urllib.request

from websockets.asyncio.client import connect

from soak import decode, encode, hosted

CPU_TICKS = os.sysconf("SC_CLK_TCK")


def host_cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CPU_TICKS


def own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Client:
    """A WebSocket client that answers requests by token and hands pushes to `on_push`."""

    def __init__(self, ws, on_push):
        self.ws, self.on_push, self.replies, self.token = ws, on_push, {}, 0
        self.reader = asyncio.create_task(self.read())

    async def read(self):
        async for data in self.ws:
            headers, payload = decode(data)
            future = self.replies.pop(headers.get("token"), None)
            if future:
                future.set_result((headers, payload))
            else:
                self.on_push(headers, payload)

    async def request(self, headers, payload=b""):
        self.token += 1
        token = f"m{self.token}"
        self.replies[token] = asyncio.get_running_loop().create_future()
        await self.ws.send(encode({**headers, "token": token}, payload))
        headers, payload = await asyncio.wait_for(self.replies[token], 60)
        if "error" in headers:
            raise RuntimeError(payload.decode())
        return json.loads(payload)["data"] if payload.startswith(b"{") else payload


async def udp_to_websocket(port, pid, total):
    """64-byte datagrams from an outside socket, as fast as the kernel takes them, in bursts
    the receive buffer holds; delivered = pushes the client got, lost = sent - delivered."""
    delivered = 0
    done = asyncio.Event()

    def on_push(headers, payload):
        nonlocal delivered
        if headers.get("route") == "udp.data":
            delivered += 1
            if delivered == total:
                done.set()

    async with connect(f"ws://127.0.0.1:{port}/udp-bench/0?key=soak-shared-key", max_size=None, max_queue=None) as ws:
        client = Client(ws, on_push)
        bound = await client.request({"route": "udp.bind"})
        await client.request({"route": "udp.readStart"})
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        datagram = b"d" * 64
        host_before, client_before, started = host_cpu_seconds(pid), own_cpu_seconds(), time.perf_counter()
        for n in range(total):
            sender.sendto(datagram, ("127.0.0.1", bound["port"]))
            if n % 2000 == 1999:
                await asyncio.sleep(0)  # let the reader run
        try:
            await asyncio.wait_for(done.wait(), 30)
        except asyncio.TimeoutError:
            pass
        elapsed = time.perf_counter() - started
        state = await client.request({"route": "udp.getState"})
        return {
            "figure": "udp-to-websocket", "datagramBytes": 64, "sent": total, "receivedByHost": state["received"],
            "delivered": delivered, "lost": total - delivered, "seconds": round(elapsed, 3),
            "deliveredPerSecond": round(delivered / elapsed), "hostCPUSeconds": round(host_cpu_seconds(pid) - host_before, 2),
            "clientCPUSeconds": round(own_cpu_seconds() - client_before, 2),
        }


async def tls_bridge(port, pid, mebibytes):
    """`mebibytes` written through tls.write in 64 KiB pieces (at most 1 MiB unanswered) to the
    local TLS echo service and read back as tls.data pushes."""
    received = 0
    total = mebibytes << 20
    done = asyncio.Event()

    def on_push(headers, payload):
        nonlocal received
        if headers.get("route") == "tls.data":
            received += len(payload)
            if received >= total:
                done.set()

    async with connect(f"ws://127.0.0.1:{port}/tls-bench/0?key=soak-shared-key", max_size=None, max_queue=None) as ws:
        client = Client(ws, on_push)
        service = await client.request({"route": "tls.echoService"})
        await client.request({"route": "tls.connect", "host": "127.0.0.1", "port": str(service["port"])},
                             service["certificatePEM"].encode())
        piece = b"t" * 65535
        host_before, client_before, started = host_cpu_seconds(pid), own_cpu_seconds(), time.perf_counter()
        sent = 0
        while sent < total:
            while sent - received > (1 << 20):
                await asyncio.sleep(0.0005)
            chunk = piece[:min(len(piece), total - sent)]
            await ws.send(encode({"route": "tls.write"}, chunk))  # no token: its reply is not awaited
            sent += len(chunk)
        await asyncio.wait_for(done.wait(), 60)
        elapsed = time.perf_counter() - started
        return {
            "figure": "tls-bridge-echo", "mebibytes": mebibytes, "seconds": round(elapsed, 3),
            "megabytesPerSecond": round(total / elapsed / 1e6, 1), "hostCPUSeconds": round(host_cpu_seconds(pid) - host_before, 2),
            "clientCPUSeconds": round(own_cpu_seconds() - client_before, 2),
        }


def ipc_invocation(ipc_port, runs):
    """`POST /echo` with a 64-byte body over one kept-alive HTTP connection (http.client)."""
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", ipc_port)
    times = []
    for n in range(runs):
        started = time.perf_counter()
        connection.request("POST", f"/echo?token={n}", body=b"i" * 64, headers={"Authorization": "Bearer soak-shared-key"})
        response = connection.getresponse()
        assert response.status == 200 and response.read() == b"i" * 64
        times.append(time.perf_counter() - started)
    times.sort()
    return {"figure": "ipc-invocation-echo", "runs": runs, "p50Microseconds": round(statistics.median(times) * 1e6, 1),
            "p99Microseconds": round(times[int(runs * 0.99)] * 1e6, 1), "requestsPerSecond": round(runs / sum(times))}


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("conduit")
    parser.add_argument("--datagrams", type=int, default=200_000)
    parser.add_argument("--tls-mib", type=int, default=64)
    args = parser.parse_args()
    with hosted(args.conduit) as (pid, port, ipc_port):
        await asyncio.sleep(1)
        print(json.dumps(await udp_to_websocket(port, pid, args.datagrams)), flush=True)
        print(json.dumps(await tls_bridge(port, pid, args.tls_mib)), flush=True)
        print(json.dumps(ipc_invocation(ipc_port, 5000)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
