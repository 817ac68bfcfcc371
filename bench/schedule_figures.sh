#!/usr/bin/env bash
# Prints what scheduling changes: all-reduce on a fabric with ECMP unscheduled, ECMP with
# each step's QPs chosen (--schedule on) and ideal packet spraying, the tuner's algorithm,
# one QP per connection, each size's time and its efficiency against the bandwidth bound.
#   bench/schedule_figures.sh [BUILD_DIR] [FABRIC] [GPUS] [MIN] [MAX] [EXTRA railcc-sim ARGS...]
#   (defaults: build colossus 100000 256M 8G)
# Each configuration is one railcc-sim sweep; its wall time is printed with it.
set -euo pipefail
build="${1:-build}"
fabric="${2:-colossus}"
gpus="${3:-100000}"
min="${4:-256M}"
max="${5:-8G}"
shift $(($# < 5 ? $# : 5))
sim="$build/tools/railcc-sim"
[ -x "$sim" ] || { echo "build $sim first (cmake --build $build --target railcc-sim)" >&2; exit 1; }

declare -A time eff algo wall
sizes=()
for config in "ecmp off" "ecmp on" "spray off"; do
  set -- $config "$@"
  routing=$1 schedule=$2
  shift 2
  out=$("$sim" --fabric "$fabric" --gpus "$gpus" -b "$min" -e "$max" -f 2 \
    --routing "$routing" --schedule "$schedule" "$@")
  key="$routing/$schedule"
  wall[$key]=$(printf '%s\n' "$out" | sed -n 's/^# [0-9]* sizes simulated in \(.*\) s$/\1/p')
  while read -r size t a e; do
    time[$key/$size]=$t
    algo[$key/$size]=$a
    eff[$key/$size]=$e
    [ "$key" = ecmp/off ] && sizes+=("$size")
  done < <(printf '%s\n' "$out" | awk '!/^#/ && NF >= 11 { print $1, $6, $10, $11 }')
  qps=$(printf '%s\n' "$out" | grep '^# QPs chosen' || true)
  [ -n "$qps" ] && echo "${qps#\# }"
done

echo "# all_reduce on $fabric, $gpus GPUs; time in us (efficiency against the bound)"
printf '%12s  %-26s %22s %22s %22s\n' size algorithm "ecmp" "ecmp, QPs chosen" "spray"
for s in "${sizes[@]}"; do
  printf '%12s  %-26s' "$s" "${algo[ecmp/on/$s]}"
  for key in ecmp/off ecmp/on spray/off; do
    printf ' %14s (%5s)' "${time[$key/$s]}" "${eff[$key/$s]}"
  done
  printf '\n'
done
printf '%12s  %-26s %22s %22s %22s\n' "wall (s)" "" "${wall[ecmp/off]}" "${wall[ecmp/on]}" \
  "${wall[spray/off]}"
