#!/usr/bin/env bash
# Bundle NiiVue from node_modules into one self-contained ES module in the web app's static files,
# and copy Swagger UI for /api/docs, so the app works with the network unplugged (no CDN).
# Run after `npm ci` at the repo root.
set -euo pipefail
cd "$(dirname "$0")/.."
static=src/neurotriage/web/static
out=$static/niivue.js
if [ ! -d node_modules/@niivue/niivue ] || [ ! -d node_modules/swagger-ui-dist ] || [ ! -x node_modules/.bin/esbuild ]; then
  echo "build_niivue: node_modules missing: run 'npm ci' at the repository root first" >&2
  exit 2
fi
mkdir -p "$(dirname "$out")"
node_modules/.bin/esbuild node_modules/@niivue/niivue/build/niivue/index.js \
  --bundle --format=esm --minify --target=es2020 --log-level=warning --outfile="$out.tmp"
mv "$out.tmp" "$out"
mkdir -p "$static/swagger"
cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css "$static/swagger/"
echo "build_niivue: wrote $out ($(du -h "$out" | cut -f1))"
