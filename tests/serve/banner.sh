#!/bin/sh
# banner.sh COMMAND...: runs an `imp serve` command line, waits up to 60 s for its "listening on" line, stops it
# with SIGTERM and prints what it wrote (stdout and stderr); the exit status is the server's.
out=$(mktemp)
"$@" > "$out" 2>&1 &
pid=$!
i=0
while [ $i -lt 600 ] && kill -0 $pid 2>/dev/null && ! grep -q "listening on" "$out"; do
  sleep 0.1
  i=$((i + 1))
done
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
cat "$out"
rm -f "$out"
exit $rc
