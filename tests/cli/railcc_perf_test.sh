#!/usr/bin/env bash
# railcc-perf as operators run it: under mpirun, the nccl-tests table with a model column
# and checked results; --json; every collective; and the errors it must give instead of
# running: a backend this build lacks, a bad size, an unknown transport. Then a
# torchrun-style start (no mpirun): the host backend over TCP; and TCP under mpirun.
#   railcc_perf_test.sh RAILCC_PERF MPIEXEC [MPIEXEC FLAGS...]
set -uo pipefail
perf="$1"
mpiexec="$2"
shift 2
mpi_flags=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
clean=(env -u RANK -u WORLD_SIZE -u LOCAL_RANK -u LOCAL_WORLD_SIZE -u MASTER_ADDR -u MASTER_PORT
  -u RAILCC_ALGO -u RAILCC_FABRIC -u RAILCC_TOPO_FILE -u RAILCC_RANKS_PER_HOST -u RAILCC_DEBUG)
expect() {  # expect DESCRIPTION FILE PATTERN
  if ! grep -qE -- "$3" "$2"; then
    echo "FAIL: $1: no '$3' in:"; cat "$2"; fail=1
  fi
}

# The table: 3 sizes, checked, with the model column filled in.
"${clean[@]}" "$mpiexec" -np 3 "${mpi_flags[@]}" "$perf" -B host -b 1K -e 64K -f 8 -n 3 -w 1 \
  >"$work/table" 2>&1
rc=$?
[ $rc -eq 0 ] || { echo "FAIL: table run exited $rc"; cat "$work/table"; fail=1; }
expect "header" "$work/table" '^# railcc-perf: all_reduce, host \(MPI\) backend, 3 ranks on 1 host of 3'
expect "columns" "$work/table" 'size +count +type +redop +root +time +algbw +busbw +#wrong +time +algbw +busbw +#wrong +model +algorithm'
rows=$(grep -cE '^ +[0-9]+ +[0-9]+ +float +sum +-1( +[0-9.]+){3} +0( +[0-9.]+){3} +0 +[0-9.]+ +[a-z+]+$' "$work/table")
[ "$rows" = 3 ] || { echo "FAIL: expected 3 checked rows, got $rows"; cat "$work/table"; fail=1; }
expect "summary" "$work/table" '^# Out of bounds values : 0 OK'
expect "average" "$work/table" '^# Avg bus bandwidth +: [0-9.e+-]+'

# Every collective, each checked; JSON on stdout.
for c in reduce_scatter all_gather broadcast reduce all_to_all; do
  "${clean[@]}" "$mpiexec" -np 2 "${mpi_flags[@]}" "$perf" --collective $c -b 4K -e 4K -n 2 -w 1 \
    -d int32 -o max -r 1 --json - >"$work/$c.json" 2>"$work/$c.err"
  rc=$?
  [ $rc -eq 0 ] || { echo "FAIL: $c exited $rc"; cat "$work/$c.json" "$work/$c.err"; fail=1; }
  python3 - "$work/$c.json" "$c" <<'PY' || fail=1
import json, sys
j = json.load(open(sys.argv[1]))
c = sys.argv[2]
assert j["collective"] == c, j["collective"]
assert j["wrong"] == 0, j
(row,) = j["rows"]
assert row["size"] == 4096, row
assert row["out_of_place"]["wrong"] == 0 and row["out_of_place"]["time_us"] > 0, row
assert (row["in_place"] is None) == (c == "all_to_all"), row
assert row["model_us"] > 0, row
PY
done

# Errors, each named, nothing run.
# The GPU backends where this machine has no GPU (or the build no CUDA or NCCL): named.
"${clean[@]}" "$mpiexec" -np 2 "${mpi_flags[@]}" "$perf" -B nccl >"$work/nccl" 2>&1
[ $? -eq 2 ] || { echo "FAIL: -B nccl did not exit 2"; cat "$work/nccl"; fail=1; }
expect "-B nccl" "$work/nccl" 'railcc-perf: error: (-B nccl: this railcc-perf was built without NCCL|NCCL transport: no GPU is visible to this process)'
"${clean[@]}" "$perf" -B cuda-local >"$work/local" 2>&1
[ $? -eq 2 ] || { echo "FAIL: -B cuda-local did not exit 2"; cat "$work/local"; fail=1; }
expect "-B cuda-local" "$work/local" 'railcc-perf: error: -B cuda-local: (this railcc-perf was built without CUDA|no GPU is visible to this process)'
"${clean[@]}" "$perf" -B gpu >"$work/gpu" 2>&1
[ $? -eq 2 ] || { echo "FAIL: -B gpu did not exit 2"; fail=1; }
expect "-B gpu" "$work/gpu" 'railcc-perf: error: -B gpu: host, nccl or cuda-local'
"${clean[@]}" "$mpiexec" -np 2 "${mpi_flags[@]}" "$perf" -b 1X >"$work/size" 2>&1
[ $? -eq 2 ] || { echo "FAIL: -b 1X did not exit 2"; fail=1; }
expect "-b 1X" "$work/size" "unknown suffix 'X'"
# torchrun-style (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; no mpirun): the host
# backend over TCP, checked, with the same table.
"${clean[@]}" bash "$(dirname "$0")/torchrun_style.sh" 3 "$perf" -B host -b 1K -e 64K -f 8 -n 3 \
  -w 1 >"$work/torch" 2>&1
rc=$?
[ $rc -eq 0 ] || { echo "FAIL: torchrun-style run exited $rc"; cat "$work/torch"; fail=1; }
expect "torchrun header" "$work/torch" '^\[rank 0\] # railcc-perf: all_reduce, host \(TCP\) backend, 3 ranks on 1 host of 3'
rows=$(grep -cE '^\[rank 0\] +[0-9]+ +[0-9]+ +float +sum +-1( +[0-9.]+){3} +0( +[0-9.]+){3} +0 +[0-9.]+ +[a-z+]+$' "$work/torch")
[ "$rows" = 3 ] || { echo "FAIL: torchrun-style: expected 3 checked rows, got $rows"; cat "$work/torch"; fail=1; }
expect "torchrun summary" "$work/torch" '^\[rank 0\] # Out of bounds values : 0 OK'
# Under mpirun, --transport tcp needs a store address; given one, it runs over TCP too.
# Another port is tried when rank 0 could not listen on the one drawn.
. "$(dirname "$0")/ports.sh"
for attempt in 1 2 3 4 5; do
  "${clean[@]}" RAILCC_BOOTSTRAP_ADDR=127.0.0.1:$(random_store_port) "$mpiexec" -np 2 \
    "${mpi_flags[@]}" -x RAILCC_BOOTSTRAP_ADDR "$perf" --transport tcp -b 4K -e 4K -n 2 -w 1 \
    >"$work/mpitcp" 2>&1
  rc=$?
  grep -q "cannot listen" "$work/mpitcp" || break
done
[ $rc -eq 0 ] || { echo "FAIL: --transport tcp under mpirun exited $rc"; cat "$work/mpitcp"; fail=1; }
expect "tcp under mpirun" "$work/mpitcp" '^# railcc-perf: all_reduce, host \(TCP\) backend, 2 ranks'
# torchrun-style with --transport mpi: each process sees an MPI job of one, and says so.
for r in 0 1; do
  "${clean[@]}" RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 \
    MASTER_PORT=29555 "$perf" --transport mpi -b 1K -e 1K >"$work/torch.$r" 2>&1 &
done
wait
expect "torchrun with MPI" "$work/torch.0" 'launched by torchrun: rank 0 of 2.*MPI sees a job of 1: this is the host backend over MPI, so start the job with mpirun or srun, or use tcp_communicator \(railcc-perf: --transport tcp\)'
"${clean[@]}" "$perf" --transport udp >"$work/udp" 2>&1
[ $? -eq 2 ] || { echo "FAIL: --transport udp did not exit 2"; fail=1; }
expect "--transport udp" "$work/udp" 'railcc-perf: error: --transport udp: auto, mpi or tcp'
[ $fail -eq 0 ] && echo "railcc-perf: all checks passed"
exit $fail
