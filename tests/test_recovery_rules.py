"""Recovery rules a customer feels: compensation within limits, options, conversation frustration."""
from __future__ import annotations

from decimal import Decimal

from bot.nlu.cues import CueDetector
from bot.recovery.compensation import compensation_for
from bot.recovery.conversation import TurnInput
from bot.recovery.frustration import conversation_frustration
from bot.recovery.options import pick_option
from bot.recovery.playbook import add_steps

LIMITS = {
    "currency": "USD", "max_per_case": 50, "max_share_of_order": 0.5,
    "severity": {"delivery": 2, "account": 1}, "repeat_failure_points": 2,
    "frustration_points": {"calm": 0, "annoyed": 1, "angry": 2},
    "tiers": [{"min_points": 6, "kind": "store_credit", "amount": 40}, {"min_points": 4, "kind": "store_credit", "amount": 20},
              {"min_points": 2, "kind": "store_credit", "amount": 10}, {"min_points": 0, "kind": "none", "amount": 0}],
}


def test_compensation_grows_with_severity_repeat_failure_and_frustration():
    calm = compensation_for("delivery", False, "calm", Decimal("249"), settings=LIMITS)
    angry_repeat = compensation_for("delivery", True, "angry", Decimal("249"), settings=LIMITS)
    assert calm.amount == Decimal("10.00") and angry_repeat.amount == Decimal("40.00")
    assert compensation_for("account", False, "calm", None, settings=LIMITS).granted is False


def test_compensation_never_exceeds_the_configured_limits():
    small_order = compensation_for("delivery", True, "angry", Decimal("19.99"), settings=LIMITS)
    assert small_order.amount == Decimal("9.99")  # half the order's value
    nearly_used = compensation_for("delivery", True, "angry", Decimal("249"), already_granted=Decimal("45"), settings=LIMITS)
    assert nearly_used.amount == Decimal("5.00")
    used_up = compensation_for("delivery", True, "angry", Decimal("249"), already_granted=Decimal("50"), settings=LIMITS)
    assert used_up.granted is False


def test_compensation_holds_the_customer_limit_over_all_cases():
    per_customer = dict(LIMITS, max_per_customer=60, customer_window_days=90)
    fresh = compensation_for("delivery", True, "angry", Decimal("249"), settings=per_customer)
    assert fresh.amount == Decimal("40.00")
    after_other_cases = compensation_for("delivery", True, "angry", Decimal("249"), settings=per_customer,
                                         customer_already_granted=Decimal("45"))
    assert after_other_cases.amount == Decimal("15.00")  # this case is untouched, the customer is not
    assert compensation_for("delivery", True, "angry", Decimal("249"), settings=per_customer,
                            customer_already_granted=Decimal("60")).granted is False
    # Without a per-customer setting, a customer gets no more than one case's worth in the window.
    assert compensation_for("delivery", True, "angry", Decimal("249"), settings=LIMITS,
                            customer_already_granted=Decimal("50")).granted is False


def test_customer_picks_options_by_button_ordinal_or_words():
    offered = ["reship_express", "wait_priority", "refund_full"]
    assert pick_option(offered, "", "refund_full").code == "refund_full"
    assert pick_option(offered, "the second one please").code == "wait_priority"
    assert pick_option(offered, "just refund me in full").code == "refund_full"
    assert pick_option(offered, "", "not_offered") is None
    assert pick_option(offered, "x" * 100_000) is None


def test_conversation_frustration_uses_history():
    calm = [{"score": 0.1, "level": "calm"}]
    assert conversation_frustration(calm, settings={}).level == "calm"
    assert conversation_frustration(calm, earlier_contacts=3, failed_turns=2, settings={}).level == "annoyed"
    outburst = [{"score": 0.95, "level": "angry"}, {"score": 0.1, "level": "calm"}]
    after = conversation_frustration(outburst, settings={})
    assert after.level == "annoyed" and after.angry_streak == 0  # a calm line does not wipe out an outburst
    assert conversation_frustration(outburst[:1] * 2, settings={}).angry_streak == 2
    assert conversation_frustration([{"score": 0.7, "level": "angry"}], resolved=True, settings={}).level == "annoyed"


def test_ids_are_read_from_free_text_safely():
    turn = TurnInput("c", text="my email is Dana@Example.com and the order #a1001, case 501")
    assert turn.email() == "Dana@Example.com" and turn.order_id() == "A1001" and turn.case_id() == "CASE-501"
    hostile = TurnInput("c", text="<script>alert(1)</script>' OR 1=1; DROP TABLE orders; --")
    assert hostile.email() is None and hostile.order_id() is None


def test_playbook_steps_are_recorded_in_order_once():
    assert add_steps(["acknowledge"], "apologize", "acknowledge", "explain") == ["acknowledge", "apologize", "explain"]


def test_cues_explain_frustration():
    cues = CueDetector().detect("This is the THIRD TIME I'm asking!! Worst service, I'm cancelling my account. wtf")
    kinds = {c.split(":")[0] for c in cues.cues}
    assert {"repeat contact", "capitals", "exclamations", "insult", "threat to leave", "profanity"} <= kinds
    assert CueDetector().detect("Hello, my parcel seems late, could you check?").cues == []
    assert CueDetector().detect("").cues == [] and CueDetector().detect("\x00\x01 🙂 " * 1000).counts["profanity"] == 0


def test_cues_do_not_fire_on_codes_or_words_that_merely_contain_a_swear_word():
    detector = CueDetector()
    calm = ["Could you assist me? Thanks for the assistance with my asset transfer.",
            "I need the bulletin about my booking, flight LHR to JFK, ref ABC123 on the SKU page",
            "The crepe pan and the bullet blender arrived, the PIN for the UPS locker is on the SMS"]
    for text in calm:
        report = detector.detect(text)
        assert report.counts["profanity"] == 0 and report.counts["capitals"] == 0, (text, report.cues)
    assert detector.detect("this is bullshit, what an ass").counts["profanity"] == 2
    assert detector.detect("WHERE IS MY PARCEL").counts["capitals"] >= 1
    assert detector.detect("why is it NEVER ON TIME").counts["capitals"] >= 1
