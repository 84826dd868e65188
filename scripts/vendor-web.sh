#!/usr/bin/env bash
# Copies the dashboard's browser libraries from node_modules into src/Api/wwwroot/lib/, where the API
# serves them (no CDN at run time). The copies are committed, so running the service needs no npm;
# run this only to change a version: edit package.json, then `scripts/vendor-web.sh`, then update
# src/Api/wwwroot/lib/README.md and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
npm install --no-audit --no-fund --silent
lib=src/Api/wwwroot/lib
mkdir -p "$lib"
cp node_modules/@microsoft/signalr/dist/browser/signalr.min.js "$lib/signalr.min.js"
cp node_modules/uplot/dist/uPlot.iife.min.js "$lib/uPlot.iife.min.js"
cp node_modules/uplot/dist/uPlot.min.css "$lib/uPlot.min.css"
cp node_modules/js-yaml/dist/browser/js-yaml.esm.min.mjs "$lib/js-yaml.mjs"
cp node_modules/uplot/LICENSE "$lib/LICENSE.uPlot.txt"
cp node_modules/js-yaml/LICENSE "$lib/LICENSE.js-yaml.txt"
# @microsoft/signalr ships no LICENSE file in its package; its MIT notice is in README.md here.
# The minified files point at source maps we do not ship; drop the comment so browsers don't ask for them.
sed -i '/^\/\/# sourceMappingURL=/d; s#//\# sourceMappingURL=[^ ]*$##' "$lib/signalr.min.js" "$lib/js-yaml.mjs"
for p in @microsoft/signalr uplot js-yaml; do
  node -e 'const p=require("./node_modules/"+process.argv[1]+"/package.json"); console.log(`${p.name} ${p.version} (${p.license})`)' "$p"
done
