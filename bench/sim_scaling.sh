#!/usr/bin/env bash
# Prints the simulator's scaling curve on the colossus preset, one process per case so
# each peak-memory figure is that case's own.
#   bench/sim_scaling.sh [BUILD_DIR]        (default: build)
set -euo pipefail
build="${1:-build}"
bench="$build/bench/railcc_bench_sim"
[ -x "$bench" ] || { echo "build $bench first (cmake --build $build --target railcc_bench_sim)" >&2; exit 1; }

printf '%-13s %9s %10s %9s %8s %11s %9s %8s\n' case gpus links wall_s build_s peak_MB sim_us eff
for name in Permutation RailExchange; do
  for gpus in 8192 100000 200000 1000000; do
    for routing in 0 1; do
      [ "$name" = RailExchange ] && [ "$routing" = 1 ] && continue
      out=$("$bench" --benchmark_filter="^$name/$gpus/$routing/" --benchmark_format=json 2>/dev/null)
      field() { printf '%s\n' "$out" | grep -m1 "\"$1\"" | sed 's/.*: *//; s/,$//'; }
      label="$name"; [ "$name" = Permutation ] && label="perm-$([ "$routing" = 1 ] && echo spray || echo ecmp)"
      printf '%-13s %9s %10.0f %9.2f %8.2f %11.0f %9.1f %8.3f\n' "$label" "$gpus" "$(field links)" \
        "$(field wall_s)" "$(field build_s)" "$(field peak_rss_MB)" "$(field sim_us)" "$(field efficiency)"
    done
  done
done
