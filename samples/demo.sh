#!/bin/sh
# make demo: start the sandbox on a free loopback port with demo credentials,
# import samples/manifest.csv, import it again (every row skipped), show the
# store's status, enroll samples/compare/manifest.csv by SmartSelfie Compare
# into a store of its own and report it, then verify that a sample of 3 users
# enrolled by the first run authenticates (SmartSelfie Authentication), stop
# the sandbox.
set -eu
bin=${1:-bin/bulkenroll}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
sandbox_pid=
cleanup() {
  if [ -n "$sandbox_pid" ]; then
    kill "$sandbox_pid" 2>/dev/null || true
    wait "$sandbox_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export SMILE_PARTNER_ID=demo-partner
export SMILE_API_KEY=demo-api-key
export BULKENROLL_STORE="$work/demo.db"

"$bin" sandbox --addr 127.0.0.1:0 --latency 150ms >"$work/sandbox.out" 2>&1 &
sandbox_pid=$!
url=
for _ in $(seq 1 50); do
  url=$(sed -n 's/^sandbox listening on //p' "$work/sandbox.out")
  [ -n "$url" ] && break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "demo: the sandbox did not start:" >&2
  cat "$work/sandbox.out" >&2
  exit 1
fi
export SMILE_BASE_URL="$url"
echo "== sandbox at $url (demo credentials; store $BULKENROLL_STORE)"
echo
echo "== bulkenroll run --manifest samples/manifest.csv --rate 4"
"$bin" run --manifest "$here/manifest.csv" --rate 4
echo
echo "== the same again: every row is skipped, nothing is sent"
"$bin" run --manifest "$here/manifest.csv" --json
echo
echo "== bulkenroll status"
"$bin" status
echo
echo "== SmartSelfie Compare: bulkenroll run --product compare --manifest samples/compare/manifest.csv"
echo "   (selfie, 4-8 liveness frames and a photo on file per user; a store holds one product)"
"$bin" validate --product compare --manifest "$here/compare/manifest.csv"
BULKENROLL_STORE="$work/compare.db" "$bin" run --product compare --manifest "$here/compare/manifest.csv" --rate 4
echo
echo "== bulkenroll report (the compare store)"
BULKENROLL_STORE="$work/compare.db" "$bin" report
echo
echo "== bulkenroll verify --sample 3: do enrolled users authenticate? (SmartSelfie Authentication)"
"$bin" verify --manifest "$here/manifest.csv" --sample 3 --seed 1
