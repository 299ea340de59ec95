"""Kubernetes resource quantities ("8", "500m", "100Gi"): checked where they are configured, scaled per GPU.

Only what the launcher writes is supported: a plain decimal number with an optional binary (Ki..Ei), decimal (k..E)
or milli (m) suffix. Scaling keeps the suffix, so `memory_per_gpu: 100Gi` x 8 GPUs requests `800Gi`.
"""

from __future__ import annotations

import re
from decimal import Decimal

_QUANTITY = re.compile(r"^(?P<number>[0-9]+(\.[0-9]+)?)(?P<suffix>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def check_quantity(value: str, field: str) -> str:
    """`value` if it is a quantity the launcher can scale; a ValueError naming `field` otherwise."""
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise ValueError(f"{field}: {value!r} is not a Kubernetes quantity such as '8', '500m', '64Gi'")
    return value


def scale_quantity(value: str, factor: int, field: str = "quantity") -> str:
    """`value` x `factor` as a quantity with the same suffix ('100Gi' x 8 -> '800Gi', '1.5' x 3 -> '4.5')."""
    match = _QUANTITY.match(check_quantity(value, field))
    total = Decimal(match["number"]) * factor
    text = format(total.normalize(), "f") if total else "0"
    return f"{text}{match['suffix'] or ''}"
