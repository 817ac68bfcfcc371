#!/usr/bin/env bash
# railcc-sim as a user runs it: nccl-tests rows, data checked, modes agreeing, JSON,
# traces, and clear errors with exit status 2 on bad input.
set -u
sim_binary="$1"
fails=0
sim() { "$sim_binary" "$@"; }
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Every collective in data mode on 4 hosts of 8 GPUs: outputs checked against the reference.
for c in all_reduce reduce_scatter all_gather broadcast reduce all_to_all send_recv; do
  out=$(sim --fabric colossus --gpus 32 --collective $c --data -b 4K -e 64K -f 4 -r 5 2>&1); rc=$?
  if [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q '^# Out of bounds values : 0 OK$'; then
    pass "$c --data: outputs match the reference"
  else
    fail "$c --data (exit $rc): $out"
  fi
done
# Every all-reduce algorithm, forced, in data mode, with avg on int32.
for a in ring rabenseifner mixed_radix tree hierarchical nvls; do
  out=$(sim --gpus 32 --algo $a --data -d int32 -o avg -b 1K -e 1K 2>&1); rc=$?
  [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q "  $a" && pass "--algo $a --data" ||
    fail "--algo $a --data (exit $rc): $out"
done

# Phases pipelined in chunks keep the data right.
out=$(sim --gpus 32 --algo hierarchical --phase-chunks 3 --data -d float32 -b 64K -e 64K 2>&1)
printf '%s\n' "$out" | grep -q '^# Out of bounds values : 0 OK$' && pass "--phase-chunks 3 --data" ||
  fail "--phase-chunks 3 --data: $out"
# ... and with three of those chunks between hosts at once.
out=$(sim --gpus 32 --algo hierarchical --inter mixed_radix --phase-chunks 4 --chunks-in-flight 3 \
  --data -d float32 -b 64K -e 64K 2>&1)
printf '%s\n' "$out" | grep -q '^# Out of bounds values : 0 OK$' &&
  pass "--chunks-in-flight 3 --data" || fail "--chunks-in-flight 3 --data: $out"
# --explain says how the pipeline runs and why.
out=$(sim --gpus 1024 -b 1G -e 1G --explain 2>&1)
printf '%s\n' "$out" | grep -q '^# pipeline: [0-9]* chunks, [2-8] between hosts at once (the bandwidth-delay product' &&
  pass "--explain: chunks in flight from the bandwidth-delay product" || fail "--explain: $out"
out=$(sim --gpus 1024 -b 1G -e 1G --chunks-in-flight 1 --explain 2>&1)
printf '%s\n' "$out" | grep -q '^# pipeline: [0-9]* chunks, 1 between hosts at once (as --chunks-in-flight says)' &&
  pass "--explain: --chunks-in-flight 1" || fail "--explain --chunks-in-flight 1: $out"
# On one H100 node the cost model picks NVLS for large messages, and it beats the ring as
# measured plateaus do (475-482 against 365-370 GB/s, 1.3x; docs/validation.md). At 1 GiB
# the NVLS pipeline is near its plateau (at 256 MiB its fill and drain still cost a fifth).
nvls_row=$(sim --gpus 8 -b 1G -e 1G 2>/dev/null | grep -v '^#')
ring_row=$(sim --gpus 8 -b 1G -e 1G --algo ring 2>/dev/null | grep -v '^#')
set -- $nvls_row
nvls_bw=$8 nvls_algo=${10}
set -- $ring_row
[ "$nvls_algo" = nvls ] && awk -v a="$nvls_bw" -v b="$8" 'BEGIN { exit !(a > b * 1.2) }' &&
  pass "auto picks nvls on one node ($nvls_bw vs ring $8 GB/s)" ||
  fail "auto on one node: $nvls_row / ring: $ring_row"

# A row has nccl-tests' columns: size count type redop root time algbw busbw #wrong, then
# algo and eff; busbw = algbw x 2(n-1)/n for all-reduce.
row=$(sim --gpus 64 -b 64M -e 64M --algo ring 2>/dev/null | grep -v '^#')
set -- $row
[ "$1" = 67108864 ] && [ "$2" = 33554432 ] && [ "$3" = bfloat16 ] && [ "$4" = sum ] &&
  [ "$5" = -1 ] && [ "$9" = N/A ] && [ "${10}" = ring ] && pass "row layout" || fail "row layout: $row"
awk -v a="$7" -v b="$8" 'BEGIN { exit !(b > a * 2 * 63 / 64 - 0.02 && b < a * 2 * 63 / 64 + 0.02) }' &&
  pass "busbw = algbw x 2(n-1)/n" || fail "busbw $8 vs algbw $7"

# By default a ring gets a channel per rail, so it crosses hosts on every NIC: over 16 hosts
# at least 6 times one channel's bus bandwidth (8 NICs against 1).
row8=$(sim --gpus 128 -b 1G -e 1G --algo ring 2>/dev/null | grep -v '^#')
row1=$(sim --gpus 128 -b 1G -e 1G --algo ring --channels 1 2>/dev/null | grep -v '^#')
head8=$(sim --gpus 128 -b 1G -e 1G --algo ring 2>/dev/null | grep '^# ecmp routing')
set -- $row8
bw8=$8
set -- $row1
case "$head8" in *"8 channels (ring, tree)"*) ok_head=1 ;; *) ok_head=0 ;; esac
[ $ok_head = 1 ] && awk -v a="$bw8" -v b="$8" 'BEGIN { exit !(a > 6 * b) }' &&
  pass "a channel per rail by default ($bw8 vs $8 GB/s with one)" ||
  fail "default channels: $head8 / $row8 / $row1"

# Fixed costs: the header shows them; --base-us replaces the per-collective base (6.6 us),
# and the tcp profile's message start-up (25 us) slows a small all-reduce across hosts.
t_rdma=$(sim --gpus 16 -b 1K -e 1K --algo ring 2>/dev/null | grep -v '^#' | awk '{ print $6 }')
t_nobase=$(sim --gpus 16 -b 1K -e 1K --algo ring --base-us 0 2>/dev/null | grep -v '^#' | awk '{ print $6 }')
t_tcp=$(sim --gpus 16 -b 1K -e 1K --algo ring --transport tcp 2>/dev/null | grep -v '^#' | awk '{ print $6 }')
head_tcp=$(sim --gpus 16 -b 1K -e 1K --transport tcp 2>/dev/null | grep '^# fixed costs')
awk -v a="$t_rdma" -v b="$t_nobase" 'BEGIN { exit !(a - b > 6.59 && a - b < 6.61) }' &&
  pass "--base-us 0 takes 6.6 us off ($t_rdma -> $t_nobase us)" || fail "--base-us: $t_rdma vs $t_nobase"
case "$head_tcp" in *"(tcp): message 25.00 us"*) tcp_head=1 ;; *) tcp_head=0 ;; esac
[ $tcp_head = 1 ] && awk -v a="$t_rdma" -v b="$t_tcp" 'BEGIN { exit !(b > a + 24) }' &&
  pass "--transport tcp ($t_rdma -> $t_tcp us)" || fail "--transport tcp: $head_tcp / $t_tcp"

# Steps mode (default) and the per-operation schedule agree on a lockstep algorithm.
t_steps=$(sim --gpus 64 -b 16M -e 16M --algo hierarchical --inter rabenseifner 2>/dev/null | grep -v '^#' | awk '{ print $6 }')
t_ops=$(sim --gpus 64 -b 16M -e 16M --algo hierarchical --inter rabenseifner --mode timing 2>/dev/null | grep -v '^#' | awk '{ print $6 }')
[ -n "$t_steps" ] && [ "$t_steps" = "$t_ops" ] && pass "steps and timing modes agree ($t_steps us)" ||
  fail "steps $t_steps us vs timing $t_ops us"

# auto picks a logarithmic algorithm for small messages at scale and hierarchical for large.
out=$(sim --gpus 8192 -b 1K -e 256M -f 256 2>/dev/null)
small=$(printf '%s\n' "$out" | grep -v '^#' | head -1 | awk '{ print $10 }')
large=$(printf '%s\n' "$out" | grep -v '^#' | tail -1 | awk '{ print $10 }')
[ "$small" != ring ] && [ "${large%%+*}" = hierarchical ] && pass "auto: $small small, $large large" ||
  fail "auto chose $small and $large"

# JSON, and a trace in both modes.
sim --gpus 32 -b 1M -e 4M --json --trace "$tmp/steps.json" >"$tmp/out.json" 2>/dev/null
grep -q '"schema": "railcc.sim_results.v1"' "$tmp/out.json" && [ "$(grep -c '"busbw"' "$tmp/out.json")" -eq 2 ] &&
  pass "--json: two rows" || fail "--json: $(cat "$tmp/out.json")"
grep -q '"ph":"X","name":"steps' "$tmp/steps.json" && pass "steps trace" || fail "steps trace"
sim --gpus 16 -b 1M -e 1M --mode timing --trace "$tmp/ops.json" >/dev/null 2>&1
grep -q '"cat":"flow"' "$tmp/ops.json" && pass "per-operation trace" || fail "per-operation trace"
sim --gpus 8 --algo nvls -b 1M -e 1M --mode timing --trace "$tmp/nvls.json" >/dev/null 2>&1
grep -q '"name":"from NVSwitch"' "$tmp/nvls.json" && grep -q '"name":"to NVSwitch"' "$tmp/nvls.json" &&
  pass "NVLS trace: flows into and out of the switch on the GPUs' tracks" || fail "NVLS trace"

# Failed links: the run still completes and reports them.
out=$(sim --gpus 1024 -b 1M -e 1M --fail-links 0.05 --seed 3 2>&1); rc=$?
[ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q 'failed)' && pass "--fail-links" || fail "--fail-links: $out"

# Bad input: exit status 2 and a message naming the problem, before anything runs.
expect_error() {
  local what=$1 pattern=$2; shift 2
  out=$(sim "$@" 2>&1); rc=$?
  [ $rc -eq 2 ] && printf '%s\n' "$out" | grep -q -- "$pattern" && pass "refuses $what" ||
    fail "$what: exit $rc: $out"
}
expect_error "an unknown collective" "'allscatter'" --collective allscatter --gpus 8
expect_error "an algorithm that does not apply" "does not apply to all_gather" --collective all_gather --algo tree --gpus 8
expect_error "more GPUs than the fabric" "the fabric has only 24576 GPUs" --fabric llama3 --gpus 30000
expect_error "a bad size" "unknown suffix" -b 4X --gpus 8
expect_error "a bad type" "'float8'" -d float8 --gpus 8
expect_error "data mode past its memory" "use timing mode for this size" --gpus 4096 --data -b 1G -e 1G
expect_error "a missing fabric file" "cannot open" --fabric /nonexistent/fabric.json
expect_error "a root outside the ranks" "--root 9" --collective broadcast --gpus 8 -r 9
expect_error "a bad failure fraction" "fraction in" --gpus 8 --fail-links 1.5
expect_error "negative phase chunks" "--phase-chunks '-1' is not a whole number" --gpus 8 --phase-chunks -1
expect_error "negative chunks in flight" "--chunks-in-flight '-2' is not a whole number" --gpus 8 --chunks-in-flight -2
expect_error "no QPs" "--qps 0 is out of range: use 1 to 1024" --gpus 8 --qps 0
expect_error "an unknown transport" "--transport 'udp': rdma or tcp" --gpus 8 --transport udp
expect_error "a negative overhead" "--message-overhead-us -1 is out of range" --gpus 8 --message-overhead-us -1

expect_error "--gpus 0" "--gpus 0 is out of range: use 1 to 4000000" --gpus 0
expect_error "an empty --gpus" "--gpus '' is not a whole number" --gpus ""
expect_error "a negative --gpus" "--gpus '-5' is not a whole number" --gpus -5
expect_error "a fat tree for 5e18 GPUs (it looped forever)" "--gpus 5000000000000000000 is out of range" \
  --fabric fat-tree --gpus 5000000000000000000
expect_error "a negative size" "-e '-1' is not a number of bytes" --gpus 8 -e -1
expect_error "a size over 1 TiB" "-e 2048G is more than the 1 TiB" --gpus 8 -e 2048G
expect_error "an unknown option" "The following argument was not expected: --bogus" --gpus 8 --bogus
expect_error "a bad --seed" "--seed 'x' is not a whole number" --gpus 8 --seed x
expect_error "--inplace for all_to_all" "all_to_all has no in-place form" --gpus 8 --collective all_to_all --inplace
expect_error "--inplace for send_recv" "send_recv has no in-place form" --gpus 8 --collective send_recv --inplace
expect_error "data mode over 8,192 ranks" "railcc-sim takes up to 8192 ranks in timing and data modes" \
  --gpus 65536 --data -b 1K -e 1K
expect_error "a timing run past max_flows" "posts more than 2000000 flows" --gpus 8192 --algo ring --mode timing -b 1K -e 1K
data=$(dirname "$0")/../data/bad-input
expect_error "a JSON number too large for a double" "unreadable JSON" --fabric "$data/overflow_number_abort.json"
expect_error "a link at 1e-300 Gb/s" "must be 1 Mb/s to 1 Pb/s" --fabric "$data/tinybw1_segv.json" --data --algo ring -b 1K -e 1K
expect_error "50M GPUs in 123 bytes" "hosts: is 16777215" --fabric "$data/123byte_fabric_2.7GB.json"
mkfifo "$tmp/pipe.json"
expect_error "a FIFO as the fabric (it blocked)" "not a regular file" --fabric "$tmp/pipe.json"
# A trace path that cannot be written is refused before any size is simulated.
out=$(sim --gpus 8 -b 1K -e 4K --trace /nonexistent/dir/t.json 2>&1); rc=$?
[ $rc -eq 2 ] && printf '%s\n' "$out" | grep -q "cannot write /nonexistent/dir/t.json" &&
  ! printf '%s\n' "$out" | grep -q '^ ' && pass "an unwritable --trace, before any row" ||
  fail "unwritable --trace: exit $rc: $out"
expect_error "an unknown --schedule" "use off or on" --schedule sometimes --gpus 8
expect_error "an unknown --explain" "use predicted (the default) or simulated" --explain why --gpus 8
expect_error "an unknown --inter" "use ring, rabenseifner or mixed_radix" --inter bruck --gpus 8

# --schedule on chooses each step's QPs: fewer switch links shared than blind hashing, a
# time no worse, and the data unchanged; with spraying it says there is nothing to choose.
off=$(sim --gpus 2048 -b 64M -e 64M 2>/dev/null | grep -v '^#')
on_out=$(sim --gpus 2048 -b 64M -e 64M --schedule on 2>/dev/null)
on=$(printf '%s\n' "$on_out" | grep -v '^#')
qps=$(printf '%s\n' "$on_out" | sed -n 's/^# QPs chosen: .* flows of a step: \([0-9]*\) hashed blindly, \([0-9]*\) chosen$/\1 \2/p')
set -- $off
t_off=$6
set -- $on
t_on=$6
set -- $qps
[ -n "$qps" ] && [ "$2" -lt "$1" ] && awk -v a="$t_on" -v b="$t_off" 'BEGIN { exit !(a <= b) }' &&
  pass "--schedule on: shared links $1 -> $2, $t_off -> $t_on us" ||
  fail "--schedule on: $on_out / off: $off"
# --explain says how the routing slows the steps between hosts, which the tuner prices:
# on HPN one QP takes one 200G port of each dual-plane NIC (x2), and the four chosen QPs
# per connection take both planes (x1).
for s in "off x2.00" "on x1.00"; do
  set -- $s
  out=$(sim --fabric hpn --gpus 256 -b 4M -e 4M --schedule "$1" --explain 2>&1)
  printf '%s\n' "$out" | grep -q "^# steps between hosts, the busiest link against the NIC rate .*: mixed radix up to $2 (across hosts $2 by bytes)" &&
    pass "--explain, --schedule $1 on hpn: steps $2" || fail "--explain, --schedule $1 on hpn: $out"
done
out=$(sim --gpus 64 --schedule on --data -d int32 -b 64K -e 64K 2>&1)
printf '%s\n' "$out" | grep -q '^# Out of bounds values : 0 OK$' && pass "--schedule on --data" ||
  fail "--schedule on --data: $out"
# With 5% of the switch cables down the chosen QPs still give the right data; with 95%
# down a flow has no path, and the error names it (no QP is chosen for it).
out=$(sim --gpus 1024 --schedule on --fail-links 0.05 --data -d int32 -b 64K -e 64K 2>&1)
printf '%s\n' "$out" | grep -q '^# Out of bounds values : 0 OK$' && pass "--schedule on --fail-links 0.05 --data" ||
  fail "--schedule on --fail-links 0.05 --data: $out"
out=$(sim --gpus 1024 --schedule on --fail-links 0.95 -b 64K -e 64K 2>&1); rc=$?
[ $rc -ne 0 ] && printf '%s\n' "$out" | grep -q 'railcc-sim: flow .* has no live path between' &&
  pass "--schedule on on a cut fabric names the flow" || fail "--schedule on, cut fabric: exit $rc: $out"
# A hash railcc does not know cannot be steered: --schedule on stripes each connection
# over the QPs the fabric suggests, says so, and the data stays right.
out=$(sim --gpus 1024 --schedule on --ecmp-hash unknown --data -d int32 -b 64K -e 64K 2>&1)
printf '%s\n' "$out" | grep -q '^# schedule on: the ECMP hash is unknown (--ecmp-hash unknown), so no QP is chosen: each connection stripes over min(64 first hops out of a leaf, 16) = 16 QPs$' &&
  printf '%s\n' "$out" | grep -q '^# Out of bounds values : 0 OK$' && ! printf '%s\n' "$out" | grep -q '^# QPs chosen' &&
  pass "--ecmp-hash unknown stripes and says so" || fail "--ecmp-hash unknown: $out"
# On a fabric with a tier built short of up-links (llama3's 1:7 aggregation) the chooser
# gets two QPs per connection and says why; colossus keeps one; --qps overrides.
sim --fabric llama3 --gpus 64 --schedule on -b 1M -e 1M 2>/dev/null |
  grep -q '^# schedule on: each step.s QPs chosen against the ECMP hash (qp_paths); 2 QPs per connection (two per NIC port, as halves of flows pack where whole ones cannot: tier 2 built with less capacity up than down)$' &&
  sim --gpus 64 --schedule on -b 1M -e 1M 2>/dev/null |
  grep -q '^# schedule on: each step.s QPs chosen against the ECMP hash (qp_paths); 1 QP per connection (one per NIC port)$' &&
  sim --fabric llama3 --gpus 64 --schedule on --qps 3 -b 1M -e 1M 2>/dev/null |
  grep -q '; 3 QPs per connection$' &&
  pass "--schedule on: QPs per connection from the fabric" || fail "--schedule on: QPs per connection"
expect_error "an unknown --ecmp-hash" "use known (the switches hash as railcc's model does) or unknown" --ecmp-hash crc --gpus 8
sim --gpus 64 --schedule on --routing spray -b 1M -e 1M 2>/dev/null |
  grep -q '^# schedule on: spray routing uses every path, no QPs to choose; 1 QP per connection' &&
  pass "--schedule on with spraying says so" || fail "--schedule on --routing spray"

# --explain: every candidate with its prediction, the pick named with the runner-up, the
# hierarchical ones excluded on one host with the reason; simulated on request.
out=$(sim --gpus 256 -b 1G -e 1G --explain 2>&1)
printf '%s\n' "$out" | grep -q '^# explain 1073741824 B: tuner picks [a-z_+]*, the least predicted time (.*; next ' &&
  [ "$(printf '%s\n' "$out" | grep -c '^#   .* predicted ')" -ge 8 ] &&
  pass "--explain lists the candidates" || fail "--explain: $out"
out=$(sim --gpus 8 -b 1M -e 1M --explain simulated 2>&1)
printf '%s\n' "$out" | grep -q '^#   hierarchical .* does not run here: one host' &&
  printf '%s\n' "$out" | grep -q '^#   nvls .* predicted .* simulated .* (eff ' &&
  pass "--explain simulated" || fail "--explain simulated: $out"

# --help is not an error.
sim --help >/dev/null 2>&1 && pass "--help exits 0" || fail "--help"
# Products of 512 halves are checked as the correct IEEE results they are.
out=$(sim --gpus 512 --data -d float16 -o prod -b 2K -e 2K --algo ring 2>&1); rc=$?
[ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q '^# Out of bounds values : 0 OK$' &&
  pass "float16 prod over 512 ranks" || fail "float16 prod over 512 ranks: exit $rc: $out"

# Progress: on stderr when it is a terminal, nothing when it is not.
sim --gpus 64 -b 1K -e 4K >/dev/null 2>"$tmp/err"
[ ! -s "$tmp/err" ] && pass "no progress on a non-terminal stderr" || fail "stderr: $(cat "$tmp/err")"
if command -v script >/dev/null 2>&1; then
  script -qfec "$sim_binary --gpus 16384 -b 1M -e 16M -f 4 >/dev/null" "$tmp/tty" >/dev/null 2>&1
  grep -q 'railcc-sim: size 1 of 3 (1048576 B), [0-9]* s elapsed' "$tmp/tty" &&
    grep -q 'size [23] of 3 ([0-9]* B), [0-9]* s elapsed, about [0-9]* s left' "$tmp/tty" &&
    pass "progress on a terminal" || fail "progress on a terminal: $(tr '\r' '\n' <"$tmp/tty" | tail -3)"
fi

echo "$fails failure(s)"
[ $fails -eq 0 ]
