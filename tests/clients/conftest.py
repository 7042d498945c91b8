"""Starts the salespulse binary that `cargo test` built, on a free port, with demo data.

The server prints the address it bound; the fixture reads it instead of sleeping.
"""
import os
import re
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("SALESPULSE_BIN", os.path.join(ROOT, "target", "debug", "salespulse"))


@pytest.fixture(scope="session")
def server():
    data = tempfile.mkdtemp(prefix="salespulse-clients-")
    proc = subprocess.Popen(
        [BINARY, "demo", "--scale", "0.01", "--seed", "42", "--as-of", "2026-06-15T12:00:00Z",
         "--data", data, "--flight-sql", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    address = None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        match = re.search(r"over Arrow Flight SQL on (\S+) ", line)
        if match:
            address = match.group(1)
            break
    if address is None:
        proc.kill()
        raise RuntimeError("salespulse demo did not start:\n" + "".join(seen))
    yield f"grpc://{address}"
    proc.terminate()
    proc.wait(timeout=30)
