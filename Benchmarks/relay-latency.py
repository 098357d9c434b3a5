"""The cost of a relay across hosts (Benchmarks/nats.sh): sequential 64-byte relays from a
client on host A to a client on A, then to a client on host B (through NATS), timed from
send to arrival. Prints a markdown table of the medians and 99th percentiles."""
import argparse
import os
import statistics
import sys
import time

from websockets.sync.client import connect

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from soak import decode, encode  # noqa: E402  (the Conduit framing, written once)


def relay_times(sender, receiver, to, count):
    payload = b"x" * 64
    times = []
    for n in range(count + count // 10):  # the first tenth warms up
        started = time.perf_counter()
        sender.send(encode({"to": to}, payload))
        while True:
            headers, body = decode(receiver.recv(timeout=10))
            if headers.get("to") == to:
                break
        if n >= count // 10:
            times.append((time.perf_counter() - started) * 1e6)
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", required=True)
    parser.add_argument("--port-a", type=int, required=True)
    parser.add_argument("--port-b", type=int, required=True)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    url = "ws://127.0.0.1:{}/{}/0?key=" + args.key
    with connect(url.format(args.port_a, "sender"), max_size=None) as sender, \
            connect(url.format(args.port_a, "local"), max_size=None) as local, \
            connect(url.format(args.port_b, "remote"), max_size=None) as remote:
        # The remote host subscribes for its id when it connects: wait until a relay arrives.
        deadline = time.time() + 20
        while True:
            sender.send(encode({"to": "remote", "token": "probe"}))
            headers, _ = decode(sender.recv(timeout=10))
            if "error" not in headers:
                decode(remote.recv(timeout=10))
                break
            if time.time() > deadline:
                sys.exit("the remote host never took a relay: " + str(headers))
            time.sleep(0.05)
        rows = [("same host", relay_times(sender, local, "local", args.count)),
                ("across hosts (NATS)", relay_times(sender, remote, "remote", args.count))]
    print("| relay | p50 µs | p99 µs | relays |")
    print("|---|---|---|---|")
    for name, times in rows:
        times.sort()
        print(f"| {name} | {statistics.median(times):.1f} | {times[int(len(times) * 0.99)]:.1f} | {len(times)} |")


if __name__ == "__main__":
    main()
