"""Resume's cost per repeat (Benchmarks/resume.sh): each repeat runs plain, field and resume one
after another, so their ratio within a repeat is taken before the median. The medians of each
mode alone can mislead on this machine, which drifts between a fast and a slow phase (the same
16 KiB run: 6.0 or 8.0 µs of host CPU a message): a mode whose runs fell more often in the
slow phase looks slower. Usage: python3 paired.py results/resume-runs.jsonl"""
import json
import statistics
import sys
from collections import defaultdict

THROUGHPUT = {"bandwidth": "megabytesPerSecond", "chunked-1MiB": "megabytesPerSecond"}


def main(path):
    runs = defaultdict(lambda: defaultdict(list))
    for line in open(path):
        run = json.loads(line)
        mode, workload = run["label"].split("/", 1)
        # A failed run keeps its place (None), so the repeats stay paired.
        runs[workload][mode.removeprefix("conduit-")].append(None if run.get("failed") else run)
    print("| workload | repeats | field: throughput, host CPU | resume: throughput, host CPU |")
    print("|---|---|---|---|")
    for workload, modes in runs.items():
        key = THROUGHPUT.get(workload, "messagesPerSecond")
        repeats = [pair for pair in zip(modes["plain"], modes["field"], modes["resume"]) if None not in pair]
        cells = []
        for column in (1, 2):  # field, resume
            def paired(figure):
                return statistics.median(pair[column][figure] / pair[0][figure] - 1 for pair in repeats)
            cells.append(f"{paired(key):+.1%}, {paired('serverCPUMicrosecondsPerMessage'):+.1%}")
        print(f"| {workload} | {len(repeats)} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/resume-runs.jsonl")
