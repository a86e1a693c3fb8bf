"""The service-recovery playbook's steps, as recorded in the tracker (slot ``playbook_steps``)."""
from __future__ import annotations

from typing import Iterable, List

STEPS = (
    "acknowledge",
    "apologize",
    "explain",
    "resolve_options",
    "compensate",
    "keep_informed",
    "close_loop",
    "learn",
)


def add_steps(done: Iterable[str] | None, *steps: str) -> List[str]:
    """Append newly reached steps in order, keeping the first time each was reached."""
    result = [s for s in (done or []) if s in STEPS]
    for step in steps:
        if step not in STEPS:
            raise ValueError(f"unknown playbook step {step!r}")
        if step not in result:
            result.append(step)
    return result
