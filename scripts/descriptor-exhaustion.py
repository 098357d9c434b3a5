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
import asyncio
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak import KEY, ipc_post, open_fds, raw_socket  # noqa: E402


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_answered(ipc_port):
    """Whether the IPC status route answers (within ipc_post's 30 s)."""
    try:
        return ipc_post(ipc_port, "/internal.conduit.status")[0] == 200
    except OSError:
        return False


async def exhaust(pid, port, ipc_port, limit):
    sockets = []
    while open_fds(pid) < limit:
        sockets.append(await asyncio.wait_for(raw_socket(port, f"fd{len(sockets)}"), 5))
    answered = await asyncio.to_thread(status_answered, ipc_port)
    waiting = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    await asyncio.sleep(0.5)
    start, started = cpu_seconds(pid), time.time()
    await asyncio.sleep(3)
    cores = (cpu_seconds(pid) - start) / (time.time() - started)
    held = open_fds(pid)
    for _, writer in sockets + waiting:
        writer.close()
    await asyncio.sleep(1)
    try:
        _, writer = await asyncio.wait_for(raw_socket(port, "fd-again"), 5)
        writer.close()
        served = True
    except (OSError, RuntimeError, asyncio.TimeoutError):
        served = False
    return {"limit": limit, "hostDescriptors": held, "sockets": len(sockets), "controlPlaneAnswered": answered,
            "hostCoresWhileOut": round(cores, 3), "newSocketServed": served, "ok": answered and cores < 0.5 and served}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("conduit")
    parser.add_argument("--limit", type=int, default=64)
    arguments = parser.parse_args()
    host = subprocess.Popen(["prlimit", f"--nofile={arguments.limit}:{arguments.limit}", arguments.conduit, "serve"],
                            env=dict(os.environ, CONDUIT_SHARED_KEY=KEY), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        announce = json.loads(host.stdout.readline())
        result = asyncio.run(exhaust(announce["pid"], announce["port"], announce["ipcPort"], arguments.limit))
        print(json.dumps(result))
        sys.exit(0 if result["ok"] else 1)
    finally:
        host.terminate()
        host.wait()


if __name__ == "__main__":
    main()
