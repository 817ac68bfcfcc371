#!/usr/bin/env bash
# railcc_example_bootstrap_job as jobs start it: several processes with torchrun's
# variables, meeting at a store on loopback. A whole job; a rank that dies before the
# gather (the others must name it and exit within the timeout); a rank that never starts;
# a job with no store address.
#   bootstrap_job_test.sh EXAMPLE
set -uo pipefail
example="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
# The launchers' and railcc's own variables of whatever runs this test are not the job's.
clean=(env -u RANK -u WORLD_SIZE -u LOCAL_RANK -u LOCAL_WORLD_SIZE -u GROUP_RANK -u MASTER_ADDR
  -u MASTER_PORT -u OMPI_COMM_WORLD_RANK -u SLURM_PROCID -u SLURM_STEP_ID -u SLURM_STEPID
  -u RAILCC_BOOTSTRAP_ADDR -u RAILCC_BOOTSTRAP_TIMEOUT -u RAILCC_DEBUG)
check() {  # check DESCRIPTION COMMAND...
  if ! "${@:2}"; then echo "FAIL: $1"; fail=1; fi
}

. "$(dirname "$0")/ports.sh"

# Runs ranks RANKS of a job of SIZE on loopback, each with extra arguments ARGS; each
# rank's exit status in $work/status.R, its output in $work/out.R and $work/err.R. Picks
# another port when rank 0 could not listen on the one tried.
run_job() {  # run_job SIZE "RANKS" ARGS...
  local size=$1 ranks=$2
  shift 2
  for attempt in 1 2 3 4 5; do
    local port
    port=$(random_store_port)
    local pids=()
    for r in $ranks; do
      "${clean[@]}" RANK=$r WORLD_SIZE=$size LOCAL_RANK=$r LOCAL_WORLD_SIZE=$size MASTER_ADDR=127.0.0.1 \
        MASTER_PORT=$port RAILCC_BOOTSTRAP_TIMEOUT=${TIMEOUT:-10} RAILCC_DEBUG=${DEBUG:-WARN} \
        "$example" "$@" >"$work/out.$r" 2>"$work/err.$r" &
      pids+=($!)
    done
    local i=0
    for r in $ranks; do
      wait "${pids[$i]}"
      echo $? >"$work/status.$r"
      i=$((i + 1))
    done
    grep -q "cannot listen" "$work/err.0" 2>/dev/null || return 0
  done
}

# A whole job of four.
DEBUG=INFO run_job 4 "0 1 2 3"
for r in 0 1 2 3; do check "rank $r exits 0" [ "$(cat "$work/status.$r")" = 0 ]; done
check "rank 0 prints every rank" [ "$(grep -c '^rank [0-3]: ' "$work/out.0")" = 4 ]
check "the launcher is named" grep -q 'job of 4 (torchrun: rank 0 of 4, local rank 0 of 4)' "$work/out.0"
check "INFO logs the launcher" grep -q 'railcc INFO rank 2: launched by torchrun: rank 2 of 4' "$work/err.2"

# Rank 2 dies before the gather: the others name it, and do not wait for the timeout.
start=$(date +%s)
TIMEOUT=30 run_job 4 "0 1 2 3" --exit-before-gather 2
took=$(( $(date +%s) - start ))
check "the dying rank exits 4" [ "$(cat "$work/status.2")" = 4 ]
for r in 0 1 3; do
  check "rank $r exits 3" [ "$(cat "$work/status.$r")" = 3 ]
  check "rank $r names rank 2" grep -q 'rank 2 left the job' "$work/err.$r"
done
check "the others fail at once, not after the 30 s timeout (took ${took} s)" [ "$took" -lt 20 ]

# Rank 1 never starts: the others say so after the timeout.
start=$(date +%s)
TIMEOUT=2 run_job 3 "0 2"
took=$(( $(date +%s) - start ))
for r in 0 2; do
  check "rank $r exits 3" [ "$(cat "$work/status.$r")" = 3 ]
  check "rank $r names rank 1" grep -q 'ranks 1 of 3 did not join the store at 127.0.0.1' "$work/err.$r"
done
check "they fail within the timeout (took ${took} s)" [ "$took" -lt 15 ]

# torchrun-style ranks with no address to meet at.
"${clean[@]}" RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 LOCAL_WORLD_SIZE=2 "$example" >"$work/out" 2>"$work/err"
check "no address: exit 2" [ $? = 2 ]
check "no address: the variables to set are named" grep -q 'set RAILCC_BOOTSTRAP_ADDR=HOST:PORT' "$work/err"

# A job of one needs no store.
"${clean[@]}" "$example" >"$work/out" 2>"$work/err"
check "a job of one: exit 0" [ $? = 0 ]
check "a job of one: one line" grep -q '^rank 0: ' "$work/out"

[ "$fail" -eq 0 ] && echo "bootstrap job: all checks passed"
exit "$fail"
