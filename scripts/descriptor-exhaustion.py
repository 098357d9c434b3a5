"""The host out of descriptors (docs/memory.md): started under `prlimit --nofile=LIMIT`, it
gets WebSockets with the key until it holds LIMIT descriptors; checks that the control plane
still answers (IPC status), then adds three connections that wait in its backlog and reports
the host's CPU over 3 s (a listener that retries accept at once spins a core); then closes
everything and checks that a new socket is served.

Usage: python3 scripts/descriptor-exhaustion.py CONDUIT_BINARY [--limit N]
Prints one JSON line; exits 1 if the control plane did not answer, the host used more than
half a core, or no new socket was served.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak import KEY, open_fds  # noqa: E402


def upgrade(port, index):
    """A WebSocket handshake with the key on a raw socket; the socket and whether it got its 101."""
    connection = socket.create_connection(("127.0.0.1", port))
    connection.sendall((f"GET /fd{index}/0?key={KEY} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    connection.settimeout(5)
    try:
        return connection, connection.recv(100).startswith(b"HTTP/1.1 101")
    except OSError:
        return connection, False


def status_answered(ipc_port):
    """Whether the IPC status route answers within 5 s."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ipc_port}/internal.conduit.status?key={KEY}", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("conduit")
    parser.add_argument("--limit", type=int, default=64)
    arguments = parser.parse_args()
    host = subprocess.Popen(["prlimit", f"--nofile={arguments.limit}:{arguments.limit}", arguments.conduit, "serve"],
                            env=dict(os.environ, CONDUIT_SHARED_KEY=KEY), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        announce = json.loads(host.stdout.readline())
        pid, port, ipc_port = announce["pid"], announce["port"], announce["ipcPort"]
        sockets = []
        while open_fds(pid) < arguments.limit:
            connection, upgraded = upgrade(port, len(sockets))
            sockets.append(connection)
            if not upgraded:
                break
        answered = status_answered(ipc_port)
        sockets += [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        time.sleep(0.5)
        start, started = cpu_seconds(pid), time.time()
        time.sleep(3)
        cores = (cpu_seconds(pid) - start) / (time.time() - started)
        held = open_fds(pid)
        for connection in sockets:
            connection.close()
        time.sleep(1)
        connection, served = upgrade(port, len(sockets) + 1)
        connection.close()
        result = {"limit": arguments.limit, "hostDescriptors": held, "connections": len(sockets), "controlPlaneAnswered": answered,
                  "hostCoresWhileOut": round(cores, 3), "newSocketServed": served, "ok": answered and cores < 0.5 and served}
        print(json.dumps(result))
        sys.exit(0 if result["ok"] else 1)
    finally:
        host.terminate()
        host.wait()


if __name__ == "__main__":
    main()
