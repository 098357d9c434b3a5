# Sourced by the benchmark scripts (after setting $here, the Benchmarks folder, and $repo) and by
# scripts/soak.sh for its release build (`host_build`, which needs $repo alone).

# Release builds link the Swift runtime statically, as README.md advises for production: its
# calls (reference counting, the exclusivity checks and their thread-local access set) are then
# direct, which took 6–10 % of the host's CPU a message off the routed echo, with or without
# resume (BENCHMARKS.md, 2026-12-02). The bare SwiftNIO peer is built the same way. The host has its
# own scratch path, the tools theirs (`swift package benchmark` keeps .build, without the flag).
release_build() { swift build -c release --static-swift-stdlib "$@"; }
host_build() { release_build --package-path "$repo" --scratch-path "$repo/.build-release" "$@"; }
tools_build() { release_build --package-path "$here" --scratch-path "$here/.build-static" "$@"; }

# Builds the load tool; sets $bin, where it is (and nio-echo, once built).
build_load_tool() {
  tools_build --product conduit-bench >&2
  bin=$(tools_build --show-bin-path)
}

# Builds the release host and the load tools; sets $conduit and $bin (conduit-bench, nio-echo).
build_tools() {
  host_build --product conduit >&2
  build_load_tool
  tools_build --product nio-echo >&2
  conduit=$(host_build --show-bin-path)/conduit
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
