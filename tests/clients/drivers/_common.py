"""Shared by the driver check scripts: the connection settings (one JSON argument) and the
output, one JSON line per named check: {"check", "ok", "error", "detail"}.

The scripts run in .venv-drivers (scripts/clients/install-drivers.sh), not in the main venv;
tests/clients/test_drivers.py runs them and turns each line into a test.
"""
import json
import sys
import time
import traceback


def settings():
    """{"host", "port", "user", "password", "dbname", "sslmode", "other_tenant"}:
    other_tenant is a tenant the user must not see (None on the demo server)."""
    return json.loads(sys.argv[1])


def emit(name, ok, error="", detail=None):
    line = {"check": name, "ok": bool(ok), "error": error or ""}
    if detail is not None:
        line["detail"] = detail
    print(json.dumps(line, default=str), flush=True)


def one_line(e):
    text = f"{type(e).__module__}.{type(e).__name__}: {e}"
    return " ".join(text.split())[:2000]


def run(name, fn, *args):
    """Runs fn(*args); a falsy return or an exception fails the check. fn may return
    (ok, detail) or a detail (truthy) to report."""
    start = time.monotonic()
    try:
        result = fn(*args)
    except Exception as e:  # noqa: BLE001 - every failure is a report
        emit(name, False, one_line(e), failure_detail(e, start))
        return None
    return _report(name, result)


def failure_detail(e, start):
    detail = {"trace": traceback.format_exc(limit=3)[-1500:], "seconds": round(time.monotonic() - start, 3)}
    for attr in ("statement", "query"):  # SQLAlchemy's StatementError, asyncpg's
        value = getattr(e, attr, None)
        if isinstance(value, str):
            detail["sql"] = value
    return detail


def _report(name, result):
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], bool):
        ok, detail = result
        emit(name, ok, "" if ok else f"unexpected result: {str(detail)[:1500]}", detail)
    else:
        emit(name, bool(result) or result == 0, "" if (result or result == 0) else f"unexpected result: {result!r}", result)
    return result


async def arun(name, fn, *args):
    start = time.monotonic()
    try:
        result = await fn(*args)
    except Exception as e:  # noqa: BLE001
        emit(name, False, one_line(e), failure_detail(e, start))
        return None
    return _report(name, result)


def expect(cond, detail):
    return (bool(cond), detail)


_OMIT = object()


def connect_kwargs(s, dbname=None, ssl_key="ssl", when_disabled=_OMIT):
    """Connection arguments from the settings: `sslmode=require` as a TLS context that
    encrypts without verifying (the test servers' certificates are self-signed), under the
    driver's own name for it (`ssl` for asyncpg, `ssl_context` for pg8000)."""
    import ssl
    kw = dict(host=s["host"], port=s["port"], user=s["user"], database=dbname or s["dbname"], timeout=20)
    if s.get("password"):
        kw["password"] = s["password"]
    if s["sslmode"] != "disable":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        kw[ssl_key] = ctx
    elif when_disabled is not _OMIT:
        kw[ssl_key] = when_disabled
    return kw
