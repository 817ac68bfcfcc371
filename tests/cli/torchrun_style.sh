#!/usr/bin/env bash
# Runs PROGRAM as torchrun starts a job: NP processes on this machine, each with RANK,
# WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR (loopback) and MASTER_PORT (a
# random free port; another is tried when rank 0 could not listen). Exits with the worst
# exit status of the ranks; each rank's output goes to this script's, prefixed by rank.
#   torchrun_style.sh NP PROGRAM [ARGS...]
set -uo pipefail
np="$1"
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The launchers' variables of whatever runs this are not the job's.
clean=(env -u OMPI_COMM_WORLD_RANK -u OMPI_COMM_WORLD_SIZE -u PMIX_RANK -u SLURM_PROCID
  -u SLURM_STEP_ID -u SLURM_STEPID -u GROUP_RANK -u RAILCC_BOOTSTRAP_ADDR)
. "$(dirname "$0")/ports.sh"
for attempt in 1 2 3 4 5; do
  port=$(random_store_port)
  pids=()
  for ((r = 0; r < np; r++)); do
    "${clean[@]}" RANK=$r WORLD_SIZE="$np" LOCAL_RANK=$r LOCAL_WORLD_SIZE="$np" \
      MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$@" >"$work/out.$r" 2>&1 &
    pids+=($!)
  done
  worst=0
  for ((r = 0; r < np; r++)); do
    wait "${pids[$r]}"
    rc=$?
    [ "$rc" -gt "$worst" ] && worst=$rc
  done
  grep -q "cannot listen" "$work/out.0" || break
done
for ((r = 0; r < np; r++)); do sed "s/^/[rank $r] /" "$work/out.$r"; done
exit "$worst"
