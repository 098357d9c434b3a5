#!/usr/bin/env python3
"""A child that misbehaves on request, for the supervision tests (PYTHONPATH: handlers/).

    fixture.pid      replies with its process id
    fixture.crash    exits at once, without replying
    fixture.killed   says why on stderr, then is killed by SIGKILL, without replying
    fixture.hang     never answers anything again
    fixture.slow     replies after as many seconds as the payload says
    fixture.marked   creates the file the header `mark` names, then acts as fixture.slow
    fixture.last     replies with 200,000 bytes, then exits at once (status 0)
    fixture.garbage  writes unframed text to stdout (a stray print), without replying
    fixture.stderr   prints the payload to stderr, then replies
    fixture.env      replies with the value of the environment variable named in the payload
    fixture.parts    writes empty parts (`more: true`) of a reply that never ends
    fixture.daemon   starts a daemon (its own session, stdio on /dev/null) that sleeps a
                     minute, and replies with its process id
    fixture.sigmask  replies with the signals it has blocked (SigBlk of /proc/self/status)
    fixture.chatty   writes as many stderr lines as the payload says, then replies
    fixture.closeout closes its stdout, then sleeps a minute
    fixture.interleave  writes the first part of its reply ("secret;"), then a push to the
                     client the payload names, then the reply's last part
"""
import os
import signal
import struct
import sys
import time

from conduit_child import Child, encode


def main():
    child = Child()
    for request in child.requests():
        action = request.route.rsplit(".", 1)[-1]
        if action == "pid":
            child.reply(request, str(os.getpid()).encode())
        elif action == "crash":
            os._exit(3)
        elif action == "killed":
            print("out of memory, giving up", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "hang":
            time.sleep(3600)
        elif action in ("slow", "marked"):
            if action == "marked":
                open(request.get("mark"), "w").close()
            time.sleep(float(request.payload.decode()))
            child.reply(request)
        elif action == "last":
            child.reply(request, b"z" * 200_000)
            sys.stdout.flush()
            os._exit(0)
        elif action == "garbage":
            os.write(1, b"oops, a stray print\n")
        elif action == "stderr":
            print(request.payload.decode(), file=sys.stderr, flush=True)
            child.reply(request)
        elif action == "parts":
            part = encode([("x-request", request.id), ("more", "true")])
            frame = struct.pack(">I", len(part)) + part
            try:
                while True:
                    os.write(1, frame * 4096)
            except BrokenPipeError:
                return
        elif action == "chatty":
            sys.stderr.write("".join(f"line {n}\n" for n in range(int(request.payload.decode()))))
            sys.stderr.flush()
            child.reply(request)
        elif action == "closeout":
            os.close(1)
            time.sleep(60)
        elif action == "interleave":
            child.send([("x-request", request.id), ("more", "true")], b"secret;")
            child.push(request.payload.decode(), [("route", "fixture.news")], b"hello")
            child.reply(request, b"rest")
        elif action == "sized":
            child.reply(request, b"x" * int(request.payload.decode()))
        elif action == "worker":
            # A worker in the child's process group, keeping its stdout, as a forking server's.
            worker = os.fork()
            if worker == 0:
                time.sleep(60)
                os._exit(0)
            child.reply(request, str(worker).encode())
        elif action == "daemon":
            daemon = os.fork()
            if daemon == 0:
                os.setsid()
                null = os.open(os.devnull, os.O_RDWR)
                for descriptor in (0, 1, 2):
                    os.dup2(null, descriptor)
                time.sleep(60)
                os._exit(0)
            child.reply(request, str(daemon).encode())
        elif action == "sigmask":
            with open("/proc/self/status") as status:
                blocked = next(line.split()[1] for line in status if line.startswith("SigBlk:"))
            child.reply(request, blocked.encode())
        elif action == "env":
            child.reply(request, os.environ.get(request.payload.decode(), "").encode())
        else:
            child.fail(request, "NotFoundError", f"no fixture action '{action}'")


if __name__ == "__main__":
    main()
