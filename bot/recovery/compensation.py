"""Compensation the bot may grant on its own: tiers and limits come from settings, not code."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Dict, Optional

from bot.casedb.repository import compensation_limits
from bot.settings import section


@dataclass
class Grant:
    kind: str
    amount: Decimal
    currency: str
    points: int
    reason: str

    @property
    def granted(self) -> bool:
        return self.kind != "none" and self.amount > 0

    def describe(self) -> str:
        return f"a {self.currency_symbol}{self.amount:.2f} credit on your account" if self.granted else ""

    @property
    def currency_symbol(self) -> str:
        return {"USD": "$", "EUR": "€", "GBP": "£"}.get(self.currency, self.currency + " ")


def compensation_for(
    issue_type: str,
    repeat_failure: bool,
    frustration_level: str,
    order_total: Optional[Decimal] = None,
    already_granted: Decimal = Decimal("0"),
    settings: Optional[Dict] = None,
    customer_already_granted: Decimal = Decimal("0"),
) -> Grant:
    """Score severity, repeat failure and frustration; pick the tier; clip to the limits.

    ``already_granted`` counts this case's grants, ``customer_already_granted`` the customer's grants
    on all cases within the per-customer window.
    """
    settings = settings or section("compensation")
    currency = str(settings.get("currency", "USD"))
    points = int((settings.get("severity") or {}).get(issue_type, 0))
    if repeat_failure:
        points += int(settings.get("repeat_failure_points", 2))
    points += int((settings.get("frustration_points") or {}).get(frustration_level, 0))
    tiers = sorted(settings.get("tiers") or [], key=lambda t: -int(t.get("min_points", 0)))
    tier = next((t for t in tiers if points >= int(t.get("min_points", 0))), None)
    reason = (f"severity of {issue_type} issue" + (", repeat failure" if repeat_failure else "")
              + f", customer {frustration_level}")
    if tier is None or tier.get("kind", "none") == "none":
        return Grant("none", Decimal("0"), currency, points, reason)
    amount = Decimal(str(tier.get("amount", 0)))
    per_case, per_customer, _ = compensation_limits(settings)
    limit = min(per_case - already_granted, per_customer - customer_already_granted)
    if order_total is not None and order_total > 0:
        limit = min(limit, Decimal(str(order_total)) * Decimal(str(settings.get("max_share_of_order", 1))))
    amount = max(Decimal("0"), min(amount, limit)).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    return Grant(str(tier["kind"]) if amount > 0 else "none", amount, currency, points, reason)
