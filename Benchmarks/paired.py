"""Each mode against plain, per repeat (Benchmarks/resume.sh, tool-speed.sh): every repeat runs
plain and the other modes one after another, so their ratio within a repeat is taken before the
median. The medians of each mode alone can mislead on this machine, which drifts between a fast
and a slow phase (the same 16 KiB run: 6.0 or 8.0 µs of host CPU a message): a mode whose runs
fell more often in the slow phase looks slower. Labels are "conduit-MODE/WORKLOAD".
Usage: python3 paired.py results/resume-runs-<time>.jsonl"""
import json
import statistics
import sys
from collections import defaultdict

THROUGHPUT = {"bandwidth": "megabytesPerSecond", "chunked-1MiB": "megabytesPerSecond"}


def host_cpu(run):
    return run["serverCPUMicrosecondsPerMessage"]


def tool_cpu(run):
    return run["clientCores"] / run["messagesPerSecond"] * 1e6


def main(path):
    runs = defaultdict(lambda: defaultdict(list))
    for line in open(path):
        run = json.loads(line)
        mode, workload = run["label"].split("/", 1)
        # A failed run keeps its place (None), so the repeats stay paired.
        runs[workload][mode.removeprefix("conduit-")].append(None if run.get("failed") else run)
    print("| workload | mode against plain | repeats | throughput | host CPU a message | tool CPU a message |")
    print("|---|---|---|---|---|---|")
    for workload, modes in runs.items():
        key = THROUGHPUT.get(workload, "messagesPerSecond")
        for mode, mine in modes.items():
            if mode == "plain":
                continue
            pairs = [(plain, other) for plain, other in zip(modes["plain"], mine) if plain and other]

            def paired(figure):
                return f"{statistics.median(figure(other) / figure(plain) - 1 for plain, other in pairs):+.1%}"

            print(f"| {workload} | {mode} | {len(pairs)} | {paired(lambda run: run[key])} | {paired(host_cpu)} | {paired(tool_cpu)} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
