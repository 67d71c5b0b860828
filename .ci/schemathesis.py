#!/usr/bin/env python3
"""Hostile input generated from the contract: schemathesis against a real `reprise serve`.

    .ci/schemathesis.py REPRISE_BINARY SCHEMATHESIS_BINARY DATABASE_URL

Starts the binary on DATABASE_URL (migrated here; a fresh database), creates one account per
role, and runs schemathesis against /api/openapi.json once per role's token: every phase
(examples, coverage, fuzzing, stateful), every check but `positive_data_acceptance`. That one
is left out on purpose: the API checks rules a JSON Schema cannot state (national-number
checksums, references that must exist, a date after another), so schema-valid data is often,
and rightly, refused with a documented 422.

It then reads the server's own request counter (`reprise_http_requests_total`) and fails
unless at least 10,000 requests were served, none answered 5xx, the server did not panic and
every schemathesis run passed. Figures are printed one per line (docs/reliability.md).

REPRISE_SCHEMATHESIS_EXAMPLES sets the examples per operation and role (default 100).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

MIN_REQUESTS = 10_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, token=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read().decode()


def main():
    # Paths made absolute: schemathesis runs in the run's own folder.
    binary, schemathesis = (os.path.abspath(p) if os.sep in p else p for p in sys.argv[1:3])
    database = sys.argv[3]
    examples = os.environ.get("REPRISE_SCHEMATHESIS_EXAMPLES", "100")
    work = tempfile.mkdtemp(prefix="reprise-schemathesis-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        REPRISE_DATABASE_URL=database,
        REPRISE_BIND=f"127.0.0.1:{port}",
        REPRISE_OUTBOX_DIR=os.path.join(work, "outbox"),
        REPRISE_LOG_FORMAT="json",
        # Budgets would turn most of the run into documented 429s; they have their own test.
        REPRISE_RATE_WRITES="0",
        REPRISE_RATE_READS="0",
        # Its requests without a token would make 127.0.0.1 wait, and its searches would use
        # up the accounts' patients; both limits have their tests (tests/api/security.rs).
        REPRISE_RATE_ANONYMOUS="0",
        REPRISE_PATIENTS_PER_HOUR="0",
    )

    def reprise(*args):
        done = subprocess.run(
            [binary, *args], env=env, check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    reprise("migrate")
    admin = reprise("token", "create", "--name", "Schemathesis admin", "--role", "admin")
    log_path = os.path.join(work, "serve.log")
    log = open(log_path, "w")
    server = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                if request("GET", f"{base}/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            sys.exit("the server did not start")
        # Something to find: a site, a service (a secretary needs one), a patient.
        request("POST", f"{base}/api/v1/sites", admin,
                {"code": "SCH", "name": "Schemathesis", "kind": "hospital", "operating_rooms": 2})
        request("POST", f"{base}/api/v1/services", admin,
                {"code": "SCH-CHIR", "name": "Chirurgie", "site": "SCH"})
        request("POST", f"{base}/api/v1/patients", admin,
                {"last_name": "Peeters", "first_name": "Anne", "birth_date": "1961-03-02",
                 "language": "nl"})
        tokens = {
            "admin": admin,
            "coordinator": reprise("token", "create", "--name", "S c", "--role", "coordinator"),
            "secretary": reprise("token", "create", "--name", "S s", "--role", "secretary",
                                 "--service", "SCH-CHIR"),
            "agent": reprise("token", "create", "--name", "S a", "--role", "agent"),
        }
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
        server.terminate()
        server.wait(timeout=30)
        log.close()

    total = server_errors = 0
    for line in metrics.splitlines():
        if line.startswith("reprise_http_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            total += int(float(value))
            if 'status="5' in labels:
                server_errors += int(float(value))
    panics = sum("panicked" in line for line in open(log_path))
    print(f"schemathesis.requests={total}")
    print(f"schemathesis.server_errors={server_errors}")
    print(f"schemathesis.panics={panics}")
    print(f"schemathesis.failed_roles={','.join(failed) or 'none'}")
    if failed or server_errors or panics or total < MIN_REQUESTS:
        sys.exit(f"schemathesis: failed (log: {log_path})")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
