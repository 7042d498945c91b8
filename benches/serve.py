"""Starts `salespulse serve` on a demo snapshot under a folder, on free ports, for the
benchmarks; returns the process and the Flight SQL address it printed."""
import json
import os
import re
import subprocess
import threading


def serve_demo(binary, data, timezone="Europe/Moscow", result_cache="256MiB"):
    config = os.path.join(data, "bench.toml")
    with open(config, "w") as f:
        f.write(f'[storage]\nroot = "{data}"\n[server]\nflight_sql = "127.0.0.1:0"\npostgres = "127.0.0.1:0"\n'
                f'http = "127.0.0.1:0"\nresult_cache = "{result_cache}"\n'
                f'[[tenants]]\nname = "demo"\ntimezone = "{timezone}"\n[tenants.source]\nkind = "demo"\n')
    proc = subprocess.Popen([binary, "serve", "--config", config], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RUST_LOG": "info", "NO_COLOR": "1"})
    seen = []
    for line in proc.stderr:
        seen.append(line)
        m = re.search(r"Flight SQL on ([^\s,]+), PostgreSQL on ([^\s,]+),", line)
        if m:
            serve_demo.startup_log = seen
            serve_demo.postgres = m.group(2)
            # Keep reading: the server logs a line per query (the audit), and a full pipe
            # would stall it.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1)
    proc.kill()
    raise RuntimeError("salespulse serve did not start")


def current_snapshot(data, tenant="demo"):
    """The folder and manifest of `tenant`'s current snapshot under the storage root `data`."""
    tenant_folder = os.path.join(data, tenant)
    snapshot = open(os.path.join(tenant_folder, "CURRENT")).read().strip()
    folder = os.path.join(tenant_folder, "snapshots", snapshot)
    return folder, json.load(open(os.path.join(folder, "manifest.json")))
