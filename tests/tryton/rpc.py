"""A JSON-RPC client of Tryton 8.2 with the standard library only, for the baseline setup
and the benchmark peers (TRYTON.md section 3: the body is exactly {id, method, params};
the session header is `Session base64(login:user_id:token)`; the context comes last)."""

import base64
import json
import time
import urllib.error
import urllib.request


def dec(text):
    return {"__class__": "Decimal", "decimal": text}


def day(y, m, d):
    return {"__class__": "date", "year": y, "month": m, "day": d}


def hours(h):
    return {"__class__": "timedelta", "seconds": float(h) * 3600}


class Rpc:
    def __init__(self, url, db):
        self.url, self.db = url, db
        self.auth = None
        self.n = 0
        self.ctx = {"language": "en"}

    def call(self, method, params, path=None):
        self.n += 1
        body = json.dumps({"id": self.n, "method": method, "params": params}).encode()
        request = urllib.request.Request(
            f"{self.url}/{self.db}/rpc/" if path is None else f"{self.url}{path}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        if self.auth:
            request.add_header("Authorization", self.auth)
        with urllib.request.urlopen(request, timeout=600) as response:
            answer = json.load(response)
        if answer.get("error"):
            raise SystemExit(f"{method}: {answer['error']}")
        return answer["result"]

    def wait_ready(self, seconds=60):
        deadline = time.time() + seconds
        while True:
            try:
                return self.call("common.server.version", [], path="/rpc/")
            except (OSError, urllib.error.URLError):
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def login(self, login, password):
        user, token, _ = self.call("common.db.login", [login, {"password": password}, "en"])
        self.auth = "Session " + base64.b64encode(f"{login}:{user}:{token}".encode()).decode()
        prefs = self.call("model.res.user.get_preferences", [True, {}])
        if prefs.get("company"):
            self.ctx = {"company": prefs["company"], "companies": [prefs["company"]], "language": "en"}
        return user

    def model(self, name, method, *args, ctx=None):
        return self.call(f"model.{name}.{method}", [*args, self.ctx if ctx is None else ctx])
