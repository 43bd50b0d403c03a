"""The optimiser's state: everything step n+1 needs from step n, as plain JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Candidate:
    template: str
    accuracy: float  # 1-shot train top-1, %, at full precision (the official meta-prompt prints it so)
    step: int
    shown: str | None = None  # how the LLM sees it, where that is not the template with {} as <category> (official protocol)

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.shown is None:
            del d["shown"]  # step files of runs that never set it stay as they were
        return d


@dataclass(frozen=True)
class Guidance:
    """p+ = global best, p- = best template strictly below it (set when a new best appears)."""

    positive: str
    negative: str


@dataclass(frozen=True)
class State:
    step: int
    history: tuple[Candidate, ...]  # unique templates in the order they were found
    best: Candidate
    guidance: Guidance | None = None
    failures: int = 0  # candidates that could not be parsed, over the whole run

    def to_dict(self) -> dict:
        d = asdict(self)
        d["history"] = [c.to_dict() for c in self.history]
        d["best"] = self.best.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "State":
        return cls(
            step=d["step"],
            history=tuple(Candidate(**c) for c in d["history"]),
            best=Candidate(**d["best"]),
            guidance=Guidance(**d["guidance"]) if d.get("guidance") else None,
            failures=d.get("failures", 0),
        )

    def seen(self, template: str) -> Candidate | None:
        return next((c for c in self.history if c.template == template), None)
