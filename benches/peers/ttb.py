"""Approved time to invoice lines, the way pshub's flow 4 does it, in plain Python.

The shared core of the two peers (batch_peer.py, fastapi_peer.py). It does, per event, the
work pshub's time-to-bill flow does on the benchmark's dataset
(crates/pshub-engine/src/flows/time_to_bill.rs, flows/time_to_bill/rules.rs):

- parse the envelope and `data` with pshub's contract: exact decimals within their bounds,
  ISO 4217 currencies, dates, business keys, a key twice in one object; what breaks it is
  quarantined;
- dedupe by (source, id): the same type and canonical data is a duplicate, other data a
  conflict (kept, not applied, a case for integration);
- reference events (FX, rate cards, deals, HRIS changes, bookings) update the reference
  data, effective-dated as pshub's `World`;
- a time entry or expense runs the checks in pshub's order (worker known, project known,
  worker active, approved assignment, contract covers the date, bill rate, FX rate, tax
  code), is priced exactly with `decimal` (value = round(hours x rate), amount =
  round(value x FX), half away from zero to the currency's minor unit) and becomes one
  invoice line or a case; a rejection after billing posts a reversal; a re-approval with
  the same data is billed once.

Everything is written to SQLite: the inbox (raw and canonical), entries, invoice lines,
cases, quarantine and conflicts. The caller decides how often to commit.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import json
import re
import sqlite3
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext

# ---------------------------------------------------------------------------------------
# Currencies (ISO 4217, as crates/pshub-model/src/currency.rs)

CODES = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL
    BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP
    DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR
    IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD
    MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB
    PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP
    STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED
    VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG""".split()
)
MINOR_UNITS = {
    "BHD": 3, "BIF": 0, "CLF": 4, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0,
    "JOD": 3, "JPY": 0, "KMF": 0, "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0,
    "RWF": 0, "TND": 3, "UGX": 0, "UYI": 0, "UYW": 4, "VND": 0, "VUV": 0, "XAF": 0,
    "XOF": 0, "XPF": 0,
}
_QUANTUM = {n: Decimal(1).scaleb(-n) for n in range(0, 5)}
# Wide enough that every product here is exact before the one rounding.
_EXACT = Context(prec=80)


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get(currency, 2)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half away from zero to the currency's minor unit (ROUND_HALF_UP is away from zero)."""
    return amount.quantize(_QUANTUM[minor_units(currency)], rounding=ROUND_HALF_UP, context=_EXACT)


def dec_text(value: Decimal) -> str:
    """A decimal as pshub writes it: plain digits, no exponent, no trailing zeros."""
    if value == 0:
        return "0"
    text = format(value.normalize(_EXACT), "f")
    return text


# ---------------------------------------------------------------------------------------
# Reading untrusted JSON with pshub's contract (crates/pshub-model/src/fields.rs, decimal.rs)


class Invalid(Exception):
    """A field breaks the contract: `field: problem`."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.event_id = None
        self.source = None


class DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise DuplicateKey(k)
            seen.add(k)
    return d


_DECIMAL = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d*))?\Z")
_MAX_MANTISSA = 2**96 - 1
_TRILLION = Decimal(10**12)


def parse_exact(text: str) -> Decimal:
    """As pshub's `parse_exact`: exactly, or refused (never rounded); normalized."""
    m = _DECIMAL.match(text)
    if not m or (not m.group(2) and not m.group(3)):
        raise ValueError(f"'{text[:48]}' is not a decimal number")
    sign, whole, fraction, exponent = m.group(1), m.group(2), m.group(3) or "", m.group(4)
    exp = 0
    if exponent is not None:
        unsigned = exponent.lstrip("+-")
        if not unsigned or len(exponent) - len(unsigned) > 1:
            raise ValueError(f"'{text[:48]}' is not a decimal number")
        if len(unsigned) > 6:
            raise ValueError(f"'{text[:48]}' is out of range")
        exp = int(exponent)
    digits = (whole + fraction).lstrip("0") or "0"
    scale = len(fraction) - exp
    while scale > 0 and len(digits) > 1 and digits.endswith("0"):
        digits = digits[:-1]
        scale -= 1
    if digits == "0":
        return Decimal(0)
    if scale < 0:
        if len(digits) - scale > 29:
            raise ValueError(f"'{text[:48]}' is too large to hold exactly")
        digits += "0" * (-scale)
        scale = 0
    if scale > 28:
        raise ValueError(f"'{text[:48]}' has more than 28 decimal places and cannot be held exactly")
    if len(digits) > 29:
        raise ValueError(f"'{text[:48]}' has more than 29 significant digits and cannot be held exactly")
    mantissa = int(digits)
    if mantissa > _MAX_MANTISSA:
        raise ValueError(f"'{text[:48]}' is too large to hold exactly")
    # Already normalized: trailing zeros after the point are gone, whole zeros stay.
    return Decimal((1 if sign == "-" else 0, tuple(int(c) for c in digits), -scale))


def _places(value: Decimal) -> int:
    exp = value.as_tuple().exponent
    return -exp if exp < 0 else 0


# Bounds: (floor above zero?, ceiling, inclusive, max places)
HOURS = (True, Decimal(24), True, 28)
RATE = (False, _TRILLION, False, 6)
AMOUNT = (True, _TRILLION, False, 6)
AMOUNT_OR_ZERO = (False, _TRILLION, False, 6)
FX_RATE = (True, _TRILLION, False, 12)
PLANNED_HOURS = (False, _TRILLION, False, 6)


class Obj:
    """A JSON object being read, with its path for errors (as pshub's `fields::Obj`)."""

    __slots__ = ("path", "map")

    def __init__(self, path: str, value):
        if not isinstance(value, dict):
            raise Invalid(path, f"expected an object, got {describe(value)}")
        self.path = path
        self.map = value

    def name(self, name):
        return f"{self.path}.{name}" if self.path else name

    def error(self, name, problem):
        return Invalid(self.name(name), problem)

    def get(self, name):
        return self.map.get(name)  # JSON null counts as absent

    def required(self, name):
        v = self.map.get(name)
        if v is None:
            raise self.error(name, "is required")
        return v

    def str(self, name):
        v = self.required(name)
        if not isinstance(v, str):
            raise self.error(name, f"expected a string, got {describe(v)}")
        return v

    def opt_str(self, name):
        return None if self.map.get(name) is None else self.str(name)

    def key(self, name):
        raw = self.str(name)
        problem = check_key(raw)
        if problem:
            raise self.error(name, problem)
        return raw

    def opt_key(self, name):
        return None if self.map.get(name) is None else self.key(name)

    label = key
    opt_label = opt_key

    def decimal(self, name, bounds):
        v = self.required(name)
        if isinstance(v, str):
            text = v.strip()
        elif isinstance(v, bool) or not isinstance(v, (int, Decimal)):
            raise self.error(name, f"expected a decimal number (string or number), got {describe(v)}")
        else:
            text = str(v)
        try:
            value = parse_exact(text)
        except ValueError as e:
            raise self.error(name, str(e)) from None
        above_zero, ceiling, inclusive, places = bounds
        if above_zero and value <= 0:
            raise self.error(name, f"must be greater than zero, got {dec_text(value)}")
        if not above_zero and value < 0:
            raise self.error(name, f"must not be negative, got {dec_text(value)}")
        if (value > ceiling) if inclusive else (value >= ceiling):
            raise self.error(name, f"is out of bounds, got {dec_text(value)}")
        if _places(value) > places:
            raise self.error(name, f"has {_places(value)} decimal places; at most {places} are allowed")
        return value

    def opt_decimal(self, name, bounds):
        return None if self.map.get(name) is None else self.decimal(name, bounds)

    def date(self, name):
        text = self.str(name)
        if not _DATE.match(text):
            raise self.error(name, f"'{text}' is not a date (YYYY-MM-DD)")
        try:
            _dt.date(int(text[:4]), int(text[5:7]), int(text[8:10]))
        except ValueError:
            raise self.error(name, f"'{text}' is not a date (YYYY-MM-DD)") from None
        return text  # ISO dates compare correctly as text

    def opt_date(self, name):
        return None if self.map.get(name) is None else self.date(name)

    def currency(self, name):
        code = self.str(name)
        if len(code) != 3 or not code.isascii() or not code.isupper() or not code.isalpha():
            raise self.error(name, f"'{code}' is not an ISO 4217 code (three upper-case letters)")
        if code not in CODES:
            raise self.error(name, f"'{code}' is not an active ISO 4217 currency")
        return code

    def bool(self, name):
        v = self.required(name)
        if not isinstance(v, bool):
            raise self.error(name, f"expected true or false, got {describe(v)}")
        return v

    def u32(self, name):
        v = self.required(name)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFF:
            raise self.error(name, f"expected a whole number from 0 to 4294967295, got {describe(v)}")
        return v

    def obj(self, name):
        return Obj(self.name(name), self.required(name))

    def objects(self, name):
        v = self.required(name)
        if not isinstance(v, list):
            raise self.error(name, f"expected an array, got {describe(v)}")
        return [Obj(f"{self.name(name)}[{i}]", item) for i, item in enumerate(v)]

    def opt_objects(self, name):
        return None if self.map.get(name) is None else self.objects(name)

    def one_of(self, name, words):
        text = self.str(name)
        if text not in words:
            raise self.error(name, f"'{text}' is not one of {', '.join(words)}")
        return text


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")


def describe(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, Decimal)):
        return f"the number {v}"
    if isinstance(v, str):
        return f'the string "{v[:40]}"'
    if isinstance(v, list):
        return "an array"
    return "an object"


def check_key(raw: str):
    if not raw:
        return "must not be empty"
    if len(raw.encode()) > 200:
        return f"is {len(raw.encode())} characters long; at most 200 are allowed"
    if raw.strip() != raw:
        return f"'{raw}' has leading or trailing white space"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in raw):
        return "contains a control character"
    return None


def _period(obj: Obj, start: str, end: str):
    a = obj.date(start)
    b = obj.opt_date(end)
    if b is not None and b < a:
        raise obj.error(end, f"{b} is before {start} {a}")
    return a, b


# ---------------------------------------------------------------------------------------
# The records of `data`, each as a canonical dict (decimals as normalized text)

WORK_TYPES = ("time_entry.approved", "time_entry.rejected", "expense.approved", "expense.rejected")
WORKER_KINDS = {
    "worker.hired": "hired",
    "worker.transferred": "transferred",
    "worker.leave_started": "leave_started",
    "worker.leave_ended": "leave_ended",
    "worker.terminated": "terminated",
}
REFERENCE_TYPES = frozenset(
    ["customer.upserted", "opportunity.closed_won", "rate_card.upserted", "cost_rate.upserted",
     "fx_rate.upserted", "assignment.changed", *WORKER_KINDS]
)
ALL_TYPES = frozenset(
    [*REFERENCE_TYPES, *WORK_TYPES, "contract.amended", "milestone.reached",
     "invoice.status_changed", "payroll.actuals"]
)


def _customer(o: Obj):
    country = o.str("country")
    if len(country) != 2 or not (country.isascii() and country.isupper() and country.isalpha()):
        raise o.error("country", f"'{country}' is not an ISO 3166 alpha-2 code")
    return {
        "customer_id": o.key("customer_id"), "legal_name": o.label("legal_name"),
        "tax_id": o.opt_label("tax_id"), "country": country, "currency": o.currency("currency"),
    }


def _milestones(o: Obj):
    items = o.opt_objects("milestones")
    if items is None:
        return None
    return [
        {"milestone_id": m.key("milestone_id"), "name": m.label("name"),
         "amount": m.decimal("amount", AMOUNT)}
        for m in items
    ]


def _contract(o: Obj):
    start, end = _period(o, "start", "end")
    model = o.one_of("billing_model", ("time_and_materials", "fixed_fee", "capped_tm"))
    cap = o.opt_decimal("cap", AMOUNT)
    if model == "capped_tm" and cap is None:
        raise o.error("cap", "is required when billing_model is capped_tm")
    milestones = _milestones(o) or []
    if model == "fixed_fee" and not milestones:
        raise o.error("milestones", "is required (at least one) when billing_model is fixed_fee")
    return {
        "contract_id": o.key("contract_id"), "billing_model": model,
        "currency": o.currency("currency"), "rate_card_id": o.key("rate_card_id"),
        "cap": cap, "milestones": milestones, "start": start, "end": end,
    }


def _project(o: Obj):
    return {
        "project_code": o.key("project_code"), "name": o.label("name"),
        "legal_entity": o.label("legal_entity"), "region": o.label("region"),
        "service_line": o.label("service_line"),
    }


def _worker(kind: str, o: Obj):
    change = {
        "kind": kind, "worker_id": o.key("worker_id"), "effective_date": o.date("effective_date"),
        "legal_entity": o.opt_label("legal_entity"), "region": o.opt_label("region"),
        "cost_center": o.opt_label("cost_center"), "role": o.opt_label("role"),
        "grade": o.opt_label("grade"), "manager_id": o.opt_key("manager_id"),
        "name": o.opt_str("name"), "email": o.opt_str("email"),
    }
    if kind == "hired":
        for name in ("legal_entity", "region", "role"):
            if change[name] is None:
                raise o.error(name, "is required for worker.hired")
    return change


def _rate_card(o: Obj):
    rates = []
    for line in o.objects("rates"):
        valid_from, valid_to = _period(line, "valid_from", "valid_to")
        rates.append({
            "role": line.label("role"), "region": line.label("region"),
            "rate": line.decimal("rate", RATE), "valid_from": valid_from, "valid_to": valid_to,
        })
    return {"rate_card_id": o.key("rate_card_id"), "currency": o.currency("currency"), "rates": rates}


def _cost_rate(o: Obj):
    worker, grade = o.opt_key("worker_id"), o.opt_label("grade")
    if worker is not None and grade is not None:
        raise o.error("grade", "give worker_id or grade, not both")
    if worker is None and grade is None:
        raise o.error("worker_id", "worker_id or grade is required")
    valid_from, valid_to = _period(o, "valid_from", "valid_to")
    return {
        "worker_id": worker, "grade": grade, "currency": o.currency("currency"),
        "hourly_cost": o.decimal("hourly_cost", RATE), "valid_from": valid_from, "valid_to": valid_to,
    }


def _fx_rate(o: Obj):
    rate = {
        "from": o.currency("from"), "to": o.currency("to"), "rate": o.decimal("rate", FX_RATE),
        "valid_on": o.date("valid_on"), "source": o.label("source"),
    }
    if rate["from"] == rate["to"]:
        raise o.error("to", f"is the same currency as from ({rate['from']})")
    return rate


def _assignment(o: Obj):
    start, end = o.date("start"), o.date("end")
    if end < start:
        raise o.error("end", f"{end} is before start {start}")
    return {
        "assignment_id": o.key("assignment_id"), "version": o.u32("version"),
        "worker_id": o.key("worker_id"), "project_code": o.key("project_code"),
        "role": o.label("role"), "start": start, "end": end,
        "hours": o.decimal("hours", PLANNED_HOURS),
        "state": o.one_of("state", ("tentative", "soft", "hard", "approved", "cancelled")),
    }


def _time_entry(o: Obj):
    hours = o.decimal("hours", HOURS)
    return {
        "entry_id": o.key("entry_id"), "worker_id": o.key("worker_id"),
        "project_code": o.key("project_code"), "work_date": o.date("work_date"),
        "hours": hours, "billable": o.bool("billable"), "role": o.opt_label("role"),
        "task": o.opt_label("task"),
    }


def _expense(o: Obj):
    return {
        "expense_id": o.key("expense_id"), "worker_id": o.key("worker_id"),
        "project_code": o.key("project_code"), "spent_on": o.date("spent_on"),
        "amount": o.decimal("amount", AMOUNT), "currency": o.currency("currency"),
        "category": o.label("category"), "billable": o.bool("billable"),
    }


def _amendment(o: Obj):
    changes = o.obj("changes")
    a = {
        "contract_id": o.key("contract_id"), "effective_from": o.date("effective_from"),
        "rate_card_id": changes.opt_key("rate_card_id"), "cap": changes.opt_decimal("cap", AMOUNT),
        "end": changes.opt_date("end"), "milestones": _milestones(changes),
    }
    if a["rate_card_id"] is None and a["cap"] is None and a["end"] is None and a["milestones"] is None:
        raise o.error("changes", "names no change (rate_card_id, cap, end or milestones)")
    return a


def _milestone_reached(o: Obj):
    return {"milestone_id": o.key("milestone_id"), "contract_id": o.key("contract_id"),
            "reached_on": o.date("reached_on")}


def _invoice_status(o: Obj):
    at = o.str("at")
    if not _RFC3339.match(at):
        raise o.error("at", f"'{at}' is not an RFC 3339 timestamp")
    return {"invoice_id": o.key("invoice_id"),
            "status": o.one_of("status", ("draft", "posted", "sent", "paid", "disputed", "void")),
            "at": at}


def _payroll(o: Obj):
    period = o.str("period")
    if not _DATE.match(period + "-01"):
        raise o.error("period", f"'{period}' is not a month (YYYY-MM)")
    return {"worker_id": o.key("worker_id"), "period": period,
            "gross_cost": o.decimal("gross_cost", AMOUNT_OR_ZERO), "currency": o.currency("currency")}


def parse_data(event_type: str, o: Obj):
    if event_type in WORKER_KINDS:
        return _worker(WORKER_KINDS[event_type], o)
    if event_type.startswith("time_entry."):
        return _time_entry(o)
    if event_type.startswith("expense."):
        return _expense(o)
    return {
        "customer.upserted": _customer,
        "opportunity.closed_won": lambda o: {
            "opportunity_id": o.key("opportunity_id"), "customer": _customer(o.obj("customer")),
            "contract": _contract(o.obj("contract")), "project": _project(o.obj("project")),
        },
        "contract.amended": _amendment,
        "rate_card.upserted": _rate_card,
        "cost_rate.upserted": _cost_rate,
        "fx_rate.upserted": _fx_rate,
        "assignment.changed": _assignment,
        "milestone.reached": _milestone_reached,
        "invoice.status_changed": _invoice_status,
        "payroll.actuals": _payroll,
    }[event_type](o)


def _stored(text):
    """A stored canonical record, read back (decimals were written as text)."""
    record = json.loads(text)
    _decimals(record)
    return record


_DECIMAL_FIELDS = frozenset(["rate", "hours", "amount", "cap", "hourly_cost", "gross_cost"])


def _decimals(node):
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in items:
        if isinstance(v, (dict, list)):
            _decimals(v)
        elif isinstance(v, str) and k in _DECIMAL_FIELDS:
            node[k] = Decimal(v)


def _canonical_default(v):
    if isinstance(v, Decimal):
        return dec_text(v)
    raise TypeError(type(v))


def canonical(record) -> str:
    """The record's canonical text: two bodies that parse to the same record have the same text."""
    return json.dumps(record, separators=(",", ":"), default=_canonical_default)


class Parsed:
    __slots__ = ("id", "source", "type", "correlation_id", "data", "canonical")


def parse_event(raw: str, sources) -> Parsed:
    """Parses one event from its text, as pshub's `Event::parse_text`; raises Invalid."""
    try:
        value = json.loads(raw, parse_float=Decimal, object_pairs_hook=_no_duplicate_keys)
    except DuplicateKey as e:
        raise Invalid(str(e), "appears twice in one object; send each key once") from None
    except ValueError as e:
        raise Invalid("", f"is not JSON: {e}") from None
    return parse_value(value, sources)


def parse_value(value, sources) -> Parsed:
    try:
        return _parse_value(value, sources)
    except Invalid as e:
        # The envelope's ids, when readable, go with the answer (as pshub's EventError).
        if isinstance(value, dict):
            e.event_id = value.get("id") if isinstance(value.get("id"), str) else None
            e.source = value.get("source") if isinstance(value.get("source"), str) else None
        raise


def _parse_value(value, sources) -> Parsed:
    env = Obj("", value)
    p = Parsed()
    p.id = env.key("id")
    p.source = env.str("source")
    if p.source not in sources:
        raise env.error("source", f"'{p.source}' is not a configured system")
    p.type = env.str("type")
    if p.type not in ALL_TYPES:
        raise env.error("type", f"'{p.type}' is not an event type of schema version 1")
    version = env.u32("schema_version")
    if version != 1:
        raise env.error("schema_version", f"version {version} is not supported; this hub reads version 1")
    occurred = env.str("occurred_at")
    if not _RFC3339.match(occurred):
        raise env.error("occurred_at", f"'{occurred}' is not an RFC 3339 timestamp")
    p.correlation_id = env.opt_key("correlation_id")
    p.data = parse_data(p.type, env.obj("data"))
    p.canonical = canonical(p.data)
    return p


# ---------------------------------------------------------------------------------------
# Reference data, effective-dated (as crates/pshub-engine/src/world.rs)


class World:
    def __init__(self):
        self.workers = {}  # id -> [change dicts] ordered by date, then arrival
        self.customers = {}
        self.projects = {}  # code -> {project, contract, opportunity_id}
        self.rate_cards = {}  # id -> (currency, {(role, region): [(from, to, rate)] by from})
        self.cost_rates = []
        self.fx = {}  # (from, to) -> ([dates sorted], {date: rate})
        self.bookings = {}  # assignment id -> booking dict
        self.by_pair = {}  # (worker, project) -> [assignment ids]

    def apply(self, event_type: str, d):
        """Applies a reference record; answers 'new_project', ('taken', by) or None."""
        if event_type == "customer.upserted":
            self.customers[d["customer_id"]] = d
        elif event_type == "opportunity.closed_won":
            code = d["project"]["project_code"]
            known = self.projects.get(code)
            if known is not None:
                return None if known["opportunity_id"] == d["opportunity_id"] else ("taken", known["opportunity_id"])
            self.customers[d["customer"]["customer_id"]] = d["customer"]
            self.projects[code] = {"project": d["project"], "contract": d["contract"],
                                   "opportunity_id": d["opportunity_id"]}
            return "new_project"
        elif event_type in WORKER_KINDS:
            changes = self.workers.setdefault(d["worker_id"], [])
            # Stable: after every change with the same or an earlier date.
            at = bisect.bisect_right([c["effective_date"] for c in changes], d["effective_date"])
            changes.insert(at, d)
        elif event_type == "rate_card.upserted":
            rates = {}
            for line in d["rates"]:
                rates.setdefault((line["role"], line["region"]), []).append(
                    (line["valid_from"], line["valid_to"], line["rate"]))
            for lines in rates.values():
                lines.sort(key=lambda span: span[0])
            self.rate_cards[d["rate_card_id"]] = (d["currency"], rates)
        elif event_type == "cost_rate.upserted":
            self.cost_rates.append(d)
        elif event_type == "fx_rate.upserted":
            dates, rates = self.fx.setdefault((d["from"], d["to"]), ([], {}))
            if d["valid_on"] not in rates:
                bisect.insort(dates, d["valid_on"])
            rates[d["valid_on"]] = d["rate"]
        elif event_type == "assignment.changed":
            aid = d["assignment_id"]
            before = self.bookings.get(aid)
            if before is not None and before["version"] >= d["version"]:
                return None  # an older or equal version arriving late changes nothing
            if before is not None:
                ids = self.by_pair.get((before["worker_id"], before["project_code"]))
                if ids is not None:
                    ids.remove(aid)
                    if not ids:
                        del self.by_pair[(before["worker_id"], before["project_code"])]
            self.by_pair.setdefault((d["worker_id"], d["project_code"]), []).append(aid)
            self.bookings[aid] = d
        return None

    def _fold(self, changes, takes_effect):
        state = {"status": None, "region": None, "role": None, "legal_entity": None}
        for c in changes:
            if not takes_effect(c):
                break
            kind = c["kind"]
            if kind in ("hired", "leave_ended"):
                state["status"] = "active"
            elif kind == "leave_started":
                state["status"] = "on_leave"
            elif kind == "terminated":
                state["status"] = "terminated"
            else:  # transferred
                state["status"] = state["status"] or "active"
            for name in ("region", "role", "legal_entity"):
                if c[name] is not None:
                    state[name] = c[name]
        return state

    def worker_on(self, worker: str, date: str):
        """Billable from the hire through the termination date; a leave from its start
        through the day before it ends; a transfer from its effective date."""
        changes = self.workers.get(worker)
        if changes is None:
            return None
        return self._fold(changes, lambda c: c["effective_date"] < date if c["kind"] == "terminated"
                          else c["effective_date"] <= date)

    def worker_latest(self, worker: str):
        changes = self.workers.get(worker)
        if changes is None:
            return None
        state = self._fold(changes, lambda c: True)
        state["status"] = None
        return state

    def approved_assignment(self, worker: str, project: str, date: str):
        for aid in self.by_pair.get((worker, project), ()):
            b = self.bookings[aid]
            if b["state"] == "approved" and b["start"] <= date <= b["end"]:
                return b["role"]
        return None

    def bill_rate(self, card: str, role: str, region: str, date: str):
        """(card currency, rate or None); None for an unknown card. Latest valid_from wins."""
        index = self.rate_cards.get(card)
        if index is None:
            return None
        currency, rates = index
        for valid_from, valid_to, rate in reversed(rates.get((role, region), ())):
            if valid_from <= date and (valid_to is None or date <= valid_to):
                return currency, rate
        return currency, None

    def fx_rate(self, frm: str, to: str, date: str):
        pair = self.fx.get((frm, to))
        if pair is None:
            return None
        dates, rates = pair
        at = bisect.bisect_right(dates, date)
        return rates[dates[at - 1]] if at else None


# ---------------------------------------------------------------------------------------
# The checks and pricing (as flows/time_to_bill/rules.rs)

OWNER = {
    "unknown_worker": "hr", "unknown_project": "integration", "worker_inactive": "pmo",
    "no_approved_assignment": "pmo", "contract_expired": "finance", "missing_rate": "finance",
    "missing_fx_rate": "finance", "missing_tax_code": "finance", "amount_overflow": "integration",
}
OWNERS = ("integration", "finance", "pmo", "hr")
_BOUND = Decimal(2**96 - 1)


def product(quantity: Decimal, rate: Decimal, currency: str):
    """round(quantity x rate) in `currency`; None when it does not fit in an exact decimal."""
    with localcontext(_EXACT):
        amount = quantity * rate
    if abs(amount) > _BOUND:
        return None
    return round_money(amount, currency)


def evaluate(world: World, tax_code: str | None, kind: str, d):
    """Answers (failure kind or None, pricing or None, value (amount, currency) or None)."""
    date = d["work_date"] if kind == "time" else d["spent_on"]
    worker, project_code = d["worker_id"], d["project_code"]
    on_date = world.worker_on(worker, date)
    if on_date is None:
        return "unknown_worker", None, None
    info = world.projects.get(project_code)
    if info is None:
        return "unknown_project", None, None
    contract = info["contract"]
    attributes = on_date if on_date["status"] is not None else (world.worker_latest(worker) or on_date)
    assignment = world.approved_assignment(worker, project_code, date)
    billing = contract["currency"]

    def price():
        if kind == "time":
            role = d["role"] or assignment or attributes["role"]
            region = attributes["region"]
            found = None
            if role is not None and region is not None:
                r = world.bill_rate(contract["rate_card_id"], role, region, date)
                if r is not None and r[1] is not None:
                    found = (r[1], r[0])
            if found is None:
                return "missing_rate", None
            quantity, (rate, rate_currency) = d["hours"], found
        else:
            quantity, rate, rate_currency = Decimal(1), d["amount"], d["currency"]
        value = product(quantity, rate, rate_currency)
        if value is None:
            return "amount_overflow", None
        if rate_currency == billing:
            return None, (quantity, rate, rate_currency, None, value)
        fx = world.fx_rate(rate_currency, billing, date)
        if fx is None:
            return "missing_fx_rate", None
        converted = product(value, fx, billing)
        if converted is None:
            return "amount_overflow", None
        return None, (quantity, rate, rate_currency, fx, converted)

    price_failure, priced = price()
    value = (priced[4], billing) if priced is not None else None
    if on_date["status"] != "active":
        return "worker_inactive", None, value
    if assignment is None:
        return "no_approved_assignment", None, value
    if not (date >= contract["start"] and (contract["end"] is None or date <= contract["end"])):
        return "contract_expired", None, value
    if price_failure is not None:
        return price_failure, None, value
    if tax_code is None:
        return "missing_tax_code", None, value
    return None, priced, value


# ---------------------------------------------------------------------------------------
# The store and the flow

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY, source TEXT NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL,
    correlation_id TEXT, data TEXT NOT NULL, raw TEXT NOT NULL, received_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    kind TEXT NOT NULL, entry_id TEXT NOT NULL, phase TEXT NOT NULL, fingerprint TEXT NOT NULL,
    line_id INTEGER, case_id INTEGER, value TEXT, currency TEXT, postings INTEGER NOT NULL,
    PRIMARY KEY (kind, entry_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS invoice_lines (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, source_id TEXT NOT NULL, posting INTEGER NOT NULL,
    event_seq INTEGER NOT NULL, project_code TEXT NOT NULL, worker_id TEXT NOT NULL,
    date TEXT NOT NULL, quantity TEXT NOT NULL, rate TEXT NOT NULL, rate_currency TEXT NOT NULL,
    fx_rate TEXT, amount TEXT NOT NULL, currency TEXT NOT NULL, tax_code TEXT NOT NULL,
    billing_class TEXT NOT NULL, reverses INTEGER);
CREATE TABLE IF NOT EXISTS cases (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, owner TEXT NOT NULL, business_key TEXT NOT NULL,
    state TEXT NOT NULL, reason TEXT NOT NULL, event_seq INTEGER, value TEXT, currency TEXT,
    holds_entry INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY, source TEXT, event_id TEXT, raw TEXT NOT NULL, field TEXT, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conflicts (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, event_id TEXT NOT NULL, original_seq INTEGER NOT NULL,
    type TEXT NOT NULL, data TEXT NOT NULL, raw TEXT NOT NULL, case_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
"""

COUNTERS = ("received", "duplicates", "conflicts", "quarantined")


class Entry:
    __slots__ = ("kind", "entry_id", "phase", "fingerprint", "line_id", "case_id", "value", "currency", "postings")

    def __init__(self, kind, entry_id, phase, fingerprint, line_id=None, case_id=None,
                 value=None, currency=None, postings=0):
        self.kind, self.entry_id, self.phase, self.fingerprint = kind, entry_id, phase, fingerprint
        self.line_id, self.case_id, self.value, self.currency = line_id, case_id, value, currency
        self.postings = postings


def connect(path: str, synchronous: str = "FULL") -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.executescript(SCHEMA)
    return db


class Hub:
    """One writer: takes events in order and writes their effects on `db`. The caller
    brackets events with `begin()` and `commit()`."""

    def __init__(self, db: sqlite3.Connection, sources=("crm", "psa", "hris", "erp", "payroll"),
                 tax_code: str | None = "STANDARD"):
        self.db = db
        self.sources = frozenset(sources)
        self.tax_code = tax_code
        self.world = World()
        self.seen = {}  # (source, id) -> inbox seq; the stored row is read on a hit
        self.case_kinds = {}  # open case id -> kind
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._rebuild()

    # -- memory is rebuilt from the store at start ------------------------------------------
    def _rebuild(self):
        db = self.db
        for name, n in db.execute("SELECT name, n FROM counters"):
            self.counters[name] = n
        self.next_seq = 1 + (db.execute("SELECT max(seq) FROM inbox").fetchone()[0] or 0)
        self.next_line = 1 + (db.execute("SELECT max(id) FROM invoice_lines").fetchone()[0] or 0)
        self.next_case = 1 + (db.execute("SELECT max(id) FROM cases").fetchone()[0] or 0)
        self.next_quarantine = 1 + (db.execute("SELECT max(id) FROM quarantine").fetchone()[0] or 0)
        self.next_conflict = 1 + (db.execute("SELECT max(id) FROM conflicts").fetchone()[0] or 0)
        for seq, source, event_id in db.execute("SELECT seq, source, event_id FROM inbox"):
            self.seen[(source, event_id)] = seq
        for event_type, data in db.execute("SELECT type, data FROM inbox ORDER BY seq"):
            if event_type in REFERENCE_TYPES:
                self.world.apply(event_type, _stored(data))
        for case_id, kind in db.execute("SELECT id, kind FROM cases WHERE state = 'open'"):
            self.case_kinds[case_id] = kind

    def begin(self):
        self.db.execute("BEGIN")

    def commit(self):
        self.db.executemany("INSERT OR REPLACE INTO counters (name, n) VALUES (?, ?)", self.counters.items())
        self.db.execute("COMMIT")

    # -- one event -------------------------------------------------------------------------
    def ingest(self, raw: str, now: str = ""):
        """Takes one event's text; answers (status, id, reason)."""
        self.counters["received"] += 1
        try:
            p = parse_event(raw, self.sources)
        except Invalid as e:
            return self._quarantine(raw, e)
        return self._accept(p, raw, now)

    def ingest_value(self, value, raw: str, now: str = ""):
        """Takes one event already read from JSON (an element of a request's array)."""
        self.counters["received"] += 1
        try:
            p = parse_value(value, self.sources)
        except Invalid as e:
            return self._quarantine(raw, e)
        return self._accept(p, raw, now)

    def _accept(self, p: Parsed, raw: str, now: str):
        key = (p.source, p.id)
        seq = self.seen.get(key)
        if seq is not None:
            prior_type, prior_data = self.db.execute("SELECT type, data FROM inbox WHERE seq = ?", (seq,)).fetchone()
            if prior_type == p.type and prior_data == p.canonical:
                self.counters["duplicates"] += 1
                return "duplicate", p.id, None
            return self._conflict(p, raw, seq, prior_type)
        seq = self.next_seq
        self.next_seq += 1
        self.seen[key] = seq
        self.db.execute(
            "INSERT INTO inbox (seq, source, event_id, type, correlation_id, data, raw, received_at) VALUES (?,?,?,?,?,?,?,?)",
            (seq, p.source, p.id, p.type, p.correlation_id, p.canonical, raw, now))
        if p.type in REFERENCE_TYPES:
            applied = self.world.apply(p.type, p.data)
            if isinstance(applied, tuple):
                code = p.data["project"]["project_code"]
                self._open_case("project_code_taken", "integration", code,
                                f"project code {code} already belongs to opportunity {applied[1]}", seq, None, False)
        elif p.type in WORK_TYPES:
            self._work(p, seq)
        return "accepted", p.id, None

    def _quarantine(self, raw, error: Invalid):
        self.counters["quarantined"] += 1
        qid = self.next_quarantine
        self.next_quarantine += 1
        self.db.execute("INSERT INTO quarantine (id, source, event_id, raw, field, reason) VALUES (?,?,?,?,?,?)",
                        (qid, error.source, error.event_id, raw, error.field, str(error)))
        return "quarantined", error.event_id, str(error)

    def _conflict(self, p: Parsed, raw, original_seq, prior_type):
        self.counters["conflicts"] += 1
        cid = self.next_conflict
        self.next_conflict += 1
        key = f"{p.source}/{p.id}"
        case_id = self._open_case("conflicting_event", "integration", key,
                                  f"{key} was first received as {prior_type} with other data", original_seq, None, False)
        self.db.execute(
            "INSERT INTO conflicts (id, source, event_id, original_seq, type, data, raw, case_id) VALUES (?,?,?,?,?,?,?,?)",
            (cid, p.source, p.id, original_seq, p.type, p.canonical, raw, case_id))
        return "conflict", p.id, f"{key} was first received with a different type or data"

    def _open_case(self, kind, owner, business_key, reason, seq, value, holds_entry):
        case_id = self.next_case
        self.next_case += 1
        amount, currency = (dec_text(value[0]) if value else None), (value[1] if value else None)
        self.db.execute(
            "INSERT INTO cases (id, kind, owner, business_key, state, reason, event_seq, value, currency, holds_entry) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (case_id, kind, owner, business_key, "open", reason, seq, amount, currency, int(holds_entry)))
        self.case_kinds[case_id] = kind
        return case_id

    def _close_case(self, case_id, state):
        self.db.execute("UPDATE cases SET state = ? WHERE id = ?", (state, case_id))
        self.case_kinds.pop(case_id, None)

    def _put_entry(self, e: Entry):
        self.db.execute(
            "INSERT OR REPLACE INTO entries (kind, entry_id, phase, fingerprint, line_id, case_id, value, currency, postings) VALUES (?,?,?,?,?,?,?,?,?)",
            (e.kind, e.entry_id, e.phase, e.fingerprint, e.line_id, e.case_id,
             None if e.value is None else str(e.value), e.currency, e.postings))

    def _line(self, line_id):
        return self.db.execute(
            "SELECT id, kind, source_id, posting, event_seq, project_code, worker_id, date, quantity, rate, rate_currency, fx_rate, amount, currency, tax_code, billing_class FROM invoice_lines WHERE id = ?",
            (line_id,)).fetchone()

    def _add_line(self, row):
        self.db.execute(
            "INSERT INTO invoice_lines (id, kind, source_id, posting, event_seq, project_code, worker_id, date, quantity, rate, rate_currency, fx_rate, amount, currency, tax_code, billing_class, reverses) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            row)

    def _work(self, p: Parsed, seq):
        """The flow for one approved or rejected time entry or expense (time_to_bill.rs)."""
        d = p.data
        kind = "time" if p.type.startswith("time_entry.") else "expense"
        approved = p.type.endswith(".approved")
        source_id = d["entry_id"] if kind == "time" else d["expense_id"]
        row = self.db.execute(
            "SELECT kind, entry_id, phase, fingerprint, line_id, case_id, value, currency, postings FROM entries WHERE kind = ? AND entry_id = ?",
            (kind, source_id)).fetchone()
        if row is None:
            entry = Entry(kind, source_id, "rejected", p.canonical)
        else:
            entry = Entry(*row)
        billed_line = entry.line_id if entry.phase == "billed" else None
        held_case = entry.case_id if entry.phase == "held" else None
        billable = d["billable"]

        if approved and billable and billed_line is not None and entry.fingerprint == p.canonical:
            return  # the same approval again under another event id: billed once
        if billed_line is not None:
            self._reverse(billed_line, entry, seq)
        entry.fingerprint = p.canonical
        entry.line_id = None

        if not approved or not billable:
            if held_case is not None:
                self._close_case(held_case, "dismissed")
            entry.phase = "not_billable" if approved else "rejected"
            entry.case_id = None
            self._put_entry(entry)
            return

        failure, priced, value = evaluate(self.world, self.tax_code, kind, d)
        if failure is None:
            if held_case is not None:
                self._close_case(held_case, "resolved")
            entry.line_id = self._create_line(kind, d, source_id, priced, entry, seq)
            entry.phase = "billed"
            entry.case_id = None
        else:
            entry.case_id = self._hold(failure, source_id, value, held_case, seq)
            entry.phase = "held"
        entry.value, entry.currency = (value if value is not None else (None, None))
        self._put_entry(entry)

    def _hold(self, failure, source_id, value, held_case, seq):
        if held_case is not None:
            if self.case_kinds.get(held_case) == failure:
                amount, currency = (dec_text(value[0]) if value else None), (value[1] if value else None)
                self.db.execute("UPDATE cases SET event_seq = ?, value = ?, currency = ? WHERE id = ?",
                                (seq, amount, currency, held_case))
                return held_case
            self._close_case(held_case, "resolved")
        return self._open_case(failure, OWNER[failure], source_id, f"{failure}: {source_id}", seq, value, True)

    def _create_line(self, kind, d, source_id, priced, entry: Entry, seq):
        quantity, rate, rate_currency, fx, amount = priced
        entry.postings += 1
        line_id = self.next_line
        self.next_line += 1
        currency = self.world.projects[d["project_code"]]["contract"]["currency"]
        row = (line_id, kind, source_id, entry.postings, seq, d["project_code"], d["worker_id"],
               d["work_date"] if kind == "time" else d["spent_on"], dec_text(quantity), dec_text(rate),
               rate_currency, None if fx is None else dec_text(fx), str(amount), currency, self.tax_code,
               "professional_services" if kind == "time" else "reimbursable_expense")
        self._add_line(row + (None,))
        return line_id

    def _reverse(self, line_id, entry: Entry, seq):
        """Posts the negative of a line: the entry's billing is withdrawn, once."""
        original = self._line(line_id)
        entry.postings += 1
        rid = self.next_line
        self.next_line += 1
        quantity = -Decimal(original[8])
        amount = -Decimal(original[12])
        row = (rid, "reversal", original[2], entry.postings, seq, original[5], original[6], original[7],
               dec_text(quantity), original[9], original[10], original[11], str(amount), original[13],
               original[14], original[15], line_id)
        self._add_line(row)


# ---------------------------------------------------------------------------------------
# The figures to compare with pshub's GET /v1/summary


def summary(db: sqlite3.Connection) -> dict:
    """Lines, reversals and money per currency, as pshub's summary names them."""
    counters = dict.fromkeys(COUNTERS, 0)
    for name, n in db.execute("SELECT name, n FROM counters"):
        counters[name] = n
    lines = reversals = 0
    posted, approved, held = {}, {}, {}

    def add(totals, currency, amount):
        totals[currency] = totals.get(currency, Decimal(0)) + Decimal(amount)

    for kind, amount, currency in db.execute("SELECT kind, amount, currency FROM invoice_lines"):
        if kind == "reversal":
            reversals += 1
        else:
            lines += 1
        add(posted, currency, amount)
    approved_entries = 0
    for phase, value, currency in db.execute("SELECT phase, value, currency FROM entries"):
        if phase in ("billed", "held", "written_off"):
            approved_entries += 1
            if value is not None:
                add(approved, currency, value)
    exceptions = dict.fromkeys(OWNERS, 0)
    open_exceptions = dict.fromkeys(OWNERS, 0)
    for owner, state, value, currency, holds in db.execute(
            "SELECT owner, state, value, currency, holds_entry FROM cases"):
        exceptions[owner] += 1
        if state == "open":
            open_exceptions[owner] += 1
            if holds and value is not None:
                add(held, currency, value)
    currencies = sorted(set(posted) | set(approved) | set(held))

    def money(totals):
        return {c: str(round_money(totals.get(c, Decimal(0)), c)) for c in currencies}

    return {
        "events": counters["received"],
        "accepted": counters["received"] - counters["duplicates"] - counters["conflicts"] - counters["quarantined"],
        "duplicates_suppressed": counters["duplicates"],
        "conflicts": counters["conflicts"],
        "quarantined": counters["quarantined"],
        "lines_posted": lines,
        "reversals_posted": reversals,
        "approved_entries": approved_entries,
        "exceptions_by_owner": exceptions,
        "open_exceptions_by_owner": open_exceptions,
        "approved_value": money(approved),
        "posted_value": money(posted),
        "held_value": money(held),
    }


def lines(db: sqlite3.Connection):
    """Every invoice line, as pshub's GET /v1/invoice-lines names the fields."""
    for row in db.execute(
            "SELECT kind, source_id, posting, project_code, worker_id, date, quantity, rate, rate_currency, fx_rate, amount, currency FROM invoice_lines ORDER BY id"):
        yield dict(zip(("kind", "source_id", "posting", "project_code", "worker_id", "date", "quantity",
                        "rate", "rate_currency", "fx_rate", "amount", "currency"), row))
