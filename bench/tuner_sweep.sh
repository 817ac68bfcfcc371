#!/usr/bin/env bash
# How good the tuner's picks are: for each fabric, GPU count and size, railcc-sim simulates
# every candidate algorithm (--explain simulated) and this compares the tuner's pick, made
# on predicted time alone, with the fastest candidate as simulated. A case is a hit when
# the pick's simulated time is within 5% of the best's.
#   bench/tuner_sweep.sh [BUILD_DIR] [FABRICS] [GPU_COUNTS] [MIN] [MAX] [FACTOR] [EXTRA ARGS...]
#   (defaults: build "colossus llama3 hpn" "8 64 512 4096" 1K 8G 8)
# Prints one line per case and a summary with the worst misses; exits 0 whatever it finds
# (it measures, it does not judge).
set -euo pipefail
build="${1:-build}"
fabrics="${2:-colossus llama3 hpn}"
counts="${3:-8 64 512 4096}"
min="${4:-1K}"
max="${5:-8G}"
factor="${6:-8}"
shift $(($# < 6 ? $# : 6))
sim="$build/tools/railcc-sim"
[ -x "$sim" ] || { echo "build $sim first (cmake --build $build --target railcc-sim)" >&2; exit 1; }

cases=$(mktemp)
trap 'rm -f "$cases"' EXIT
printf '# %-9s %8s %11s  %-26s %12s  %-26s %12s %7s\n' fabric gpus bytes pick "pick (us)" \
  best "best (us)" ratio
for fabric in $fabrics; do
  for gpus in $counts; do
    start=$(date +%s.%N)
    "$sim" --fabric "$fabric" --gpus "$gpus" -b "$min" -e "$max" -f "$factor" \
      --explain simulated "$@" 2>/dev/null |
      awk -v fabric="$fabric" -v gpus="$gpus" '
        function flush() {
          if (size == "" || best == "") return
          printf "  %-9s %8s %11s  %-26s %12.2f  %-26s %12.2f %7.3f\n", fabric, gpus, size,
            pick, sim[pick], best, sim[best], sim[pick] / sim[best]
        }
        /^# explain [0-9]+ B: tuner picks / {
          flush()
          size = $3; pick = $7; sub(/,$/, "", pick); best = ""; delete sim
          next
        }
        /^#   [a-z_+]+ +predicted .* simulated / {
          name = $2
          for (i = 3; i < NF; i++) if ($i == "simulated") t = $(i + 1)
          sim[name] = t
          if (best == "" || t < sim[best]) best = name
        }
        END { flush() }' | tee -a "$cases"
    end=$(date +%s.%N)
    awk -v f="$fabric" -v g="$gpus" -v s="$start" -v e="$end" \
      'BEGIN { printf "# %s, %s GPUs: %.1f s\n", f, g, e - s }'
  done
done
awk '
  { n++; if ($8 <= 1.05) hit++; line[n] = $0; ratio[n] = $8 }
  END {
    if (n == 0) { print "# no cases"; exit }
    printf "# %d cases; the pick within 5%% of the best simulated candidate in %d (%.1f%%)\n",
      n, hit, 100 * hit / n
    # The worst misses, largest ratio first (a selection sort of at most five).
    for (k = 1; k <= 5 && k <= n; k++) {
      w = 0
      for (i = 1; i <= n; i++) if (!(i in used) && (w == 0 || ratio[i] > ratio[w])) w = i
      if (ratio[w] <= 1.05) break
      used[w] = 1
      if (k == 1) print "# worst misses:"
      print "#" line[w]
    }
  }' "$cases"
