"""`POST /v1/attribution/analyze`: paths in, credit per model and channel out."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ModelName = Literal[
    "first_touch", "last_touch", "last_non_direct", "linear", "time_decay", "position_based", "markov", "shapley"
]
MODEL_NAMES: tuple[ModelName, ...] = ModelName.__args__  # type: ignore[attr-defined]
MAX_PATHS = 100_000
MAX_PATH_LENGTH = 200
# Channel names are free text, but never one of the chain's own state names: those are in brackets.
_CHANNEL = r"^[^()\s>][^>]{0,127}$"


class AnalyzePath(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: list[str] = Field(min_length=1, max_length=MAX_PATH_LENGTH)
    conversions: float = Field(default=0, ge=0, allow_inf_nan=False)
    nulls: float = Field(default=0, ge=0, allow_inf_nan=False, description="how many times the path did not convert")
    value: float = Field(default=0, ge=0, allow_inf_nan=False)
    days_before: list[float] | None = Field(
        default=None, description="per channel, days between the touch and the conversion (time_decay needs it)"
    )

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, channels: list[str]) -> list[str]:
        for channel in channels:
            if not re.match(_CHANNEL, channel):
                raise ValueError(f"not a channel name: {channel[:40]!r} (1-128 characters, no '>', no brackets)")
        return channels

    @model_validator(mode="after")
    def _days_per_channel(self) -> AnalyzePath:
        if self.days_before is not None:
            if len(self.days_before) != len(self.channels):
                raise ValueError("days_before needs one entry per channel")
            if any(d < 0 or d != d or d == float("inf") for d in self.days_before):
                raise ValueError("days_before entries are finite and not negative")
        return self


class AnalyzeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[AnalyzePath] = Field(min_length=1, max_length=MAX_PATHS)
    models: list[ModelName] = Field(default_factory=lambda: list(MODEL_NAMES), min_length=1)
    half_life_days: float = Field(default=7.0, gt=0, le=3650, description="time_decay")
    position_weights: tuple[float, float, float] = Field(
        default=(0.4, 0.2, 0.4), description="position_based: first, middle, last"
    )
    markov_order: int = Field(default=1, ge=1, le=4)
    use_nulls: bool = Field(default=True, description="markov: count the paths that did not convert")
    direct_channel: str = Field(default="direct", min_length=1, max_length=128, description="last_non_direct")

    @field_validator("models")
    @classmethod
    def _distinct(cls, models: list[ModelName]) -> list[ModelName]:
        return list(dict.fromkeys(models))

    @field_validator("position_weights")
    @classmethod
    def _shares(cls, weights: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(weights) < 0 or abs(sum(weights) - 1) > 1e-9:
            raise ValueError("position_weights are three non-negative shares adding up to 1")
        return weights

    @model_validator(mode="after")
    def _time_decay_has_times(self) -> AnalyzeRequest:
        if "time_decay" in self.models and any(p.days_before is None for p in self.paths if p.conversions or p.value):
            raise ValueError("time_decay needs days_before on every converting path")
        return self


class ChannelCredit(BaseModel):
    conversions: float
    value: float


class AnalyzeTotals(BaseModel):
    conversions: float
    value: float
    nulls: float


class AnalyzeAnswer(BaseModel):
    models: dict[str, dict[str, ChannelCredit]]
    removal_effects: dict[str, float] = Field(default_factory=dict, description="markov, per channel, 0..1")
    totals: AnalyzeTotals
    conversion_probability: float | None = Field(default=None, description="markov: P(conversion) from the start")
