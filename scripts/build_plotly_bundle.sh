#!/usr/bin/env bash
# Rebuild celerylab/widgets/static/plotly-celerylab.min.js: a partial plotly.js bundle with exactly the trace types
# celerylab's charts draw (scatter from core, bar, box, sunburst, icicle), same version as the plotly.min.js inside
# the installed plotly package.  The full bundle takes ~3 s to evaluate in the browser; this one ~0.2 s.
#   scripts/build_plotly_bundle.sh            (needs node + npm; run after upgrading plotly)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY="$ROOT/.venv/bin/python"
VERSION=$("$PY" - <<'PYEOF'
import pathlib, re, plotly
head = (pathlib.Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text()[:200]
print(re.search(r"plotly\.js v(\S+)", head).group(1))
PYEOF
)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
echo '{"name":"celerylab-plotly-bundle","version":"0.0.0","private":true}' > package.json
npm install --no-audit --no-fund --ignore-scripts "plotly.js@$VERSION" esbuild@0.25 >/dev/null
cat > entry.js <<'JSEOF'
'use strict';
var Plotly = require('plotly.js/lib/core');
Plotly.register([require('plotly.js/lib/bar'), require('plotly.js/lib/box'), require('plotly.js/lib/sunburst'),
                 require('plotly.js/lib/icicle')]);
module.exports = Plotly;
JSEOF
node_modules/.bin/esbuild entry.js --bundle --minify --format=iife --global-name=CelerylabPlotly \
  --define:global=window --define:define.amd=false --target=es2020 --alias:stream=stream-browserify \
  --outfile=out.js --log-level=warning
OUT="$WORK/plotly-celerylab.min.js"
"$PY" - "$VERSION" "$OUT" <<'PYEOF'
import json, sys
version, out = sys.argv[1:]
css, js = open("out.css").read(), open("out.js").read()
inject = ("(function(){if(typeof document!=='undefined'&&!document.getElementById('celerylab-plotly-css')){"
          "var s=document.createElement('style');s.id='celerylab-plotly-css';s.textContent=%s;"
          "document.head.appendChild(s);}})();\n" % json.dumps(css))
with open(out, "w") as f:
    f.write(f"/* plotly.js v{version} partial bundle (core+scatter, bar, box, sunburst, icicle) for celerylab;"
            " MIT licensed, see plotly-LICENSE.txt; built by scripts/build_plotly_bundle.sh */\n")
    f.write(inject + js + "\nif (typeof module === 'object' && module) module.exports = CelerylabPlotly;\n")
PYEOF
cp node_modules/plotly.js/LICENSE "$ROOT/celerylab/widgets/static/plotly-LICENSE.txt"
gzip -9 -n -c "$OUT" > "$ROOT/celerylab/widgets/static/plotly-celerylab.min.js.gz"
echo "wrote celerylab/widgets/static/plotly-celerylab.min.js.gz ($(wc -c < "$OUT") bytes before gzip)"
