#!/usr/bin/env bash
# Checks that a production install works (run by .ci/run after npm test): packs the package as npm
# would publish it (`npm pack`, which builds dist/ first through `prepare`), unpacks it into a temp
# dir with the repo's lockfile (npm pack leaves lockfiles out), runs `npm ci --omit=dev` there —
# no typescript, tsx or esbuild — and then, from that install only: starts one core node on a free
# port, waits (bounded) for it to be primary, writes a deposit with a token from `statemirror
# token`, starts a read node and reads the deposit back from it (minSeq), and fetches both prebuilt
# browser bundles. Every process it starts is stopped on exit, by pid. KEEP_WORK=1 keeps the temp
# dir (the unpacked install and the nodes' logs) for a look after a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
started=$(date +%s)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sm-prod-XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${KEEP_WORK:-}" ]; then echo "check-prod-install: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
fail() {
  echo "check-prod-install: FAILED: $*" >&2
  for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- $f (tail)" >&2; tail -n 30 "$f" >&2; }; done
  exit 1
}

echo "check-prod-install: packing"
npm pack --silent --pack-destination "$WORK" >"$WORK/pack.out"
tar -xzf "$WORK"/statemirror-*.tgz -C "$WORK"
APP="$WORK/package"
cp package-lock.json "$APP/"
[ -f "$APP/dist/src/cli/main.js" ] || fail "the package has no dist/src/cli/main.js"
[ -f "$APP/dist/pages/dashboard.js" ] || fail "the package has no dist/pages/dashboard.js"
[ ! -e "$APP/src" ] || fail "the package carries src/ (files in package.json)"

echo "check-prod-install: npm ci --omit=dev (builds better-sqlite3 from source)"
(cd "$APP" && npm ci --omit=dev --no-audit --no-fund --loglevel=error) >"$WORK/npm-ci.log" 2>&1 || fail "npm ci --omit=dev"
for dev in typescript tsx esbuild vitest hdr-histogram-js; do
  [ ! -e "$APP/node_modules/$dev" ] || fail "devDependency $dev was installed by npm ci --omit=dev"
done
# The client library loads from the production install through the package's exports map.
(cd "$APP" && node -e "import('statemirror/client').then((m) => { if (typeof m.StatemirrorClient !== 'function') process.exit(1); })") || fail "import('statemirror/client')"
[ -f "$APP/dist/src/client/index.d.ts" ] || fail "the package has no types for statemirror/client"

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
CORE_PORT=$(free_port)
READ_PORT=$(free_port)
cat >"$WORK/node.json" <<EOF
{
  "core": { "nodes": [{ "name": "core-a", "host": "127.0.0.1", "port": $CORE_PORT, "dataDir": "$WORK/data/core-a" }] },
  "domain": {
    "markets": [{ "symbol": "BTC-USD" }],
    "leverage": 10,
    "limits": { "maxOpenOrdersPerAccount": 100, "maxPriceTicks": 100000000, "maxQtyLots": 1000000, "maxAmount": 1000000000000, "maxAccounts": 100000,
      "maxPositionLots": 100000, "maxOpenInterestLots": 1000000, "maxTotalDeposits": 1000000000000000 }
  },
  "publish": {},
  "regions": [{ "name": "local", "host": "127.0.0.1", "port": $READ_PORT, "upstream": "core", "dataDir": "$WORK/data/local" }],
  "links": [{ "from": "core", "to": "local", "latencyMs": 0 }]
}
EOF
# Secrets from the environment, as docs/deploy.md recommends (they override the config's).
export STATEMIRROR_JWT_SECRET="prod-check-jwt-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export STATEMIRROR_CLUSTER_SECRET="prod-check-cluster-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
CORE="http://127.0.0.1:$CORE_PORT"
READ="http://127.0.0.1:$READ_PORT"

# Polls `curl URL` until its body matches REGEX (bounded: 60 s).
wait_for() {
  local url=$1 regex=$2 what=$3 auth=${4:-} deadline=$(($(date +%s) + 60))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || fail "a node exited while waiting for $what"; done
    if body=$(curl -sf ${auth:+-H "authorization: Bearer $auth"} "$url" 2>/dev/null) && [[ $body =~ $regex ]]; then return 0; fi
    sleep 0.2
  done
  fail "timed out waiting for $what ($url)"
}

cd "$APP"
echo "check-prod-install: starting a core node and a read node from the production install"
node bin/statemirror.js core --config "$WORK/node.json" >"$WORK/core.log" 2>&1 &
PIDS+=($!)
wait_for "$CORE/v1/status" '"role":"primary"' "the core node to be primary"

OPERATOR=$(node bin/statemirror.js token --config "$WORK/node.json" --role operator)
write=$(curl -sf -XPOST "$CORE/v1/commands" -H 'content-type: application/json' -H "authorization: Bearer $OPERATOR" \
  -d '{"clientId":"prod-check-1","type":"deposit","account":"alice","amount":1000000}') || fail "the deposit was refused"
[[ $write =~ \"seq\":([0-9]+) ]] || fail "no seq in the write's answer: $write"
SEQ=${BASH_REMATCH[1]}

node bin/statemirror.js replica --config "$WORK/node.json" --region local --upstream "$CORE" >"$WORK/replica.log" 2>&1 &
PIDS+=($!)
wait_for "$READ/v1/accounts/alice?minSeq=$SEQ" '1000000' "the read node to serve the deposit (seq $SEQ)" "$OPERATOR"
curl -sf "$READ/dashboard.js" -o /dev/null || fail "the read node does not serve the prebuilt /dashboard.js"
curl -sf "$CORE/cluster.js" -o /dev/null || fail "the core node does not serve the prebuilt /cluster.js"

echo "check-prod-install: ok in $(($(date +%s) - started)) s (pack, npm ci --omit=dev, core primary, write seq $SEQ, read back from the read node, bundles served)"
