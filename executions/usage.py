"""What a run used, for the execution page: its tokens, and what they cost where the agent has prices.

Agents record usage as named counts (``ctx.record_usage``): an ``llm`` agent records the
OpenAI-style ``prompt_tokens``, ``completion_tokens`` and ``total_tokens`` its endpoint reports;
an ``http`` agent whatever its service returns under ``"usage"`` (some say ``input_tokens`` and
``output_tokens``). Prices live on the agent, in its settings::

    {"prices": {"input_per_million": 0.15, "output_per_million": 0.6, "currency": "USD"}}

(``routing.kinds.validation`` checks them). The cost is worked out with ``Decimal`` at the agent's
current prices; an agent without prices shows tokens and no cost.
"""

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

INPUT_NAMES = ("prompt_tokens", "input_tokens")
OUTPUT_NAMES = ("completion_tokens", "output_tokens")
TOTAL_NAMES = ("total_tokens",)
PER_MILLION = Decimal(1_000_000)


@dataclass
class UsageSummary:
    input_tokens: int | float | None = None
    output_tokens: int | float | None = None
    total_tokens: int | float | None = None
    other: dict[str, Any] = field(default_factory=dict)  # anything else the agent counted, as recorded
    cost: Decimal | None = None
    currency: str = ""

    @property
    def cost_text(self) -> str:
        if self.cost is None:
            return ""
        # Six places show a fraction of a cent on a short run; trailing zeros are noise.
        text = f"{self.cost.quantize(Decimal('0.000001')):f}".rstrip("0").rstrip(".")
        return f"{text} {self.currency}".strip()


def _count(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if float(value).is_integer() else value


def _first(usage: dict, names: tuple[str, ...]) -> int | float | None:
    for name in names:
        if name in usage and _count(usage[name]) is not None:
            return _count(usage[name])
    return None


def _price(prices: dict, name: str) -> Decimal | None:
    value = prices.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        return None
    return price if price.is_finite() and price >= 0 else None


def usage_summary(usage: Any, agent_settings: Any = None) -> UsageSummary | None:
    """``usage`` (an execution's) as tokens, other counts and cost; None when nothing was recorded."""
    if not usage:
        return None
    if not isinstance(usage, dict):
        return UsageSummary(other={"usage": usage})
    known = INPUT_NAMES + OUTPUT_NAMES + TOTAL_NAMES
    summary = UsageSummary(
        input_tokens=_first(usage, INPUT_NAMES),
        output_tokens=_first(usage, OUTPUT_NAMES),
        total_tokens=_first(usage, TOTAL_NAMES),
        other={name: value for name, value in usage.items() if name not in known or _count(value) is None},
    )
    if summary.total_tokens is None and summary.input_tokens is not None and summary.output_tokens is not None:
        summary.total_tokens = summary.input_tokens + summary.output_tokens
    prices = agent_settings.get("prices") if isinstance(agent_settings, dict) else None
    if isinstance(prices, dict):
        summary.cost, summary.currency = _cost(summary, prices), str(prices.get("currency") or "")
    return summary


def _cost(summary: UsageSummary, prices: dict) -> Decimal | None:
    """The run's cost, or None when a count it has has no price (a part-cost would mislead)."""
    cost, priced = Decimal(0), False
    for tokens, price_name in (
        (summary.input_tokens, "input_per_million"),
        (summary.output_tokens, "output_per_million"),
    ):
        if tokens is None:
            continue
        price = _price(prices, price_name)
        if price is None:
            return None
        cost += Decimal(str(tokens)) * price / PER_MILLION
        priced = True
    return cost if priced else None
