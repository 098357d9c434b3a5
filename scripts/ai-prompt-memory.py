"""What AI streams' prompts may cost the host's memory (docs/handlers/ai.md). Starts REQUESTS
streams over IPC, 8 at a time, each with a prompt of 16 MiB (an IPC body's most by default),
paced at a token a second so they run on after their requests time out (1 s: a stream gets no
reply), then reads the host's RSS. Each stream holds its request's bytes of the host's budget
until it ends, so past the budget's share for running requests new ones are refused.

Usage: python3 scripts/ai-prompt-memory.py CONDUIT_BINARY [--requests N]
Prints one JSON line: the answers by status ("reset": refused while the body was sent) and the
host's RSS before and after.
"""
import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak import KEY, hosted, rss_kib  # noqa: E402

ROUTES = "routes:\n  - route: ai.*\n    handler: ai\n    options: {backend: builtin, tokensPerSecond: 1, maxTokens: 10000}\n"


def generate(ipc_port, index, body, answers):
    connection = http.client.HTTPConnection("127.0.0.1", ipc_port, timeout=30)
    try:
        connection.request("POST", f"/ai.chat.generate?id=prompts&token=p{index}&key={KEY}", body=body)
        answers[index] = connection.getresponse().status
    except OSError:
        answers[index] = "reset"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("conduit")
    parser.add_argument("--requests", type=int, default=64)
    arguments = parser.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as config:
        config.write(ROUTES)
        config.flush()
        with hosted(arguments.conduit, config=config.name, CONDUIT_IPC_REPLY_TIMEOUT_SECONDS="1") as (pid, _, ipc_port):
            before = rss_kib(pid)
            body = b"a" * (16 << 20)
            answers = {}
            for start in range(0, arguments.requests, 8):
                batch = [threading.Thread(target=generate, args=(ipc_port, index, body, answers))
                         for index in range(start, min(arguments.requests, start + 8))]
                for thread in batch:
                    thread.start()
                for thread in batch:
                    thread.join()
            time.sleep(2)
            counts = {}
            for answer in answers.values():
                counts[str(answer)] = counts.get(str(answer), 0) + 1
            print(json.dumps({"requests": arguments.requests, "answers": counts,
                              "rssBeforeMiB": before // 1024, "rssAfterMiB": rss_kib(pid) // 1024}))


if __name__ == "__main__":
    main()
