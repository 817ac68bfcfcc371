#!/usr/bin/env bash
# railcc-topo as an operator uses it: matrix, formats, health check and exit codes.
set -u
topo_binary="$1"
data="$2"
have_hwloc="$3"
fails=0
# Under ASan the build passes RAILCC_TOPO_PRELOAD (see tests/CMakeLists.txt).
topo() { LD_PRELOAD="${RAILCC_TOPO_PRELOAD:-${LD_PRELOAD:-}}" "$topo_binary" "$@"; }
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

ibm="$data/ibmcloud-gx3d-8xh100-nccl-topo.xml"

out=$(topo --nccl-xml "$ibm" 2>/dev/null); rc=$?
[ $rc -eq 0 ] && pass "matrix exits 0" || fail "matrix exit status $rc"
printf '%s\n' "$out" | grep -q $'^GPU0\t X \tNV18' && pass "matrix row GPU0" || fail "matrix row GPU0"
# Each GPU row has exactly one PIX among the NIC columns (fields 10-17).
pix_rows=$(printf '%s\n' "$out" | awk -F'\t' '/^GPU[0-9]/ { n = 0; for (i = 10; i <= 17; i++) if ($i == "PIX") n++; if (n == 1) ok++ } END { print ok + 0 }')
[ "$pix_rows" -eq 8 ] && pass "8 GPUs with exactly one NIC at PIX" || fail "GPUs with one PIX NIC: $pix_rows"
printf '%s\n' "$out" | grep -q '^  NIC0: mlx5_0$' && pass "NIC legend" || fail "NIC legend"

out=$(topo --nccl-xml "$ibm" --check 2>/dev/null); rc=$?
[ $rc -eq 1 ] && pass "--check exits 1 on findings" || fail "--check exit status $rc"
n=$(printf '%s\n' "$out" | grep -c '\[pcie-link\].*2.5 GT/s')
[ "$n" -eq 8 ] && pass "--check warns about the 8 VM bridges at 2.5 GT/s x1" || fail "bridge warnings: $n"
printf '%s\n' "$out" | grep -q '0000:a1:00.0' && pass "findings name bus ids" || fail "bus id missing"

out=$(topo --nccl-xml "$data/azure-ndv5-topo.xml" --check 2>/dev/null); rc=$?
[ $rc -eq 0 ] && pass "healthy node: --check exits 0" || fail "ndv5 --check exit status $rc"
printf '%s\n' "$out" | grep -q 'no findings' && pass "healthy node: no findings" || fail "ndv5 findings"

out=$(topo --nccl-xml "$ibm" --format json 2>/dev/null)
printf '%s\n' "$out" | grep -q '"schema": "railcc.node_topology.v1"' && pass "json" || fail "json"

tmp=$(mktemp -d)
topo --nccl-xml "$ibm" --format nccl-xml -o "$tmp/out.xml" 2>/dev/null
a=$(topo --nccl-xml "$ibm" 2>/dev/null)
b=$(topo --nccl-xml "$tmp/out.xml" 2>/dev/null)
[ "$a" = "$b" ] && pass "nccl-xml export re-imports to the same matrix" || fail "nccl-xml round trip"

err=$(topo --nccl-xml "$data/azure-ncv4-graph.xml" 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && pass "graph file: exit 2" || fail "graph file exit status $rc"
printf '%s\n' "$err" | grep -q 'NCCL graph file' && pass "graph file message" || fail "graph file message: $err"

printf '<system version="1"><cpu numaid="0">' > "$tmp/trunc.xml"
err=$(topo --nccl-xml "$tmp/trunc.xml" 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && printf '%s' "$err" | grep -q 'trunc.xml:1: malformed XML' && pass "truncated file" || fail "truncated: $rc $err"

topo --nccl-xml /nonexistent.xml >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] && pass "missing file: exit 2" || fail "missing file exit status $rc"
topo --format bogus >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] && pass "bad option: exit 2" || fail "bad option exit status $rc"

if [ "$have_hwloc" = "1" ] || [ "$have_hwloc" = "ON" ] || [ "$have_hwloc" = "TRUE" ]; then
  out=$(topo --hwloc-xml "$data/hwloc-nvidiaDGX2.xml" 2>/dev/null)
  printf '%s\n' "$out" | grep -q $'^GPU15\tNV6' && pass "hwloc xml matrix" || fail "hwloc xml matrix"
  topo >/dev/null 2>&1; rc=$?
  [ $rc -eq 0 ] && pass "live discovery exits 0" || fail "live discovery exit status $rc"
  # Every hwloc file that once crashed a reader or exported unreadable NCCL XML: refused
  # with exit 2 and its name, or exported as NCCL XML that railcc-topo reads back.
  for f in "$data"/bad-input/hwloc_*.xml; do
    name=$(basename "$f")
    err=$(topo --hwloc-xml "$f" --format nccl-xml -o "$tmp/export.xml" 2>&1 >/dev/null); rc=$?
    if [ $rc -eq 2 ] && printf '%s' "$err" | grep -q "$name:"; then
      pass "$name: refused by name"
    elif [ $rc -eq 0 ] && topo --nccl-xml "$tmp/export.xml" >/dev/null 2>&1; then
      pass "$name: its NCCL XML export reads back"
    else
      fail "$name: exit $rc: $err"
    fi
  done
  mkfifo "$tmp/pipe.xml"
  err=$(topo --hwloc-xml "$tmp/pipe.xml" 2>&1 >/dev/null); rc=$?
  [ $rc -eq 2 ] && printf '%s' "$err" | grep -q 'not a regular file' && pass "a FIFO: refused" ||
    fail "a FIFO: exit $rc: $err"
fi
rm -rf "$tmp"
echo "railcc-topo: $fails failure(s)"
[ $fails -eq 0 ]
