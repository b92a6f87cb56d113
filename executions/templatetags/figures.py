"""Filters for the system pages' figures: a run time and a share, readable at a glance."""

from django import template

register = template.Library()


@register.filter
def seconds(value: float | None) -> str:
    """``0.0123`` -> "12 ms", ``4.5`` -> "4.5 s", ``754`` -> "12.6 min"; a dash for no value."""
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.3g} s"
    if value < 3600:
        return f"{value / 60:.3g} min"
    return f"{value / 3600:.3g} h"


@register.filter
def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"
