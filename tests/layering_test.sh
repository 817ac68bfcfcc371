#!/usr/bin/env bash
# The headers' layers: no header includes one above it, and coll/ (the algorithms and
# their vocabulary) includes nothing of the fabric or the simulator, so a backend that
# runs on real hardware does not pull them in.
#   layering_test.sh INCLUDE_DIR
set -euo pipefail
root="$1/railcc"
layer() {
  case "$1" in
    config.hpp|units.hpp|error.hpp|input_file.hpp|utf8.hpp|log.hpp) echo 0 ;;
    bootstrap*) echo 1 ;;
    topology*) echo 1 ;;
    fabric*|hwloc*) echo 2 ;;
    sim*|formats*) echo 3 ;;
    coll*) echo 4 ;;
    cuda*) echo 6 ;;
    backend*|tune*|schedule*) echo 5 ;;
    comm*) echo 6 ;;
    mpi*|launch*|nccl*) echo 7 ;;
    railcc.hpp) echo 9 ;;
    *) echo "unknown header $1" >&2; exit 2 ;;
  esac
}
bad=0
while IFS= read -r file; do
  rel="${file#"$root"/}"
  mine=$(layer "$rel")
  dir="${rel%%/*}"
  while IFS= read -r inc; do
    [ -z "$inc" ] && continue
    theirs=$(layer "$inc")
    their_dir="${inc%%/*}"
    if [ "$theirs" -gt "$mine" ]; then
      echo "$rel includes railcc/$inc, a layer above it"; bad=1
    fi
    if [ "$dir" = coll ] && [ "$theirs" -ne 0 ] && [ "$their_dir" != coll ]; then
      echo "$rel includes railcc/$inc: coll/ depends on nothing but the base headers"; bad=1
    fi
  done < <(sed -n 's|^#include "railcc/\(.*\)"|\1|p' "$file")
done < <(find "$root" \( -name '*.hpp' -o -name '*.cuh' \) | sort)
[ "$bad" -eq 0 ] && echo "layering: every header includes only layers below it"
exit "$bad"
