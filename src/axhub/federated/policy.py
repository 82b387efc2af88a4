"""A member's site policy: what its own client agrees to do, checked on the member's side.

The server's instructions are never trusted: the client reads the policy from its own
organisation and refuses (or trims) anything the policy forbids.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from axhub.core.errors import AxHubError, PermissionDeniedError


class FedInputError(AxHubError):
    """Bad input to a collaboration, naming the field (the dashboard shows its label)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.details = [{"field": field}]


# Metrics a client can compute locally; the policy says which of them may leave the site.
KNOWN_METRICS = ("rmse", "mae", "accuracy", "loss", "n_samples")


class DifferentialPrivacy(BaseModel):
    """Gaussian mechanism on the member's model update: clip its L2 norm, add noise."""

    model_config = ConfigDict(extra="forbid")
    clip_norm: float = Field(gt=0, description="L2 bound of one round's update")
    noise_multiplier: float = Field(gt=0, description="noise std / clip_norm")
    epsilon_budget: float = Field(gt=0, description="total ε this member allows")
    delta: float = Field(default=1e-5, gt=0, lt=1)


class SitePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_local_samples: int = Field(default=100, ge=1)
    dp: DifferentialPrivacy | None = None
    secure_aggregation_required: bool = False
    allowed_metrics: list[str] = Field(default_factory=lambda: ["n_samples"])

    @field_validator("allowed_metrics")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(KNOWN_METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {list(KNOWN_METRICS)}")
        return sorted(set(value))

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> SitePolicy:
        """A policy from user input, with one readable error instead of a traceback."""
        from pydantic import ValidationError

        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "policy"
            raise FedInputError(f"site policy: field '{field}': {first['msg']}", field) from None

    def check_samples(self, n: int) -> None:
        if n < self.min_local_samples:
            raise PermissionDeniedError(
                f"site policy: {n} local samples, the policy requires at least {self.min_local_samples}"
            )

    def check_secure_aggregation(self, offered: bool) -> None:
        if self.secure_aggregation_required and not offered:
            raise PermissionDeniedError(
                "site policy: secure aggregation is required and this run does not provide it"
            )

    def outgoing_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Only the metrics the policy lets leave the site."""
        return {k: float(v) for k, v in metrics.items() if k in self.allowed_metrics}
