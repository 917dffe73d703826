#!/usr/bin/env bash
# Vendor JsSIP (the desk's softphone, agent_desk/static/softphone.js) into
# agent_desk/static/vendor/: one browser file, served as it is; nothing is built when
# the desk runs. Run it again to re-do (or, after changing the versions below, to update)
# the vendored copy; it needs node and npm, and reaches only the npm registry.
#
# JsSIP's npm releases since 3.11 ship the library as CommonJS (lib/) without the
# browser bundle dist/jssip.min.js ("apps using JsSIP are responsible" for bundling; the
# one exception, 3.12.0, carries a stale 3.11.1 build). So this fetches exactly
# jssip@VERSION with `npm pack`, installs its three dependencies at pinned versions, and
# bundles it the way JsSIP's own `npm run build` makes dist/jssip.min.js (npm-scripts.mjs:
# esbuild, iife, global JsSIP, es2015, minified, with its banner), with the esbuild
# version its package.json names. The result is the same bytes each time: SHA256 below.
set -euo pipefail

VERSION=3.13.8
ESBUILD=0.27.2
DEPS=(debug@4.4.3 ms@2.1.3 events@3.3.0 sdp-transform@2.15.0)
SHA256=${JSSIP_SHA256:-ef922608479d192961c7743428c97387630bfdc7ef4271867d5ad37b61b04aad}

here="$(cd "$(dirname "$0")/.." && pwd)"
out="$here/agent_desk/static/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
log() { echo "vendor-jssip: $*" >&2; }

cd "$tmp"
log "fetching jssip@$VERSION"
npm pack --silent "jssip@$VERSION" >/dev/null
tar xzf "jssip-$VERSION.tgz"
cd package
got="$(node -p 'require("./package.json").version')"
[ "$got" = "$VERSION" ] || { log "the package says $got, not $VERSION"; exit 1; }
# Its dependencies at exactly these versions (no lock file comes with a package), and
# the bundler beside it; no install scripts run.
npm install --no-save --no-audit --no-fund --ignore-scripts --omit=dev "${DEPS[@]}" >/dev/null
npm install --prefix "$tmp/tools" --no-save --no-audit --no-fund --ignore-scripts \
  "esbuild@$ESBUILD" >/dev/null
for dep in "${DEPS[@]}"; do
  name="${dep%@*}" want="${dep##*@}"
  have="$(node -p "require('./node_modules/$name/package.json').version")"
  [ "$have" = "$want" ] || { log "$name is $have, not $want"; exit 1; }
done

ESBUILD_DIR="$tmp/tools/node_modules/esbuild" node - <<'EOF'
// JsSIP's npm-scripts.mjs build(minify = true), with a fixed copyright year.
const esbuild = require(process.env.ESBUILD_DIR);
const pkg = require('./package.json');
const banner = `
 /*
  * JsSIP ${pkg.version}
  * ${pkg.description}
  * Copyright: 2012-2026 ${pkg.contributors.join(' ')}
  * Homepage: ${pkg.homepage}
  * License: ${pkg.license}
  */`;
esbuild.build({
  entryPoints: ['lib/JsSIP.js'],
  outfile: 'dist/jssip.min.js',
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'iife',
  globalName: 'JsSIP',
  platform: 'browser',
  target: ['es2015'],
  supported: { 'template-literal': false },
  banner: { js: banner },
  logLevel: 'warning',
}).catch(() => process.exit(1));
EOF

sum="$(sha256sum dist/jssip.min.js | cut -d' ' -f1)"
if [ -n "$SHA256" ] && [ "$sum" != "$SHA256" ]; then
  log "the bundle's sha256 is $sum, not the expected $SHA256"
  exit 1
fi

mkdir -p "$out"
cp dist/jssip.min.js "$out/jssip.min.js"
{
  echo "JsSIP $VERSION (agent_desk/static/vendor/jssip.min.js bundles it with the"
  echo "packages below; all MIT)"
  echo
  cat LICENSE.md
  for dep in "${DEPS[@]}"; do
    name="${dep%@*}"
    echo
    echo "---------------------------------------------------------------------------"
    echo "$dep"
    echo
    cat node_modules/"$name"/[Ll][Ii][Cc][Ee][Nn][Ss][Ee]*
  done
} > "$out/LICENSE.jssip"
cat > "$out/README.md" <<EOF
# Vendored browser libraries

- \`jssip.min.js\`: JsSIP $VERSION (MIT, https://jssip.net), from the npm package
  \`jssip@$VERSION\`, bundled with its dependencies ($(IFS=,; echo "${DEPS[*]}" | sed 's/,/, /g'))
  as JsSIP's own build does (esbuild $ESBUILD) by \`scripts/vendor-jssip.sh\`; sha256
  \`$sum\`. Licenses: \`LICENSE.jssip\`.
EOF
log "agent_desk/static/vendor/jssip.min.js: JsSIP $VERSION, sha256 $sum"
