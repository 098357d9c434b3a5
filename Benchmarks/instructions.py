"""Reads instructions.sh's callgrind dumps: instructions per message of each mode (one JSON
line), or with --table the totals and the functions whose own instructions resume changes most."""
import glob, json, re, subprocess, sys

workdir, commit, top = sys.argv[1], sys.argv[2], int(sys.argv[3])
# The payload size of the echo: rows of other sizes than 64 say theirs.
size = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4].isdigit() else 64
modes = ["plain", "field", "resume"]


def dump(mode):
    # callgrind names a dump file after its pid and sequence; the trigger name is inside.
    for path in sorted(glob.glob(f"{workdir}/callgrind.out.*")):
        with open(path, errors="replace") as file:
            if f"desc: Trigger: dump {mode}\n" in file.read(4096):
                return path
    raise SystemExit(f"no callgrind dump for {mode}")


def per_function(mode):
    messages = json.load(open(f"{workdir}/{mode}.json"))["messages"]
    out = subprocess.run(["callgrind_annotate", "--threshold=100", dump(mode)], capture_output=True, text=True, check=True).stdout
    total, functions = 0, {}
    for line in out.splitlines():
        match = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(.*)", line)
        if not match:
            continue
        count = int(match.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total = count
        else:
            name = match.group(2).split(" [")[0].split(":", 1)[-1]
            functions[name] = functions.get(name, 0) + count / messages
    return messages, total / messages, functions


results = {mode: per_function(mode) for mode in modes}
if "--table" not in sys.argv:
    row = {"commit": commit, **{mode: {"messages": results[mode][0], "instructionsPerMessage": round(results[mode][1])} for mode in modes}}
    print(json.dumps(row if size == 64 else {**row, "size": size}))
    sys.exit()

plain = results["plain"][1]
for mode in modes:
    messages, per_message, _ = results[mode]
    print(f"{mode:7} {per_message:8.0f} instructions a message ({per_message / plain - 1:+.1%} against plain; {messages} messages)")
names = set().union(*(results[mode][2] for mode in modes))
rows = sorted(names, key=lambda name: -abs(results["resume"][2].get(name, 0) - results["plain"][2].get(name, 0)))[:top]
demangled = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(rows), capture_output=True, text=True).stdout.splitlines()
print(f"\n{'resume':>8} {'field':>8} {'plain':>8}  function (its own instructions a message; resume and field against plain)")
for name, readable in zip(rows, demangled):
    plain_count = results["plain"][2].get(name, 0)
    print(f"{results['resume'][2].get(name, 0) - plain_count:+8.0f} {results['field'][2].get(name, 0) - plain_count:+8.0f} {plain_count:8.0f}  {readable[:150]}")
