"""The accounting baseline pshub expects in Tryton 8.2, set up over JSON-RPC with the
standard library only: a company in EUR, the minimal English chart of accounts, fiscal
years 2025-2028 with monthly periods, a 30-day payment term, the service products
"Consulting hour", "Expense" and "Milestone", a cash pay method, and the connector's own
user `pshub` (password `pshub-connector`) in every group.

Usage: baseline.py URL DATABASE ADMIN_LOGIN ADMIN_PASSWORD
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpc import Rpc, dec, day  # noqa: E402

URL, DB, LOGIN, PASSWORD = sys.argv[1:5]
CONNECTOR_LOGIN, CONNECTOR_PASSWORD = "pshub", "pshub-connector"


def main():
    rpc = Rpc(URL, DB)
    rpc.wait_ready()
    admin = rpc.login(LOGIN, PASSWORD)
    ctx = {"language": "en"}
    m = lambda name, method, *args: rpc.model(name, method, *args, ctx=ctx)  # noqa: E731

    (eur,) = m("currency.currency", "create",
               [{"name": "Euro", "symbol": "€", "code": "EUR", "rounding": dec("0.01"), "digits": 2}])
    m("currency.currency.rate", "create", [{"currency": eur, "date": day(2020, 1, 1), "rate": dec("1")}])
    (party,) = m("party.party", "create", [{"name": "pshub Consulting GmbH"}])
    (company,) = m("company.company", "create", [{"party": party, "currency": eur}])
    m("res.user", "write", [admin], {"companies": [["add", [company]]], "company": company})
    ctx = {"company": company, "companies": [company], "language": "en"}

    template = m("ir.model.data", "get_id", "account", "account_template_root_en")
    sid, _, _ = rpc.call("wizard.account.create_chart.create", [ctx])
    wizard = lambda data, state: rpc.call(  # noqa: E731
        "wizard.account.create_chart.execute", [sid, data, state, ctx])
    wizard({}, "start")
    account = {"account_template": template, "company": company}
    wizard({"account": account}, "create_account")
    (receivable,) = m("account.account", "search",
                      [["type.receivable", "=", True], ["party_required", "=", True],
                       ["closed", "!=", True], ["company", "=", company]], 0, 1, None)
    (payable,) = m("account.account", "search",
                   [["type.payable", "=", True], ["party_required", "=", True],
                       ["closed", "!=", True], ["company", "=", company]], 0, 1, None)
    wizard({"account": account, "properties": {
        "company": company, "account_receivable": receivable, "account_payable": payable}},
        "create_properties")
    rpc.call("wizard.account.create_chart.delete", [sid, ctx])

    def sequence_type(name):
        (found,) = m("ir.sequence.type", "search", [["name", "=", name]], 0, 1, None)
        return found

    move_type, invoice_type = sequence_type("Account Move"), sequence_type("Invoice")
    for year in range(2025, 2029):
        move_seq, invoice_seq = m("ir.sequence.strict", "create", [
            {"name": f"Moves {year}", "sequence_type": move_type, "company": company},
            {"name": f"Invoices {year}", "sequence_type": invoice_type, "company": company,
             "prefix": f"INV/{year}/"},
        ])
        (fiscal_year,) = m("account.fiscalyear", "create", [{
            "name": str(year), "company": company,
            "start_date": day(year, 1, 1), "end_date": day(year, 12, 31),
            "move_sequence": move_seq,
            "invoice_sequences": [["create", [{
                "out_invoice_sequence": invoice_seq, "in_invoice_sequence": invoice_seq,
                "out_credit_note_sequence": invoice_seq, "in_credit_note_sequence": invoice_seq,
            }]]],
        }])
        m("account.fiscalyear", "create_period", [fiscal_year])

    m("account.invoice.payment_term", "create", [{
        "name": "30 days",
        "lines": [["create", [{"type": "remainder", "relativedeltas": [["create", [{"days": 30}]]]}]]],
    }])

    (revenue,) = m("account.account", "search",
                   [["type.revenue", "=", True], ["closed", "!=", True],
                    ["company", "=", company]], 0, 1, None)
    (expense,) = m("account.account", "search",
                   [["type.expense", "=", True], ["closed", "!=", True],
                    ["company", "=", company]], 0, 1, None)
    (category,) = m("product.category", "create", [{
        "name": "Services", "accounting": True,
        "account_revenue": revenue, "account_expense": expense}])
    (hour,) = m("product.uom", "search", [["name", "=", "Hour"]], 0, 1, None)
    (unit,) = m("product.uom", "search", [["name", "=", "Unit"]], 0, 1, None)
    for name, uom in (("Consulting hour", hour), ("Expense", unit), ("Milestone", unit)):
        m("product.template", "create", [{
            "name": name, "type": "service", "default_uom": uom, "list_price": dec("0"),
            "account_category": category, "products": [["create", [{}]]]}])

    (cash_journal,) = m("account.journal", "search", [["type", "=", "cash"]], 0, 1, None)
    (cash,) = m("account.account", "search",
                [["code", "=", "1.1.1"], ["company", "=", company]], 0, 1, None)
    m("account.invoice.payment.method", "create", [{
        "name": "Cash", "company": company, "journal": cash_journal,
        "credit_account": cash, "debit_account": cash}])

    # The admin is the root user, in no group; the connector's user is in every group.
    groups = m("res.group", "search", [], 0, None, None)
    m("res.user", "create", [{
        "name": "pshub connector", "login": CONNECTOR_LOGIN, "password": CONNECTOR_PASSWORD,
        "companies": [["add", [company]]], "company": company,
        "groups": [["add", groups]]}])
    print(json.dumps({"company": company, "currency": eur, "user": CONNECTOR_LOGIN}))


main()
