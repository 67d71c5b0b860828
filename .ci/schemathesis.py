#!/usr/bin/env python3
"""Hostile input generated from the contract: schemathesis against a real `reprise serve`.

    .ci/schemathesis.py REPRISE_BINARY SCHEMATHESIS_BINARY DATABASE_URL

Starts the binary on DATABASE_URL (migrated here; a fresh database), creates one account per
role (.ci/server.py, shared with .ci/openapi.py), and runs schemathesis against
/api/openapi.json once per role's token: every phase (examples, coverage, fuzzing, stateful),
every check but `positive_data_acceptance`. That one
is left out on purpose: the API checks rules a JSON Schema cannot state (national-number
checksums, references that must exist, a date after another), so schema-valid data is often,
and rightly, refused with a documented 422.

It then reads the server's own request counter (`reprise_http_requests_total`) and fails
unless at least 10,000 requests were served, none answered 5xx, the server did not panic and
every schemathesis run passed. Figures are printed one per line (docs/reliability.md).

REPRISE_SCHEMATHESIS_EXAMPLES sets the examples per operation and role (default 100).
"""

import os
import shutil
import subprocess
import sys
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import Server, request  # noqa: E402

MIN_REQUESTS = 10_000


def main():
    # Paths made absolute: schemathesis runs in the run's own folder.
    schemathesis = os.path.abspath(sys.argv[2]) if os.sep in sys.argv[2] else sys.argv[2]
    examples = os.environ.get("REPRISE_SCHEMATHESIS_EXAMPLES", "100")
    server = Server(sys.argv[1], sys.argv[3], prefix="reprise-schemathesis-")
    work, base = server.work, server.base
    server.start()
    try:
        tokens = server.seed()
        failed = []
        # The admin's run may switch the call centre off or create and delete things: last.
        for role in ["coordinator", "secretary", "agent", "admin"]:
            token = tokens[role]
            print(f"== schemathesis as {role}", flush=True)
            run = subprocess.run(
                [schemathesis, "run", f"{base}/api/openapi.json",
                 "--header", f"Authorization: Bearer {token}",
                 "--checks", "all", "--exclude-checks", "positive_data_acceptance",
                 "--max-examples", examples, "--seed", "20220514",
                 "--request-timeout", "30"],
                capture_output=True, text=True,
                # Its cache of examples goes to the run's folder, not the checkout.
                cwd=work,
            )
            out = run.stdout + run.stderr
            # The summary; the whole report on failure.
            print(out if run.returncode else "\n".join(out.splitlines()[-14:]), flush=True)
            if run.returncode:
                failed.append(role)
            # Every role's token must still be known (a 403 is a known token without the
            # right), or the later runs tested nothing but 401s.
            for other, t in tokens.items():
                try:
                    request("GET", f"{base}/api/v1/sites", t)
                except urllib.error.HTTPError as e:
                    if e.code == 401:
                        sys.exit(f"the {other} token stopped working after the {role} run")

        _, metrics = request("GET", f"{base}/metrics")
    finally:
        server.stop()

    total = server_errors = 0
    for line in metrics.splitlines():
        if line.startswith("reprise_http_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            total += int(float(value))
            if 'status="5' in labels:
                server_errors += int(float(value))
    panics = server.panics()
    print(f"schemathesis.requests={total}")
    print(f"schemathesis.server_errors={server_errors}")
    print(f"schemathesis.panics={panics}")
    print(f"schemathesis.failed_roles={','.join(failed) or 'none'}")
    if failed or server_errors or panics or total < MIN_REQUESTS:
        sys.exit(f"schemathesis: failed (log: {server.log_path})")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
