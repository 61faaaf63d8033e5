"""Input checks shared by every domain of the reference cloud: ids, text, money, times.

Each check raises `InvalidRequestError` with a sentence that names the field and what is allowed,
before anything is written, so bad input never leaves a partial write behind.
"""

from __future__ import annotations

import datetime as dt
import re

from cloud_stub.errors import InvalidRequestError
from cloud_stub.storage import now_ms

#: Longest id (member, coupon, payment, …) accepted.
MAX_ID_LEN = 128
#: Longest free text (names, titles, evidence, expressions) accepted.
MAX_TEXT_LEN = 1000
#: Largest single amount accepted anywhere: 10,000,000.00 yuan in cents.
MAX_AMOUNT_CENTS = 1_000_000_000
#: Earliest and latest plausible event times: 2000-01-01, and a day after now (clock skew).
MIN_EVENT_MS = 946_684_800_000
FUTURE_SLACK_MS = 24 * 3600 * 1000
#: Furthest future end of a validity window: ten years.
MAX_VALIDITY_AHEAD_MS = 10 * 366 * 24 * 3600 * 1000

_ID_RE = re.compile(r"[A-Za-z0-9._:@+-]+")


def ident(value: str, field: str, *, required: bool = True) -> str:
    """An id: non-empty (when required), at most MAX_ID_LEN, letters/digits/._:@+- only."""
    if not value:
        if required:
            raise InvalidRequestError(f"{field} is required")
        return value
    if len(value) > MAX_ID_LEN:
        raise InvalidRequestError(f"{field} is {len(value)} characters long; at most {MAX_ID_LEN} are allowed")
    if not _ID_RE.fullmatch(value):
        raise InvalidRequestError(f"{field} {value[:40]!r} may only contain letters, digits and . _ : @ + -")
    return value


def text(value: str, field: str, *, required: bool = False, max_len: int = MAX_TEXT_LEN) -> str:
    """Free text of at most `max_len` characters, without control characters."""
    if required and not value.strip():
        raise InvalidRequestError(f"{field} is required")
    if len(value) > max_len:
        raise InvalidRequestError(f"{field} is {len(value)} characters long; at most {max_len} are allowed")
    if any(ord(ch) < 32 for ch in value):
        raise InvalidRequestError(f"{field} contains control characters")
    return value


def amount(value: int, field: str, *, allow_zero: bool = False) -> int:
    """A money amount in integer cents: positive (or zero when allowed), at most MAX_AMOUNT_CENTS."""
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidRequestError(f"{field} must be {'>= 0' if allow_zero else '> 0'} cents, got {value}")
    if value > MAX_AMOUNT_CENTS:
        raise InvalidRequestError(f"{field} of {value} cents is above the limit of {MAX_AMOUNT_CENTS}")
    return int(value)


def event_time(value: int, field: str, *, now: int | None = None) -> int:
    """An event time in epoch ms: not before 2000-01-01 and not more than a day in the future."""
    current = now_ms() if now is None else now
    if value < MIN_EVENT_MS or value > current + FUTURE_SLACK_MS:
        raise InvalidRequestError(
            f"{field}={value} is not a plausible time (epoch milliseconds between 2000-01-01 and tomorrow)"
        )
    return int(value)


def window(valid_from_ms: int, valid_until_ms: int, field: str = "validity") -> None:
    """A validity window: from ≤ until, from after 2000, until at most ten years ahead."""
    if valid_from_ms < MIN_EVENT_MS or valid_until_ms > now_ms() + MAX_VALIDITY_AHEAD_MS:
        raise InvalidRequestError(f"{field} window must lie between 2000-01-01 and ten years from now (epoch ms)")
    if valid_until_ms < valid_from_ms:
        raise InvalidRequestError(f"{field} ends ({valid_until_ms}) before it starts ({valid_from_ms})")


def birthday(value: str) -> str:
    """'' or a real YYYY-MM-DD date between 1900-01-01 and today."""
    if not value:
        return value
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as err:
        raise InvalidRequestError(f"birthday {value[:20]!r} is not a YYYY-MM-DD date") from err
    if len(value) != 10 or not dt.date(1900, 1, 1) <= day <= dt.date.today():
        raise InvalidRequestError(f"birthday {value} must be a YYYY-MM-DD date between 1900-01-01 and today")
    return value


def phone(value: str) -> str:
    """'' or a phone number of 7 to 15 digits (spaces, dashes and a leading + allowed)."""
    if not value:
        return value
    digits = "".join(ch for ch in value if ch.isdigit())
    if not 7 <= len(digits) <= 15 or not re.fullmatch(r"\+?[0-9 -]+", value):
        raise InvalidRequestError("phone must have 7 to 15 digits (spaces, dashes and a leading + allowed)")
    return value
