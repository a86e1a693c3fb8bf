"""The case database: migrations, demo data, and the reads and writes of the playbook."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import inspect

from bot.casedb import repository as repo
from bot.casedb.engine import get_engine, session_scope
from bot.casedb.migrate import upgrade
from bot.casedb.models import Case, CaseContact, Handoff
from bot.casedb.seed import seed_demo
from tests.conftest import NOW


def test_migrations_create_every_table(db_url):
    tables = set(inspect(get_engine(db_url)).get_table_names())
    assert {"customers", "orders", "payments", "shipments", "cases", "case_contacts", "resolutions",
            "compensations", "root_cause_tags", "handoffs", "follow_ups", "alembic_version"} <= tables
    upgrade(db_url)  # running again on an up-to-date database changes nothing and does not fail


def test_demo_scenarios_are_seeded(db_url):
    with session_scope(db_url) as session:
        dana = repo.customer_history(session, "cust-1001")
        assert dana.name == "Dana Whitfield" and dana.email == "dana@example.com"
        order = dana.order("A1001")
        assert order.item == "noise-cancelling headphones"
        shipment = order.shipments[0]
        assert shipment["status_detail"] == "held at regional hub due to severe weather"
        assert (NOW - shipment["shipped_at"]).days == 6 and (NOW - shipment["promised_at"]).days == 3
        case = dana.case("CASE-501")
        assert case.status == "open" and case.issue_type == "delivery"
        assert len(case.contacts) == 1 and case.contacts[0].channel == "email"
        assert "next day" in case.contacts[0].summary

        sam = repo.customer_history(session, "cust-1002")
        payments = sam.order("B2002").payments
        assert [p["amount"] for p in payments] == [Decimal("59.99"), Decimal("59.99")]
        assert payments[0]["charged_at"].date() == payments[1]["charged_at"].date()
        assert sam.cases == []

        priya = repo.customer_history(session, "cust-1003")
        case = priya.case("CASE-733")
        assert case.status == "resolved" and (NOW - case.resolved_at).days == 21
        assert case.resolutions[0]["option_code"] == "replace"

        lee = repo.customer_history(session, "cust-1004")
        assert lee.account_status == "locked" and lee.cases == []


def test_seeding_twice_keeps_what_is_stored(db_url):
    with session_scope(db_url) as session:
        repo.record_contact(session, "CASE-501", "conv-1", "Chat: where is it", "delivery", "angry", 0.9)
    with session_scope(db_url) as session:
        assert seed_demo(session, now=NOW) is False
    with session_scope(db_url) as session:
        assert session.query(CaseContact).filter_by(case_id="CASE-501").count() == 2


def test_verification_needs_matching_email_and_order(db_url):
    with session_scope(db_url) as session:
        assert repo.verify_customer(session, " Dana@Example.com ", "#a1001") == "cust-1001"
        assert repo.verify_customer(session, "dana@example.com", "B2002") is None  # someone else's order
        assert repo.verify_customer(session, "nobody@example.com", "A1001") is None
        assert repo.verify_customer(session, "' OR 1=1 --", "A1001' OR '1'='1") is None
        assert repo.verify_customer(session, "", "") is None
        assert repo.verify_customer(session, "x" * 10_000 + "@example.com", "A1001") is None


def test_contacts_are_one_per_conversation_and_counted_as_history(db_url):
    with session_scope(db_url) as session:
        assert repo.earlier_contacts(session, "CASE-501", "conv-9") == 1
        repo.record_contact(session, "CASE-501", "conv-9", "first", "delivery", "annoyed", 0.5)
        repo.record_contact(session, "CASE-501", "conv-9", "second", "delivery", "angry", 0.9)
        assert repo.earlier_contacts(session, "CASE-501", "conv-9") == 1
        contact = session.query(CaseContact).filter_by(conversation_id="conv-9").one()
        assert contact.summary == "second" and contact.frustration_level == "angry"


def test_handoff_is_queued_once_per_conversation(db_url):
    with session_scope(db_url) as session:
        first = repo.record_handoff(session, "conv-3", "customer_request", "summary one", "cust-1001", "CASE-501")
        second = repo.record_handoff(session, "conv-3", "frustration", "summary two", "cust-1001", "CASE-501")
        assert first == second
        assert session.query(Handoff).filter_by(conversation_id="conv-3").one().summary == "summary two"


def test_new_case_and_compensation_totals(db_url):
    with session_scope(db_url) as session:
        case_id = repo.open_case(session, "cust-1002", "billing", "B2002", "charged twice")
        repo.record_compensation(session, case_id, "store_credit", Decimal("10.00"), "USD", "test")
        repo.record_compensation(session, case_id, "store_credit", Decimal("5.50"), "USD", "test")
        assert repo.compensation_total(session, case_id) == Decimal("15.50")
        assert session.get(Case, case_id).status == "open"
