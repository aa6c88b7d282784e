#!/usr/bin/env bash
# One call of the workplace's device tool: start gpu/device_run.sh once, in its own session so it
# outlives the call, wait up to WAIT seconds for it, then copy what it wrote so far into $OUT.
# Later calls find it running (or done) and only wait and collect.
#
# usage: gpu/device_call.sh STAGE WAIT
set -uo pipefail
STAGE=$(realpath "$1")
WAIT=$2
W=${W:-$HOME/qwq-gpu}
mkdir -p "$W"
if [ ! -e "$W/started" ]; then
  date +%s > "$W/started"
  PLAN=${PLAN:-full} BUDGET_S=${BUDGET_S:-1500} W=$W setsid bash "$STAGE/repo/gpu/device_run.sh" "$STAGE" \
    > "$W/driver.log" 2>&1 < /dev/null &
fi
end=$(( SECONDS + WAIT ))
while [ "$SECONDS" -lt "$end" ]; do
  grep -qE " (done|build failed|create failed)$" "$W/results/phases.txt" 2>/dev/null && break
  sleep 5
done
echo "== phases"; cat "$W/results/phases.txt" 2>/dev/null
echo "== sweep"; tail -n 40 "$W/results/sweep.txt" 2>/dev/null
echo "== driver"; tail -n 15 "$W/driver.log"
if [ -n "${OUT:-}" ]; then
  tar -czf "$OUT/results.tar.gz" -C "$W" results
  ls -l "$OUT"
fi
