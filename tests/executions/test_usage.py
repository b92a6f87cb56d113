"""Usage on the execution page: tokens as the agents record them, and cost where the agent has prices."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from executions.usage import usage_summary
from routing.kinds import validate_kind_settings

PRICES = {"prices": {"input_per_million": 0.15, "output_per_million": 0.6, "currency": "USD"}}
LLM = {"base_url": "http://localhost:11434/v1", "model": "llama3.2"}


def test_an_llm_agents_tokens_are_priced_exactly():
    usage = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}

    summary = usage_summary(usage, PRICES)

    assert (summary.input_tokens, summary.output_tokens, summary.total_tokens) == (1200, 300, 1500)
    # 1200 * 0.15 / 1e6 + 300 * 0.6 / 1e6, in Decimal: no float dust.
    assert summary.cost == Decimal("0.00036")
    assert summary.cost_text == "0.00036 USD"
    assert summary.other == {}


def test_without_prices_there_are_tokens_and_no_cost():
    summary = usage_summary({"prompt_tokens": 10, "completion_tokens": 5}, {"model": "m"})

    assert summary.total_tokens == 15  # added up when the agent did not say
    assert summary.cost is None and summary.cost_text == ""


def test_input_and_output_token_names_count_too_and_other_counts_are_kept():
    summary = usage_summary({"input_tokens": 1_000_000, "output_tokens": 0, "requests": 3}, PRICES)

    assert (summary.input_tokens, summary.output_tokens) == (1_000_000, 0)
    assert summary.cost_text == "0.15 USD"
    assert summary.other == {"requests": 3}


def test_a_missing_price_for_a_count_shows_no_cost_rather_than_part_of_one():
    prices = {"prices": {"input_per_million": 1}}
    assert usage_summary({"prompt_tokens": 5, "completion_tokens": 5}, prices).cost is None
    assert usage_summary({"prompt_tokens": 500_000}, prices).cost_text == "0.5"


@pytest.mark.parametrize("usage", [None, {}, 0])
def test_nothing_recorded_is_no_usage_panel(usage):
    assert usage_summary(usage, PRICES) is None


def test_odd_stored_usage_is_shown_as_it_is():
    assert usage_summary([1, 2], PRICES).other == {"usage": [1, 2]}
    assert usage_summary({"prompt_tokens": "many"}, PRICES).other == {"prompt_tokens": "many"}
    assert usage_summary({"prompt_tokens": 10}, {"prices": {"input_per_million": "x"}}).cost is None


def test_prices_are_a_setting_of_llm_and_http_agents_and_are_checked():
    validate_kind_settings("llm", {**LLM, **PRICES})
    validate_kind_settings("http", {"url": "https://a.example.com/x", **PRICES})
    validate_kind_settings("python", {"path": "tests.agents.echo", **PRICES})

    with pytest.raises(ValidationError) as refused:
        validate_kind_settings("llm", {**LLM, "prices": {"input_per_million": -1, "per_token": 2, "currency": 5}})
    assert refused.value.message_dict["settings"] == [
        "Unknown price 'per_token'; expected some of: currency, input_per_million, output_per_million.",
        "settings.prices.input_per_million must be a number at least 0 (the price of a million tokens).",
        'settings.prices.currency must be a short text, like "USD".',
    ]
    with pytest.raises(ValidationError, match="must be an object"):
        validate_kind_settings("http", {"url": "https://a.example.com/x", "prices": 0.15})
