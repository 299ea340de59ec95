"""Kubernetes resource quantities ("500m", "2", "64Gi", "1e3") as numbers."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|)$")


def parse_quantity(value: str | int | float, field: str) -> Decimal:
    """`value` as a Decimal; ValueError naming `field` when it is not a quantity."""
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"{field}: {value!r} is not a Kubernetes quantity")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:
        raise ValueError(f"{field}: {value!r} is not a Kubernetes quantity") from exc
    return number * Decimal(_SUFFIX[match.group(2)])


def cpu_cores(value, field: str = "cpu") -> float:
    return float(parse_quantity(value, field))


def byte_count(value, field: str = "memory") -> int:
    return int(parse_quantity(value, field))
