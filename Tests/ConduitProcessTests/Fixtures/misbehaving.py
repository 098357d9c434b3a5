#!/usr/bin/env python3
"""A child that misbehaves on request, for the supervision tests (PYTHONPATH: handlers/).

    fixture.pid      replies with its process id
    fixture.crash    exits at once, without replying
    fixture.killed   says why on stderr, then is killed by SIGKILL, without replying
    fixture.hang     never answers anything again
    fixture.slow     replies after as many seconds as the payload says
    fixture.garbage  writes unframed text to stdout (a stray print), without replying
    fixture.stderr   prints the payload to stderr, then replies
    fixture.env      replies with the value of the environment variable named in the payload
    fixture.parts    writes empty parts (`more: true`) of a reply that never ends
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
        elif action == "slow":
            time.sleep(float(request.payload.decode()))
            child.reply(request)
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
        elif action == "env":
            child.reply(request, os.environ.get(request.payload.decode(), "").encode())
        else:
            child.fail(request, "NotFoundError", f"no fixture action '{action}'")


if __name__ == "__main__":
    main()
