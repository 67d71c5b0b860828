#!/usr/bin/env python3
"""The API document against tools nobody here wrote (issue 18), on a real `reprise serve`:

    .ci/openapi.py REPRISE_BINARY VENV NODE_PREFIX DATABASE_URL

VENV has openapi-spec-validator and openapi-python-client (pinned in .ci/run), NODE_PREFIX
the npm packages @redocly/cli and openapi-typescript. Starts the binary on a fresh database
(.ci/server.py), saves its /api/openapi.json, then:

1. openapi-spec-validator: no error;
2. redocly lint with .ci/redocly.yaml (its recommended rules): no error, no warning;
3. openapi-python-client generates a client (.ci/openapi-python-client.yaml), with no
   warning and one module per operation of the document; .ci/client_drive.py then drives
   the server with it;
4. openapi-typescript generates types, which keep both CSV imports (`text/csv` bodies).

Figures are printed one per line (`openapi.…=`); any failure exits non-zero.
"""

import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from server import Server  # noqa: E402


def run(what, args, **kw):
    """Runs a tool; its output (stdout and stderr together) and exit code."""
    done = subprocess.run(args, capture_output=True, text=True, **kw)
    return done.stdout + done.stderr, done.returncode


def fail(what, out):
    print(out)
    sys.exit(f"openapi: {what}")


def main():
    binary, venv, node = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
    database = sys.argv[4]
    started = time.monotonic()
    with Server(binary, database, prefix="reprise-openapi-") as server:
        work = server.work
        admin = server.reprise("token", "create", "--name", "CI client", "--role", "admin")
        _, text = server.request("GET", "/api/openapi.json")
        document = os.path.join(work, "openapi.json")
        with open(document, "w") as f:
            f.write(text)
        spec = json.loads(text)
        operations = sum(
            1 for item in spec["paths"].values() for m in item
            if m in ("get", "put", "post", "delete", "patch")
        )
        print(f"openapi.paths={len(spec['paths'])}")
        print(f"openapi.operations={operations}")

        # 1. openapi-spec-validator, every error listed.
        out, code = run("validator", [f"{venv}/bin/openapi-spec-validator",
                                      "--validation-errors", "all", document])
        errors = len(re.findall(r"Validation Error", out))
        print(f"openapi.validator_errors={errors}")
        if code or errors:
            fail("openapi-spec-validator refuses the document", out)

        # 2. redocly lint, recommended rules (.ci/redocly.yaml says which one is off, why).
        out, code = run("redocly", [f"{node}/node_modules/.bin/redocly", "lint",
                                    "--config", os.path.join(HERE, "redocly.yaml"),
                                    "--format", "summary", document])
        found = {}
        for kind, n in re.findall(r"^(error|warning)\s+\S+:\s+(\d+)", out, re.M):
            found[kind] = found.get(kind, 0) + int(n)
        print(f"openapi.redocly_errors={found.get('error', 0)}")
        print(f"openapi.redocly_warnings={found.get('warning', 0)}")
        if code or found.get("error") or found.get("warning"):
            fail("redocly lint finds problems", out)

        # 3. A Python client, generated, then driving the server. Its post-processing (ruff)
        # comes with it in the venv.
        env = dict(os.environ, PATH=f"{venv}/bin:{os.environ['PATH']}")
        out, code = run("generator", [
            f"{venv}/bin/openapi-python-client", "generate", "--path", document,
            "--config", os.path.join(HERE, "openapi-python-client.yaml"),
            "--meta", "none", "--output-path", os.path.join(work, "reprise_client"),
            "--fail-on-warning"], env=env, cwd=work)
        if code:
            fail("openapi-python-client could not generate every operation", out)
        modules = [
            name for _, _, files in os.walk(os.path.join(work, "reprise_client", "api"))
            for name in files if name.endswith(".py") and name != "__init__.py"
        ]
        print(f"openapi.python_client_modules={len(modules)}")
        if len(modules) != operations:
            fail(f"the Python client has {len(modules)} modules for {operations} operations",
                 out)
        out, code = run("drive", [f"{venv}/bin/python", os.path.join(HERE, "client_drive.py"),
                                  server.base, admin],
                        env=dict(env, PYTHONPATH=work), cwd=work)
        print("\n".join(out.splitlines()[-1:]))
        if code:
            fail("the generated Python client could not drive the server", out)

        # 4. openapi-typescript keeps the CSV imports, with their `text/csv` bodies.
        types = os.path.join(work, "reprise.d.ts")
        out, code = run("typescript", [f"{node}/node_modules/.bin/openapi-typescript",
                                       document, "--output", types])
        if code:
            fail("openapi-typescript refuses the document", out)
        with open(types) as f:
            ts = f.read()
        kept = 0
        for operation in ("appointments_import", "calls_import"):
            # The operation's declaration, up to its answers: its body must be there.
            start = ts.find(f"    {operation}: {{")
            end = ts.find("responses: {", start)
            kept += start >= 0 and '"text/csv": string;' in ts[start:end]
        print(f"openapi.typescript_csv_operations={kept}")
        if kept != 2:
            fail("openapi-typescript dropped a CSV import", ts[:2000])
        if server.panics():
            sys.exit(f"openapi: the server panicked (log: {server.log_path})")
    print(f"openapi.seconds={time.monotonic() - started:.1f}")


if __name__ == "__main__":
    main()
