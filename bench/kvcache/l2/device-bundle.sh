#!/usr/bin/env bash
# Builds .devcarry/: a self-contained copy of the L2 benchmark (bench/kvcache/l2/run.ts) for a host
# with neither Node, this checkout nor redis (the lent GPU host), and prints the command to run it
# there. Nothing here needs the network.
#
#   bench/kvcache/l2/device-bundle.sh [--shards N] [--client-threads T] [extra run.ts flags...]
#
# Contents (git-ignored, ~30 MiB):
#   l2-bench.mjs, client-worker.mjs           run.ts and its client threads (esbuild bundles)
#   switchyard-cache-server.mjs, shard-worker.mjs   `switchyard cache-server` and its shard threads
#   node_modules/@node-rs/xxhash*              the XXH64 native module (a .node file cannot be bundled)
#   node.xz                                    this box's node binary, xz-compressed
#   redis-server, lib/                         Debian's redis-server and the shared libraries the
#                                              GPU host lacks (libatomic, libjemalloc, liblzf)
# A worker's script is found next to the bundle that starts it (new URL("./x.mjs", import.meta.url)),
# so each bundle's worker is bundled under the name its source module uses.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
OUT=.devcarry
SHARDS=4
THREADS=4
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --shards) SHARDS=$2; shift 2 ;;
    --client-threads) THREADS=$2; shift 2 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done

mkdir -p "$OUT"
# Keep node.xz when it is this node already (compressing it takes a minute); rebuild the rest.
find "$OUT" -mindepth 1 -maxdepth 1 ! -name node.xz ! -name node.version -exec rm -rf {} +
ESBUILD=node_modules/.bin/esbuild
# Bundled CommonJS (commander, prom-client) calls require() for Node's built-ins.
BANNER="import{createRequire as __cr}from'module';const require=__cr(import.meta.url);"
bundle() { "$ESBUILD" "$1" --bundle --platform=node --format=esm --target=node20 --log-level=warning --external:@node-rs/xxhash "--banner:js=$BANNER" --outfile="$OUT/$2"; }
bundle bench/kvcache/l2/run.ts l2-bench.mjs
bundle bench/kvcache/l2/client-worker.ts client-worker.mjs
bundle bench/kvcache/l2/device-cache-server.ts switchyard-cache-server.mjs
bundle dataplane/kvcache/server/shard-worker.ts shard-worker.mjs

mkdir -p "$OUT/node_modules/@node-rs"
cp -r node_modules/@node-rs/xxhash node_modules/@node-rs/xxhash-linux-x64-gnu "$OUT/node_modules/@node-rs/"

if [ ! -f "$OUT/node.xz" ] || [ "$(cat "$OUT/node.version" 2>/dev/null)" != "$(node --version)" ]; then
  xz -T0 -6 -c "$(command -v node)" > "$OUT/node.xz"
  node --version > "$OUT/node.version"
fi

REDIS=$(command -v redis-server)
cp "$REDIS" "$OUT/redis-server"
mkdir -p "$OUT/lib"
for lib in libatomic.so.1 libjemalloc.so.2 liblzf.so.1; do
  cp "$(ldd "$REDIS" | awk -v l="$lib" '$1 == l { print $3 }')" "$OUT/lib/"
done

# The last run on that host, so results.md shows its L2 / redis ratios beside the new ones.
PREV=()
if [ -f bench/results/kv-l2/h100-host/results.json ]; then
  cp bench/results/kv-l2/h100-host/results.json "$OUT/previous.json"
  PREV=(--previous .devcarry/previous.json)
fi

# Smoke test here: the bundles load, the native module resolves from .devcarry/node_modules.
node "$OUT/switchyard-cache-server.mjs" cache-server --help > /dev/null
(cd "$OUT" && node --input-type=module -e 'import { xxh64 } from "@node-rs/xxhash"; if (xxh64(Buffer.from("abc"), 0n) !== 0x44bc2cf5ad770999n) process.exit(1)')

du -sh "$OUT" >&2
cat <<CMD
# On the device (repo root; carry [".devcarry"]); results land in \$OUT/kv-l2:
mkdir -p /tmp/sy && xz -dc .devcarry/node.xz > /tmp/sy/node && chmod +x /tmp/sy/node && chmod +x .devcarry/redis-server && LD_LIBRARY_PATH=\$PWD/.devcarry/lib L2_BENCH_SWITCHYARD_CLI=\$PWD/.devcarry/switchyard-cache-server.mjs L2_BENCH_REDIS_SERVER=\$PWD/.devcarry/redis-server /tmp/sy/node .devcarry/l2-bench.mjs --shards $SHARDS --client-threads $THREADS ${PREV[*]:-} ${EXTRA[*]:-} --out \$OUT/kv-l2 2>&1 | tail -n 80; uptime
CMD
