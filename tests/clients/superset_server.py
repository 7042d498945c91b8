"""A stock Apache Superset (from .venv-superset, scripts/clients/install-superset.sh) for the
client tests: one process per test module that imports the `superset` fixture, with only
SECRET_KEY and its own SQLite metadata database in superset_config.py, driven through its
REST API as an admin.
"""
import os
import secrets
import socket
import subprocess
import tempfile
import textwrap
import time

import pytest
import requests

from conftest import ROOT

VENV = os.environ.get("SALESPULSE_SUPERSET_VENV", os.path.join(ROOT, ".venv-superset"))
SUPERSET = os.path.join(VENV, "bin", "superset")
ADMIN = ("admin", "superset-admin-pass")
STARTUP_TIMEOUT = 300

# For a test module's `pytestmark`: a skip on a developer's machine without Superset, a
# failure in the test command (scripts/test.sh sets SALESPULSE_CLIENTS_REQUIRED), which
# installs it.
requires_superset = pytest.mark.skipif(
    not os.path.exists(SUPERSET) and not os.environ.get("SALESPULSE_CLIENTS_REQUIRED"),
    reason=f"{SUPERSET} missing: run scripts/clients/install-superset.sh",
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Superset:
    """A logged-in REST client of one Superset process."""

    def __init__(self, base, log_path, env=None, home=None):
        self.base = base
        self.log_path = log_path
        self.env = env  # the environment its `superset` CLI commands need (same metadata database)
        self.home = home
        self.http = requests.Session()
        self.databases = {}  # uri name -> database id, or the exception creating it raised
        self.datasets = {}  # (uri name, table) -> dataset id, or exception

    def login(self):
        r = self.http.post(f"{self.base}/api/v1/security/login",
                           json={"username": ADMIN[0], "password": ADMIN[1], "provider": "db", "refresh": True})
        r.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        r = self.http.get(f"{self.base}/api/v1/security/csrf_token/")
        r.raise_for_status()
        self.http.headers["X-CSRFToken"] = r.json()["result"]
        self.http.headers["Referer"] = self.base

    def call(self, method, path, expect=(200,), **kwargs):
        r = self.http.request(method, f"{self.base}{path}", timeout=120, **kwargs)
        if r.status_code not in expect:
            raise AssertionError(f"{method} {path} -> HTTP {r.status_code}: {r.text[:4000]}\n"
                                 f"--- Superset log (tail) ---\n{self.log_tail()}")
        return r.json()

    def cli(self, *args):
        """Runs `superset ARGS` against this instance's metadata database."""
        return subprocess.run([SUPERSET, *args], env=self.env, cwd=self.home, capture_output=True, text=True)

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


@pytest.fixture(scope="module")
def superset():
    home = tempfile.mkdtemp(prefix="salespulse-superset-")
    config = os.path.join(home, "superset_config.py")
    with open(config, "w") as f:
        # Stock Superset: only what it refuses to start without, and its metadata database.
        f.write(textwrap.dedent(f"""
            SECRET_KEY = {secrets.token_urlsafe(42)!r}
            SQLALCHEMY_DATABASE_URI = {"sqlite:///" + os.path.join(home, "superset.db")!r}
        """))
    env = dict(os.environ, SUPERSET_CONFIG_PATH=config, SUPERSET_HOME=home, FLASK_APP="superset",
               PYTHONUNBUFFERED="1")
    env.pop("VIRTUAL_ENV", None)
    log_path = os.path.join(home, "superset.log")
    for args in (["db", "upgrade"],
                 ["fab", "create-admin", "--username", ADMIN[0], "--password", ADMIN[1],
                  "--firstname", "Sales", "--lastname", "Admin", "--email", "admin@example.com"],
                 ["init"]):
        done = subprocess.run([SUPERSET, *args], env=env, cwd=home, capture_output=True, text=True)
        assert done.returncode == 0, f"superset {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    port = _free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen([SUPERSET, "run", "-h", "127.0.0.1", "-p", str(port), "--with-threads"],
                            env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT)
    client = Superset(f"http://127.0.0.1:{port}", log_path, env=env, home=home)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"superset run exited with {proc.returncode}:\n{client.log_tail(80)}")
        try:
            if requests.get(f"{client.base}/health", timeout=2).text.strip() == "OK":
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"superset did not answer /health in {STARTUP_TIMEOUT}s:\n{client.log_tail(80)}")
        time.sleep(0.5)  # polling interval
    client.login()
    yield client
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
