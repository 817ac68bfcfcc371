#!/usr/bin/env bash
# railcc's host backend against Open MPI's own MPI_Allreduce on this machine: both timed
# the same way (railcc-perf; bench/mpi_allreduce_perf.cpp), float sum, out of place, and
# the ratio of their bus bandwidths per size (railcc / MPI; the goal is 0.8 or more from
# 1 MiB up).
#   bench/host_vs_mpi.sh [BUILD_DIR] [RANKS] [-- extra railcc-perf flags]
set -euo pipefail
build="${1:-build}"
ranks="${2:-4}"
shift $(( $# > 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift
perf="$build/tools/railcc-perf"
mpi="$build/bench/railcc_mpi_allreduce_perf"
for b in "$perf" "$mpi"; do
  [ -x "$b" ] || { echo "build $b first" >&2; exit 1; }
done
flags=(-np "$ranks")
if mpirun --version 2>/dev/null | grep -q "Open MPI\|OpenRTE"; then
  flags+=(--oversubscribe)
  [ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
fi
sizes=(-b 8 -e 256M -f 4 -n 20 -w 5)
railcc_out=$(mpirun "${flags[@]}" "$perf" -B host "${sizes[@]}" -c 0 --json - "$@")
mpi_out=$(mpirun "${flags[@]}" "$mpi" "${sizes[@]}")
printf '%12s %12s %12s %12s %12s %7s  %s\n' bytes railcc_us mpi_us railcc_GBps mpi_GBps ratio railcc_algorithm
python3 - "$railcc_out" "$mpi_out" <<'PY'
import json, sys
railcc = json.loads(sys.argv[1])
mpi = {}
for line in sys.argv[2].splitlines():
    if line.startswith('#') or not line.strip():
        continue
    size, us, busbw = line.split()
    mpi[int(size)] = (float(us), float(busbw))
for row in railcc["rows"]:
    t = row["out_of_place"]
    m = mpi.get(row["size"])
    if m is None:
        continue
    ratio = t["busbw_GBps"] / m[1] if m[1] > 0 else float("nan")
    print(f'{row["size"]:12d} {t["time_us"]:12.2f} {m[0]:12.2f} {t["busbw_GBps"]:12.3f} '
          f'{m[1]:12.3f} {ratio:7.2f}  {row["algorithm"]}')
PY
