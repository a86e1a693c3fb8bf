"""Two or three concrete ways to fix the problem; the customer chooses (playbook step 4)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Sequence

from bot.recovery.situation import Situation


@dataclass(frozen=True)
class Option:
    code: str
    title: str      # the button label
    promise: str    # what we commit to once chosen
    root_cause: str # tag for the learn step


CATALOGUE = {
    "reship_express": Option("reship_express", "Send a new one by express, free",
                             "A replacement goes out today by express shipping at no cost to you.", "carrier-delay"),
    "refund_full": Option("refund_full", "Cancel and refund in full",
                          "We cancel the order and refund the full amount to your original payment method "
                          "within 3-5 business days.", "carrier-delay"),
    "wait_priority": Option("wait_priority", "Keep waiting, with daily updates",
                            "We push the carrier for priority handling and send you an update every day until "
                            "it arrives.", "carrier-delay"),
    "refund_duplicate": Option("refund_duplicate", "Refund the duplicate charge",
                               "The duplicate charge is refunded to your card today; banks take 3-5 business days "
                               "to show it.", "payment-double-capture"),
    "credit_duplicate": Option("credit_duplicate", "Take it as store credit now",
                               "The duplicate amount is added to your account as store credit right now.",
                               "payment-double-capture"),
    "billing_review": Option("billing_review", "Have billing review every charge",
                             "A billing specialist reviews every charge on your account and writes to you with "
                             "the result.", "billing-query"),
    "replace": Option("replace", "Send a replacement", "A replacement ships today; keep the faulty one until it "
                      "arrives, then use the prepaid return label.", "product-defect"),
    "refund_keep": Option("refund_keep", "Full refund, no need to return it",
                          "We refund you in full and you do not need to send anything back.", "product-defect"),
    "upgrade_model": Option("upgrade_model", "Upgrade to a different model",
                            "We send you a higher-end model instead, at no extra cost.", "product-defect"),
    "refund_return": Option("refund_return", "Return it for a full refund",
                            "We email you a prepaid return label; the refund goes out as soon as the carrier "
                            "scans the parcel.", "product-defect"),
    "unlock_link": Option("unlock_link", "Email me a secure unlock link",
                          "A one-time unlock link goes to the email on your account; it is valid for 30 minutes.",
                          "account-lockout"),
    "agent_verify": Option("agent_verify", "Verify with a person instead",
                           "A colleague verifies your identity and unlocks the account with you.", "account-lockout"),
    "assisted_order": Option("assisted_order", "Place the order for me",
                             "A colleague places the order for you at today's price and confirms by email.",
                             "site-error"),
    "notify_fixed": Option("notify_fixed", "Tell me when it's fixed",
                           "Engineering gets the report now and we email you as soon as the fix is live.",
                           "site-error"),
    "senior_agent": Option("senior_agent", "A senior colleague takes it from here",
                           "A senior colleague owns your case from now on and contacts you directly.",
                           "support-experience"),
    "callback": Option("callback", "A call back at a time I choose",
                       "We call you back at the time you choose, and the person who calls has the full history.",
                       "support-experience"),
}


def options_for(situation: Situation) -> List[Option]:
    """Options depend on the issue and on what already failed: never the same fix twice."""
    issue = situation.issue_type
    if issue == "delivery":
        codes = ["reship_express", "refund_full"] if situation.repeat_failure else ["reship_express", "wait_priority", "refund_full"]
    elif issue == "billing":
        order = situation.order
        duplicate = order is not None and len({p["amount"] for p in order.payments}) < len(order.payments)
        codes = ["refund_duplicate", "credit_duplicate"] if duplicate else ["billing_review", "refund_duplicate"]
    elif issue == "product":
        tried = {r["option_code"] for r in (situation.case.resolutions if situation.case else [])}
        codes = ["refund_keep", "upgrade_model"] if "replace" in tried else ["replace", "refund_return"]
    elif issue == "account":
        codes = ["unlock_link", "agent_verify"]
    elif issue == "technical":
        codes = ["assisted_order", "notify_fixed"]
    elif issue == "service":
        codes = ["senior_agent", "callback"]
    else:
        codes = []
    return [CATALOGUE[c] for c in codes]


_ORDINALS = {"first": 0, "1": 0, "one": 0, "second": 1, "2": 1, "two": 1, "third": 2, "3": 2, "three": 2,
             "last": -1}
_WORD = re.compile(r"[a-z0-9]+")


def pick_option(offered: Sequence[str], text: Optional[str], code: Optional[str] = None) -> Optional[Option]:
    """Which offered option the customer chose: a button's code, an ordinal, or words of its title."""
    offered = [c for c in offered if c in CATALOGUE]
    if code and code in offered:
        return CATALOGUE[code]
    if not offered or not text:
        return None
    words = _WORD.findall(text.lower()[:500])
    for word in words:
        if word in _ORDINALS:
            index = _ORDINALS[word]
            if -len(offered) <= index < len(offered):
                return CATALOGUE[offered[index]]
    best, best_overlap = None, 0
    stop = {"a", "the", "it", "me", "i", "to", "for", "of", "on", "and", "my", "please", "new", "one", "by"}
    for candidate in offered:
        title_words = set(_WORD.findall(CATALOGUE[candidate].title.lower())) - stop
        overlap = len(title_words & set(words))
        if overlap > best_overlap:
            best, best_overlap = CATALOGUE[candidate], overlap
    return best
