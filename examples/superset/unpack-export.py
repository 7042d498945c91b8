"""Unpacks a dashboard export of Superset (Dashboards -> Export, or
GET /api/v1/dashboard/export/?q=!(ID)) into this directory's readable layout:

    python unpack-export.py dashboard_export_*.zip sales-department

Files are named by chart, dataset and dashboard name (not by id), each chart's
query_context is indented JSON, the database URI is the README's demo server and the
timestamp is fixed, so a re-export after an edit in Superset diffs line by line.
Needs PyYAML (Superset's environment has it).
"""
import json
import os
import re
import shutil
import sys
import zipfile

import yaml

DEMO_URI = "datafusion+flightsql://127.0.0.1:50051?insecure=true"


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper, data):
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _str)


def _slug(name):
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def _dump(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        yaml.dump(data, f, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


def main(archive, out):
    with zipfile.ZipFile(archive) as z:
        # Superset puts everything under one root folder; drop it.
        files = {n.split("/", 1)[1]: yaml.safe_load(z.read(n)) for n in z.namelist() if n.endswith(".yaml")}
    shutil.rmtree(out, ignore_errors=True)
    for name, data in files.items():
        kind = name.split("/")[0]
        if name == "metadata.yaml":
            data["timestamp"] = "2026-06-15T12:00:00+00:00"
            _dump(os.path.join(out, name), data)
        elif kind == "databases":
            data["sqlalchemy_uri"] = DEMO_URI
            _dump(os.path.join(out, "databases", _slug(data["database_name"]) + ".yaml"), data)
        elif kind == "datasets":
            if data.get("sql"):
                data["sql"] = data["sql"].strip() + "\n"
            database = name.split("/")[1]
            _dump(os.path.join(out, "datasets", database, data["table_name"] + ".yaml"), data)
        elif kind == "charts":
            if data.get("query_context"):
                data["query_context"] = json.dumps(json.loads(data["query_context"]), indent=2, ensure_ascii=False) + "\n"
            _dump(os.path.join(out, "charts", _slug(data["slice_name"]) + ".yaml"), data)
        elif kind == "dashboards":
            _dump(os.path.join(out, "dashboards", _slug(data["dashboard_title"]) + ".yaml"), data)
        else:
            raise SystemExit(f"unexpected file in the export: {name}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
