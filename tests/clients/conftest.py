"""Starts the salespulse binary that `cargo test` built, on free ports, with demo data.

Two servers: `salespulse demo` (one tenant, no authentication, as a user first meets it)
and `salespulse serve --config` with two tenants and two users (authentication and tenant
isolation). Each prints the addresses it bound; the fixtures read them instead of sleeping.
"""
import hashlib
import os
import re
import subprocess
import tempfile
import textwrap
import threading
from dataclasses import dataclass

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("SALESPULSE_BIN", os.path.join(ROOT, "target", "debug", "salespulse"))

ANALYST_PASSWORD = "analyst-pass-1"
ADMIN_PASSWORD = "admin-pass-2"
# A static API token of the analyst (`salespulse api-token` makes real ones); the config
# holds only its SHA-256.
ANALYST_API_TOKEN = "spk_test-token-of-the-analyst-0123456789"


@dataclass
class Server:
    flight: str  # host:port
    postgres: str  # host:port
    tls: bool = False
    http: str = ""  # host:port of the operations endpoint

    @property
    def grpc(self) -> str:
        return f"grpc+tls://{self.flight}" if self.tls else f"grpc://{self.flight}"

    @property
    def sslmode(self) -> str:
        return "require" if self.tls else "disable"

    @property
    def pg_host(self) -> str:
        return self.postgres.rsplit(":", 1)[0]

    @property
    def pg_port(self) -> int:
        return int(self.postgres.rsplit(":", 1)[1])


def _drain(proc, log_path):
    # The server logs every query (the audit log) to stdout: once started it must still be
    # read, or the 64 KiB pipe fills and the server blocks writing its next log line.
    with open(log_path, "a") as log:
        for line in proc.stdout:
            log.write(line)
            log.flush()


def _start(args, pattern, env=None):
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            proc.log_path = tempfile.mkstemp(prefix="salespulse-server-", suffix=".log")[1]
            with open(proc.log_path, "w") as log:
                log.writelines(seen)
            proc.drain = threading.Thread(target=_drain, args=(proc, proc.log_path), daemon=True)
            proc.drain.start()
            return proc, match
    proc.kill()
    raise RuntimeError(f"{' '.join(args)} did not start:\n" + "".join(seen))


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def demo():
    data = tempfile.mkdtemp(prefix="salespulse-clients-")
    proc, match = _start(
        [BINARY, "demo", "--scale", "0.01", "--seed", "42", "--as-of", "2026-06-15T12:00:00Z",
         "--data", data, "--flight-sql", "127.0.0.1:0", "--postgres", "127.0.0.1:0", "--http", "127.0.0.1:0"],
        r"over Arrow Flight SQL on (\S+) and PostgreSQL on (\S+?); operations over HTTP on (\S+?)\.?$",
    )
    yield Server(flight=match.group(1), postgres=match.group(2), http=match.group(3))
    _stop(proc)


@pytest.fixture(scope="session")
def server(demo):
    """The demo server's Flight SQL URI (ADBC style)."""
    return demo.grpc


@pytest.fixture(scope="session")
def secured():
    """Tenants `acme` and `demo`; `analyst` reads acme only, `admin` reads both; TLS on both
    protocols with a self-signed certificate."""
    folder = tempfile.mkdtemp(prefix="salespulse-secured-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", os.path.join(folder, "key.pem"), "-out", os.path.join(folder, "cert.pem")],
                   check=True, capture_output=True)
    config = os.path.join(folder, "salespulse.toml")
    with open(config, "w") as f:
        f.write(textwrap.dedent("""
            [storage]
            root = "data"

            [server]
            flight_sql = "127.0.0.1:0"
            postgres = "127.0.0.1:0"
            http = "127.0.0.1:0"
            tls_cert = "cert.pem"
            tls_key = "key.pem"

            [limits]
            query_timeout_seconds = 3
            max_result_rows = 200000
            failed_logins_per_minute = 50

            [[users]]
            name = "analyst"
            password_env = "SALESPULSE_TEST_ANALYST_PASSWORD"
            api_token_sha256 = "ANALYST_API_TOKEN_SHA256"
            tenants = ["acme"]

            [[users]]
            name = "admin"
            password_env = "SALESPULSE_TEST_ADMIN_PASSWORD"
            tenants = ["*"]

            [[tenants]]
            name = "acme"
            timezone = "Europe/Moscow"
            [tenants.source]
            kind = "demo"
            scale = 0.01
            seed = 7

            [[tenants]]
            name = "demo"
            timezone = "Europe/Moscow"
            [tenants.source]
            kind = "demo"
            scale = 0.01
            seed = 42
        """).replace("ANALYST_API_TOKEN_SHA256", hashlib.sha256(ANALYST_API_TOKEN.encode()).hexdigest()))
    env = dict(os.environ)
    env["SALESPULSE_TEST_ANALYST_PASSWORD"] = ANALYST_PASSWORD
    env["SALESPULSE_TEST_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    env.setdefault("RUST_LOG", "info")
    subprocess.run([BINARY, "refresh", "--config", config], check=True, env=env, capture_output=True, text=True)
    proc, match = _start([BINARY, "serve", "--config", config], r"Flight SQL on (\S+), PostgreSQL on (\S+), HTTP on (\S+), (?:no )?TLS", env)
    yield Server(flight=match.group(1), postgres=match.group(2), tls=True, http=match.group(3))
    _stop(proc)


@pytest.fixture(scope="session")
def fresh():
    """`salespulse serve` on a config whose tenant has no snapshot yet and refreshes every
    minute: the server refreshes it at start (refresh_on_start) and on its schedule."""
    folder = tempfile.mkdtemp(prefix="salespulse-fresh-")
    config = os.path.join(folder, "salespulse.toml")
    with open(config, "w") as f:
        f.write(textwrap.dedent("""
            [storage]
            root = "data"

            [server]
            flight_sql = "127.0.0.1:0"
            postgres = "127.0.0.1:0"
            http = "127.0.0.1:0"

            [[tenants]]
            name = "ops"
            timezone = "Europe/Moscow"
            schedule = "0 3 * * *"
            [tenants.source]
            kind = "demo"
            scale = 0.01
            seed = 3
        """))
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    proc, match = _start([BINARY, "serve", "--config", config], r"Flight SQL on (\S+), PostgreSQL on (\S+), HTTP on (\S+), (?:no )?TLS", env)
    yield Server(flight=match.group(1), postgres=match.group(2), http=match.group(3))
    _stop(proc)
