"""What every check reports: one finding type for `validate` and `doctor` alike."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# pass: as it should be. known: differs only in a documented way (see checks.fidelity).
# warn: works, but not as well as it could. fail: wrong. error: the check could not be made.
Status = Literal["pass", "known", "warn", "fail", "error"]
FAILING: tuple[Status, ...] = ("fail", "error")


@dataclass(frozen=True)
class Finding:
    subject: str  # what was checked: a variant, a loaded model, the daemon's address
    check: str  # which check: fidelity, registration, generation, code, daemon, context, ...
    status: Status
    message: str  # one line, for a person
    fix: str | None = None  # what to do about it, when there is something to do
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def failed(findings: list[Finding]) -> bool:
    return any(f.status in FAILING for f in findings)
