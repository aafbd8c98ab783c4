#!/usr/bin/env bash
# Runs libFuzzer targets built by the Makefile (build/fuzz/bin/fuzz_*).
#   scripts/fuzz.sh run SECONDS TARGET...   each target for SECONDS (make fuzz)
#   scripts/fuzz.sh smoke 0 TARGET...       each checked-in corpus file once, then
#                                           FUZZ_SMOKE_RUNS mutations from a fixed
#                                           seed (make fuzz-smoke, part of make test)
# New inputs go to a scratch corpus, listed first so libFuzzer writes there
# (run: build/fuzz/corpus/<target>/, kept between runs; smoke: emptied each time
# under build/fuzz/smoke/); fuzz/corpus/<target>/ is only read. Crashes
# land in build/fuzz/crashes/<target>/ (docs/fuzzing.md: turning one into a
# unit test). Prints one line per target; exits 1 when any target failed.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=$1
seconds=$2
shift 2
smoke_runs=${FUZZ_SMOKE_RUNS:-2000}
work=build/fuzz
failed=0

for bin in "$@"; do
  target=$(basename "$bin")
  seeds=fuzz/corpus/$target
  scratch=$work/corpus/$target
  [ "$mode" = smoke ] && scratch=$work/smoke/$target
  crashes=$work/crashes/$target
  log=$work/log/$target.$mode.log
  mkdir -p "$scratch" "$crashes" "$(dirname "$log")" "$seeds"
  args=(-artifact_prefix="$crashes/" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10)
  [ -f "fuzz/$target.dict" ] && args+=(-dict="fuzz/$target.dict")
  start=$(date +%s)
  if [ "$mode" = smoke ]; then
    # -runs=N over a fresh scratch: the corpus files once, then N mutations.
    rm -rf "$scratch" && mkdir -p "$scratch"
    "$bin" "${args[@]}" -seed=1 -runs="$smoke_runs" "$scratch" "$seeds" >"$log" 2>&1
  else
    "$bin" "${args[@]}" -max_total_time="$seconds" "$scratch" "$seeds" >"$log" 2>&1
  fi
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  if [ "$rc" -eq 0 ]; then
    verdict="ok"
  else
    verdict="FAILED (exit $rc): $(ls -t "$crashes" 2>/dev/null | head -1 | sed "s|^|$crashes/|"), log $log"
    failed=1
  fi
  printf 'fuzz %-8s %-22s %10s execs %4ss  corpus %5s  %s\n' "$mode" "$target" "${execs:-?}" \
    "$(( $(date +%s) - start ))" "$(ls "$scratch" | wc -l)" "$verdict"
  if [ "$rc" -ne 0 ]; then
    # the finding (sanitizer report or fuzz.h's broken invariant), then the input
    grep -m 4 -E 'invariant broken|ERROR: |runtime error|SUMMARY: ' "$log" | sed 's/^/    /'
    grep -A 3 '^MS: ' "$log" | head -n 4 | sed 's/^/    /'
  fi
done
exit "$failed"
