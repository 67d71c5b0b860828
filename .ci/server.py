"""A real `reprise serve` for the CI scripts (.ci/schemathesis.py, .ci/openapi.py).

    with Server(binary, database_url) as server:
        tokens = server.seed()                # one account per role, something to find
        server.request("GET", "/api/v1/sites", tokens["admin"])

The database is migrated here (a fresh one is expected); the server listens on a free port of
127.0.0.1, writes its emails to a temporary folder and its log (JSON) to `server.log`. Rate
limits are off: budgets would turn the runs into documented 429s (they have their own tests,
tests/api/ratelimit.rs and tests/api/security.rs). The work folder is kept when the `with`
block fails, for its log.
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, token=None, body=None):
    """`(status, text)` of a JSON request; urllib raises HTTPError on 4xx and 5xx."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read().decode()


class Server:
    def __init__(self, binary, database, prefix="reprise-ci-"):
        self.binary = os.path.abspath(binary) if os.sep in binary else binary
        self.work = tempfile.mkdtemp(prefix=prefix)
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = os.path.join(self.work, "serve.log")
        self.env = dict(
            os.environ,
            REPRISE_DATABASE_URL=database,
            REPRISE_BIND=f"127.0.0.1:{port}",
            REPRISE_OUTBOX_DIR=os.path.join(self.work, "outbox"),
            REPRISE_LOG_FORMAT="json",
            REPRISE_RATE_WRITES="0",
            REPRISE_RATE_READS="0",
            # Requests without a token would make 127.0.0.1 wait, and searches would use up
            # the accounts' patients.
            REPRISE_RATE_ANONYMOUS="0",
            REPRISE_PATIENTS_PER_HOUR="0",
        )
        self.process = None
        self.log = None

    def reprise(self, *args):
        """Runs a sub-command on the same database; its stdout."""
        done = subprocess.run(
            [self.binary, *args], env=self.env, check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    def start(self):
        self.reprise("migrate")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [self.binary, "serve"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        for _ in range(300):
            try:
                if request("GET", f"{self.base}/health")[0] == 200:
                    return self
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        sys.exit(f"the server did not start (log: {self.log_path})")

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def request(self, method, path, token=None, body=None):
        return request(method, f"{self.base}{path}", token, body)

    def seed(self):
        """An account per role (the secretary bound to SCH-CHIR) and something to find: a
        site, a service, a patient. Returns the tokens by role."""
        admin = self.reprise("token", "create", "--name", "CI admin", "--role", "admin")
        self.request("POST", "/api/v1/sites", admin,
                     {"code": "SCH", "name": "Schemathesis", "kind": "hospital",
                      "operating_rooms": 2})
        self.request("POST", "/api/v1/services", admin,
                     {"code": "SCH-CHIR", "name": "Chirurgie", "site": "SCH"})
        self.request("POST", "/api/v1/patients", admin,
                     {"last_name": "Peeters", "first_name": "Anne", "birth_date": "1961-03-02",
                      "language": "nl"})
        return {
            "admin": admin,
            "coordinator": self.reprise("token", "create", "--name", "S c", "--role",
                                        "coordinator"),
            "secretary": self.reprise("token", "create", "--name", "S s", "--role", "secretary",
                                      "--service", "SCH-CHIR"),
            "agent": self.reprise("token", "create", "--name", "S a", "--role", "agent"),
        }

    def panics(self):
        """Lines of the log that tell of a panic."""
        with open(self.log_path) as log:
            return sum("panicked" in line for line in log)

    def __enter__(self):
        return self.start()

    def __exit__(self, kind, value, traceback):
        self.stop()
        if kind is None:
            shutil.rmtree(self.work, ignore_errors=True)
        return False


