# Sourced by the benchmark scripts (after setting $here, the Benchmarks folder, and $repo).

# Builds the release host and the load tools; sets $conduit and $bin (conduit-bench, nio-echo).
build_tools() {
  swift build -c release --package-path "$repo" --scratch-path "$repo/.build-release" --product conduit >&2
  swift build -c release --package-path "$here" --product conduit-bench >&2
  swift build -c release --package-path "$here" --product nio-echo >&2
  bin=$here/.build/release
  conduit=$(swift build -c release --package-path "$repo" --scratch-path "$repo/.build-release" --show-bin-path)/conduit
}

# The port a server announced on its first line ({"port":N}) in FILE, waiting up to 10 s.
announced_port() {
  for _ in $(seq 200); do grep -q '"port"' "$1" && break; sleep 0.05; done
  sed -n 's/.*"port": *\([0-9]*\).*/\1/p' "$1"
}

# Prints ITEMS rotated left by BY places (BY taken modulo their count): each takes each place in
# turn over the repeats, since a run's place in a repeat is worth a few percent on this machine
# (BENCHMARKS.md, "Which runs first"). Usage: rotated BY ITEMS...
rotated() {
  local by=$1; shift
  local items=("$@"); by=$((by % ${#items[@]}))
  echo "${items[@]:$by}" "${items[@]:0:$by}"
}
