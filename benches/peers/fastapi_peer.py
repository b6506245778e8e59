#!/usr/bin/env python3
"""The FastAPI peer: pshub's time-to-bill work (benches/peers/ttb.py) behind
`POST /v1/events`, on uvicorn (uvloop, httptools, one process), SQLite in WAL mode with
synchronous=FULL and one commit (fsync) per event, before the answer.

    fastapi_peer.py --db FILE [--listen 127.0.0.1:8090]

Routes, shaped as pshub's:
    POST /v1/events          one event or an array of events; {"results": [{id, status, reason}]}
    GET  /v1/summary         the figures to compare with pshub's GET /v1/summary
    GET  /v1/invoice-lines   ?limit=&cursor=, {"items": [...], "next": cursor-or-null}
    GET  /v1/stats           peak memory of the process
    GET  /healthz
The reference data is loaded by POSTing reference.jsonl's events first.
"""

import argparse
import json
import os
import resource
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ttb  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402


def _raw(value) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def make_app(db_path: str) -> FastAPI:
    db = ttb.connect(db_path, "FULL")
    hub = ttb.Hub(db)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    def error(status, code, message):
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)

    # `async def` on purpose: the handler runs on the event loop, one at a time, so the
    # single SQLite writer needs no lock and events apply in the order they arrive.
    @app.post("/v1/events")
    async def events(request: Request):
        body = await request.body()
        try:
            value = json.loads(body, parse_float=Decimal, object_pairs_hook=ttb._no_duplicate_keys)
        except ttb.DuplicateKey as e:
            return error(400, "bad_request", f"{e}: appears twice in one object")
        except ValueError as e:
            return error(400, "bad_request", f"the body is not JSON: {e}")
        batch = value if isinstance(value, list) else [value]
        if len(batch) > 10_000:
            return error(413, "too_large", "at most 10,000 events per request")
        results = []
        for event in batch:
            hub.begin()
            try:
                status, event_id, reason = hub.ingest_value(event, _raw(event))
                hub.commit()
            except Exception:
                db.execute("ROLLBACK")
                raise
            result = {"id": event_id, "status": status}
            if reason:
                result["reason"] = reason
            results.append(result)
        return {"results": results}

    @app.get("/v1/summary")
    async def summary():
        return ttb.summary(db)

    @app.get("/v1/invoice-lines")
    async def invoice_lines(limit: int = 100, cursor: int = 0):
        limit = max(1, min(limit, 1000))
        rows = db.execute(
            "SELECT id, kind, source_id, posting, project_code, worker_id, date, quantity, rate, rate_currency, fx_rate, amount, currency FROM invoice_lines WHERE id > ? ORDER BY id LIMIT ?",
            (cursor, limit + 1)).fetchall()
        names = ("id", "kind", "source_id", "posting", "project_code", "worker_id", "date", "quantity",
                 "rate", "rate_currency", "fx_rate", "amount", "currency")
        items = [dict(zip(names, r), status="posted") for r in rows[:limit]]
        return {"items": items, "next": str(items[-1]["id"]) if len(rows) > limit else None}

    @app.get("/v1/stats")
    async def stats():
        return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}

    @app.get("/healthz")
    async def healthz():
        return Response('{"status":"ok"}', media_type="application/json")

    return app


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="SQLite file of the peer (created if missing)")
    ap.add_argument("--listen", default="127.0.0.1:8090", help="HOST:PORT (default 127.0.0.1:8090)")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        ap.error(f"--listen: '{args.listen}' is not HOST:PORT")
    import uvicorn

    uvicorn.run(make_app(args.db), host=host, port=int(port), loop="uvloop", http="httptools",
                access_log=False, log_level="warning", workers=1)


if __name__ == "__main__":
    main()
