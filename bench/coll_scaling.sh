#!/usr/bin/env bash
# Prints the collectives' scaling figures on the colossus preset (steps mode), one
# process per case so each peak-memory figure is that case's own.
#   bench/coll_scaling.sh [BUILD_DIR]        (default: build)
set -euo pipefail
build="${1:-build}"
bench="$build/bench/railcc_bench_coll"
[ -x "$bench" ] || { echo "build $bench first (cmake --build $build --target railcc_bench_coll)" >&2; exit 1; }

printf '%-22s %9s %9s %9s %11s %11s %8s %6s\n' case gpus wall_s peak_MB sim_ms busbw_GBps steps evals
run_case() {
  local name=$1 gpus=$2 inter=$3 label=$4
  out=$("$bench" --benchmark_filter="^$name/$gpus/$inter/" --benchmark_format=json 2>/dev/null)
  field() { printf '%s\n' "$out" | grep -m1 "\"$1\"" | sed 's/.*: *//; s/,$//'; }
  printf '%-22s %9s %9.2f %9.0f %11.2f %11.1f %8.0f %6.0f\n' "$label" "$gpus" "$(field wall_s)" \
    "$(field peak_rss_MB)" "$(field sim_ms)" "$(field busbw_GBps)" "$(field steps)" "$(field evaluations)"
}
for gpus in 8192 100000 200000 1000000; do
  run_case Hierarchical "$gpus" 1 "hierarchical+rabenseif"
  run_case Hierarchical "$gpus" 0 "hierarchical+ring"
done
for gpus in 8192 100000; do run_case FlatRing "$gpus" 0 "flat ring"; done

# One rank's projection (what a real backend runs) of the hierarchical all-reduce with
# Rabenseifner across hosts, built from the algorithm without holding the whole plan;
# then with levels, as the NCCL transport projects (each case in a process of its own,
# so the peak memory is its own).
printf '\n%-22s %9s %9s %9s %9s %11s %11s %11s\n' case gpus proj_s peak_MB fabric_MB program_KB rank_steps plan_ops
for levels in 0 1; do
  for gpus in 8192 100000; do
    out=$("$bench" --benchmark_filter="^ProjectOneRank/$gpus/$levels/" --benchmark_format=json 2>/dev/null)
    field() { printf '%s\n' "$out" | grep -m1 "\"$1\"" | sed 's/.*: *//; s/,$//'; }
    name="project one rank"
    [ "$levels" = 1 ] && name="  ... with levels"
    printf '%-22s %9s %9.2f %9.0f %9.0f %11.1f %11.0f %11.0f\n' "$name" "$gpus" \
      "$(field project_s)" "$(field peak_rss_MB)" "$(field fabric_MB)" "$(field program_KB)" \
      "$(field rank_steps)" "$(field plan_ops)"
  done
done
