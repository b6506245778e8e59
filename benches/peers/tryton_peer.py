"""Tryton's own batched ceiling, and the helpers of benches/tryton_post.sh.

  tryton_peer.py data DIR N            writes DIR/reference.jsonl and DIR/work.jsonl: a rate
                                       card, 20 hired and assigned consultants, 10 won deals
                                       in EUR, and N approved entries in October 2026
  tryton_peer.py ceiling URL N BATCH   the same 10 projects, tasks and 20 employees made in
                                       Tryton (untimed), then N timesheet lines created BATCH
                                       to a call, back to back (timed): prints JSON
  tryton_peer.py wait DB N SECONDS     waits until Tryton's database file DB holds N
                                       timesheet lines; prints the seconds it waited
  tryton_peer.py provisioned URL SECONDS
                                       waits until Tryton holds the 10 projects and the 20
                                       employees of the reference data
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/tryton"))
from rpc import Rpc, dec, day, hours  # noqa: E402

PROJECTS, WORKERS = 10, 20
HOURS = ["0.5", "1", "1.5", "2", "4", "6", "7.5", "8"]


def event(source, eid, kind, data):
    return {"id": eid, "source": source, "type": kind, "schema_version": 1,
            "occurred_at": "2026-10-01T09:00:00Z", "data": data}


N = 1


def entry(i):
    """The i-th of N entries: approvals come in date order through the month, as a PSA
    sends them, over every project and worker."""
    return (f"P-{i % PROJECTS:02d}", f"W-{i % WORKERS:03d}", 1 + i * 28 // N, HOURS[i % len(HOURS)])


def data(folder, n):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "reference.jsonl"), "w") as f:
        f.write(json.dumps(event("psa", "rc", "rate_card.upserted", {
            "rate_card_id": "RC-B", "currency": "EUR",
            "rates": [{"role": "consultant", "region": "emea", "rate": "150.00", "valid_from": "2026-01-01"}]})) + "\n")
        for p in range(PROJECTS):
            code = f"P-{p:02d}"
            f.write(json.dumps(event("crm", f"won-{code}", "opportunity.closed_won", {
                "opportunity_id": f"OPP-{code}",
                "customer": {"customer_id": f"C-{p:02d}", "legal_name": f"Client {p} GmbH", "tax_id": f"DE{p:05d}",
                             "country": "DE", "currency": "EUR"},
                "contract": {"contract_id": f"K-{code}", "billing_model": "time_and_materials", "currency": "EUR",
                             "rate_card_id": "RC-B", "start": "2026-01-01"},
                "project": {"project_code": code, "name": "Rollout", "legal_entity": "DE01", "region": "emea",
                            "service_line": "advisory"}})) + "\n")
        for w in range(WORKERS):
            worker = f"W-{w:03d}"
            f.write(json.dumps(event("hris", f"hire-{worker}", "worker.hired", {
                "worker_id": worker, "effective_date": "2026-01-01", "legal_entity": "DE01", "region": "emea",
                "cost_center": "CC1", "role": "consultant", "grade": "G2"})) + "\n")
            for p in range(PROJECTS):
                f.write(json.dumps(event("psa", f"a-{worker}-{p}", "assignment.changed", {
                    "assignment_id": f"A-{worker}-{p}", "version": 1, "worker_id": worker,
                    "project_code": f"P-{p:02d}", "role": "consultant", "start": "2026-01-01",
                    "end": "2026-12-31", "hours": "100000", "state": "approved"})) + "\n")
    with open(os.path.join(folder, "work.jsonl"), "w") as f:
        for i in range(n):
            project, worker, d, h = entry(i)
            f.write(json.dumps(event("psa", f"ok-{i}", "time_entry.approved", {
                "entry_id": f"TB-{i}", "worker_id": worker, "project_code": project,
                "work_date": f"2026-10-{d:02d}", "hours": h, "billable": True})) + "\n")


def ceiling(url, n, batch):
    rpc = Rpc(url, "tryton")
    rpc.wait_ready()
    rpc.login("pshub", "pshub-connector")
    m = rpc.model
    (product,) = m("product.product", "search", [["name", "=", "Consulting hour"]], 0, 1, None)
    works = {}
    for p in range(PROJECTS):
        (party,) = m("party.party", "create", [{"name": f"Client {p} GmbH", "code": f"C-{p:02d}",
                                                 "addresses": [["create", [{}]]]}])
        (project,) = m("project.work", "create", [{
            "name": f"P-{p:02d} Rollout", "type": "project", "party": party, "project_invoice_method": "timesheet",
            "product": product, "list_price": dec("0"), "comment": f"pshub:project:P-{p:02d}",
            "timesheet_available": False}])
        (task,) = m("project.work", "create", [{
            "name": "consultant @ 150.00 EUR", "type": "task", "parent": project, "product": product,
            "list_price": dec("150.00"), "timesheet_available": True}])
        works[f"P-{p:02d}"] = m("project.work", "read", [task], ["timesheet_works"])[0]["timesheet_works"][0]
    employees = {}
    for w in range(WORKERS):
        (party,) = m("party.party", "create", [{"name": f"W-{w:03d}", "code": f"EMP-W-{w:03d}"}])
        (employee,) = m("company.employee", "create", [{"party": party, "company": rpc.ctx["company"]}])
        employees[f"W-{w:03d}"] = employee
    started = time.time()
    for first in range(0, n, batch):
        lines = []
        for i in range(first, min(n, first + batch)):
            project, worker, d, h = entry(i)
            lines.append({"employee": employees[worker], "work": works[project], "date": day(2026, 10, d),
                          "duration": hours(h), "description": f"pshub:TB-{i}:1"})
        m("timesheet.line", "create", lines)
    seconds = time.time() - started
    print(json.dumps({"who": f"Tryton's batched create, {batch} lines a call", "lines": n,
                      "seconds": round(seconds, 2), "lines_per_second": round(n / seconds)}))


def wait(database, n, seconds):
    """Counts in Tryton's own SQLite file, read-only, so that counting takes none of the
    server's time (its GIL is what the benchmark measures)."""
    import sqlite3

    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    started = time.time()
    while True:
        (count,) = db.execute("SELECT count(*) FROM timesheet_line").fetchone()
        if count >= n:
            print(json.dumps({"lines": count, "seconds": round(time.time() - started, 2)}))
            return
        if time.time() - started > seconds:
            raise SystemExit(f"only {count} of {n} lines reached Tryton in {seconds} s")
        time.sleep(0.1)


def provisioned(url, seconds):
    rpc = Rpc(url, "tryton")
    rpc.login("admin", "admin")
    started = time.time()
    while True:
        projects = rpc.model("project.work", "search_count", [["type", "=", "project"]], 0, None)
        employees = rpc.model("company.employee", "search_count", [], 0, None, ctx={**rpc.ctx, "active_test": False})
        if projects >= PROJECTS and employees >= WORKERS:
            return
        if time.time() - started > seconds:
            raise SystemExit(f"{projects} projects and {employees} employees in Tryton after {seconds} s")
        time.sleep(0.25)


if __name__ == "__main__":
    what = sys.argv[1]
    if what in ("data", "ceiling"):
        N = int(sys.argv[3])
    if what == "data":
        data(sys.argv[2], int(sys.argv[3]))
    elif what == "ceiling":
        ceiling(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif what == "provisioned":
        provisioned(sys.argv[2], float(sys.argv[3]))
    elif what == "wait":
        wait(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        raise SystemExit(__doc__)
