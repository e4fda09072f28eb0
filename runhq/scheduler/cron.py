"""Cron expressions evaluated in a time zone: validation and DST-correct firing instants.

Pure functions, no database. ``croniter`` does the calendar search; this module decides what a
cron expression means across daylight-saving transitions.

Syntax: standard 5-field cron (minute hour day-of-month month day-of-week) with ``*``, lists
``a,b``, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, month names ``JAN``-``DEC``, day names
``SUN``-``SAT`` (day of week 0-7, 0 and 7 are Sunday), and the macros ``@hourly``, ``@daily``
(``@midnight``), ``@weekly``, ``@monthly``, ``@yearly`` (``@annually``). When both day of month
and day of week are restricted, a day matching either fires (croniter's default). Seconds and
year fields, and croniter's extensions (``L``, ``W``, ``#``, ``H``, ``?``, wrap-around ranges
such as ``FRI-MON``), are refused: a schedule must mean the same thing in any cron.

DST policy (a firing is an instant; the expression matches wall-clock times in the zone):

* A wall-clock time that exists once fires at that instant.
* A wall-clock time that exists twice (fall back, Europe/Paris 2026-10-25 02:30) fires once, at
  its **first** occurrence (``fold=0``: 02:30 CEST = 00:30 UTC).
* A wall-clock time that does not exist (spring forward, Europe/Paris 2026-03-29 02:30) fires at
  the first instant after the gap (the transition: 03:00 CEST = 01:00 UTC). Several matches in
  the same gap (``*/15 2 * * *``) fire once at that instant, and a match at the end of the gap
  (03:00) is the same instant, so it fires once too.

Put simply: a match at wall-clock time ``t`` fires at the first instant whose wall clock reads
``t`` or later. So a daily job fires exactly once every local day; an hourly job fires 23 times
on a spring-forward day (02:00 becomes 03:00, an hour after 01:00) and 24, not 25, on a
fall-back day (two hours apart across the repeated hour); firings are strictly increasing.
This mapping of wall-clock times to instants never goes backwards, which is what lets
``latest_firing`` search backwards with croniter and agree with ``next_firings``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from runhq.errors import InvalidInput

MAX_CRON_LENGTH = 100  # the column and the API field are String(100)

_EXAMPLE = "e.g. '30 2 * * *' for 02:30 every day"
_SYNTAX = "numbers, '*', lists 'a,b', ranges 'a-b' and steps '*/n' or 'a-b/n'"

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
        start=1,
    )
}
_DAY_NAMES = {name: n for n, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # at most (leap February)
_DIGITS = re.compile(r"[0-9]+")


class _Field(NamedTuple):
    name: str
    low: int
    high: int  # highest accepted value (7 for day of week: Sunday again)
    top: int  # highest distinct value ('*' spans low..top)
    names: dict[str, int]
    hint: str


_FIELDS = (
    _Field("minute", 0, 59, 59, {}, ""),
    _Field("hour", 0, 23, 23, {}, ""),
    _Field("day of month", 1, 31, 31, {}, ""),
    _Field("month", 1, 12, 12, _MONTH_NAMES, ", or names JAN-DEC"),
    _Field("day of week", 0, 7, 6, _DAY_NAMES, ", or names SUN-SAT (0 and 7 are Sunday)"),
)


def _invalid(message: str, field: str = "cron") -> InvalidInput:
    return InvalidInput(message, details={"field": field})


def _bad_cron(message: str) -> InvalidInput:
    return _invalid(f"cron: {message} — {_EXAMPLE}")


def _value(text: str, field: _Field, item: str) -> int:
    upper = text.upper()
    if upper in field.names:
        return field.names[upper]
    if not _DIGITS.fullmatch(text):
        raise _bad_cron(f"{field.name} {item!r} is not valid: use {_SYNTAX}{field.hint}")
    number = int(text)
    if not field.low <= number <= field.high:
        raise _bad_cron(f"{field.name} {number} is out of range {field.low}-{field.high}")
    return number


def _parse_item(item: str, field: _Field) -> tuple[str, set[int]]:
    """One comma-separated item: its normalised text and the values it matches."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        span = field.top - field.low
        if not _DIGITS.fullmatch(step_text) or not 1 <= int(step_text) <= span:
            raise _bad_cron(f"{field.name} step in {item!r} must be a number from 1 to {span}")
        step = int(step_text)
    if base == "*":
        low, high = field.low, field.top
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _value(first, field, item), _value(last, field, item)
        if low > high:
            raise _bad_cron(
                f"{field.name} range {item!r} goes backwards; ranges do not wrap around, "
                f"split it: '{low}-{field.top},{field.low}-{high}'"
            )
    else:
        low = high = _value(base, field, item)
        if slash:
            raise _bad_cron(
                f"{field.name} step {item!r} needs a range: '{low}-{field.top}/{step}' "
                f"or '*/{step}'"
            )
    values = {value % 7 if field.high == 7 else value for value in range(low, high + 1, step)}
    return _DIGITS.sub(lambda number: str(int(number[0])), item.upper()), values


def _parse_field(text: str, field: _Field) -> tuple[str, set[int]]:
    items = text.split(",")
    if "" in items:
        raise _bad_cron(f"{field.name} {text!r} has an empty list item")
    if "*" in items and len(items) > 1:
        raise _bad_cron(f"{field.name} {text!r} mixes '*' with other values; '*' is every value")
    parsed = [_parse_item(item, field) for item in items]
    return ",".join(part for part, _ in parsed), set().union(*(values for _, values in parsed))


class _Cron(NamedTuple):
    normalised: str  # what check_cron returns and the schedule stores
    fields: str  # what croniter gets: each field '*' or the explicit list of its values


@lru_cache(maxsize=512)
def _parse(expr: str) -> _Cron:
    text = expr.strip()
    if not text:
        raise _bad_cron("the expression is empty")
    if len(text) > MAX_CRON_LENGTH:
        raise _bad_cron(f"the expression is longer than {MAX_CRON_LENGTH} characters")
    if not text.isascii():
        raise _bad_cron("the expression contains non-ASCII characters")
    if text.startswith("@"):
        macro = text.lower()
        if macro not in _MACROS:
            known = ", ".join(_MACROS)
            raise _bad_cron(f"unknown macro {text!r}; use one of {known} or 5 fields")
        return _Cron(macro, _parse(_MACROS[macro]).fields)
    parts = text.split()
    if len(parts) != len(_FIELDS):
        extra = " (seconds and years are not supported)" if len(parts) > len(_FIELDS) else ""
        raise _bad_cron(
            f"expected 5 fields (minute hour day month weekday), got {len(parts)}{extra}"
        )
    parsed = [_parse_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)]
    normalised = " ".join(part for part, _ in parsed)
    days, months = parsed[2][1], parsed[3][1]
    if parts[4] == "*" and not any(day <= _DAYS_IN_MONTH[m - 1] for day in days for m in months):
        raise _bad_cron(f"{normalised!r} never fires: no selected month has that day")
    # croniter reads some syntax its own way (croniter 7: an equal range "5-5" or "JAN-JAN" is
    # the whole cycle, reversed ranges wrap around): give it plain values only. A '*' stays a
    # '*' so that day of month and day of week combine as croniter does (either matches when
    # both are restricted).
    fields = " ".join(
        "*" if part == "*" else ",".join(map(str, sorted(values)))
        for part, (_, values) in zip(parts, parsed, strict=True)
    )
    if not croniter.is_valid(fields):  # defensive: cannot happen with plain values
        raise _bad_cron(f"{normalised!r} is not a valid expression")
    return _Cron(normalised, fields)


def check_cron(expr: str) -> str:
    """Validate a standard 5-field cron expression (or macro); returns it normalised.

    Normalised: single spaces, names upper-cased, macros lower-cased and kept as macros.
    Raises ``InvalidInput`` (``details={"field": "cron"}``) saying what is wrong.
    """
    return _parse(expr).normalised


def check_timezone(name: str) -> str:
    """Validate an IANA time zone name (``Europe/Paris``); returns it."""
    try:
        if not name or name != name.strip():
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _invalid(
            f"timezone: {name!r} is not an IANA time zone — e.g. 'Europe/Paris' or 'UTC'",
            field="timezone",
        ) from None
    return name


# --- wall-clock times to instants -------------------------------------------------------------


def _transition(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The first whole second in ``(before, after]`` whose UTC offset differs from ``before``'s.

    ``before`` and ``after`` are UTC instants on either side of one transition (at most the
    size of its jump apart); transitions are at whole seconds in the tz database.
    """
    offset = before.astimezone(zone).utcoffset()
    low, high = 0, int((after - before).total_seconds())
    while high - low > 1:
        middle = (low + high) // 2
        if (before + timedelta(seconds=middle)).astimezone(zone).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return before + timedelta(seconds=high)


def _instant(wall: datetime, zone: ZoneInfo) -> tuple[datetime, datetime | None]:
    """The firing instant (UTC) of the naive wall-clock time ``wall``, and the gap's end.

    PEP 495: for an existing time ``fold=0`` is the first occurrence, so fold 0 is never later
    than fold 1; for a time in a gap, ``fold=0`` uses the offset before the transition and
    ``fold=1`` the one after, so fold 0 comes out *later* than fold 1, and the transition lies
    between them. The second value is the naive wall-clock end of the gap (None if no gap).
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first <= second:
        return first, None
    moment = _transition(second, first, zone)
    return moment, moment.astimezone(zone).replace(tzinfo=None)


def _wall_bound(moment: datetime, zone: ZoneInfo) -> tuple[datetime, bool]:
    """Where ``moment`` sits on the wall clock, for searching matches around it.

    Returns ``(wall, exclusive)``: every wall-clock time ``t <= wall`` (``t < wall`` when
    ``exclusive``) maps to an instant ``<= moment``, every later one to an instant ``> moment``.
    Usually ``wall`` is the local time of ``moment``. In the repeated hour's second pass the
    whole repeated hour maps to its first pass, i.e. before ``moment``: the bound is then the
    wall-clock end of the repeated hour (exclusive).
    """
    local = moment.astimezone(zone)
    wall = local.replace(tzinfo=None)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first == moment:
        return wall, False
    change = _transition(first, moment, zone)  # fall back: the repeated hour starts here
    jump = moment - first  # the size of the step back
    return change.astimezone(zone).replace(tzinfo=None) + jump, True


def _aware_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value!r}")
    return value.astimezone(UTC)


def next_firings(expr: str, tz: str, after: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` firing instants strictly after ``after``, aware UTC, increasing.

    ``expr`` matches wall-clock times in ``tz`` under the DST policy of this module. Fewer than
    ``count`` come back only when the calendar runs out (year 9999).
    """
    cron = _parse(expr)
    zone = ZoneInfo(check_timezone(tz))
    start = _aware_utc(after, "after")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    firings: list[datetime] = []
    try:
        wall, exclusive = _wall_bound(start, zone)
        # croniter's get_next returns matches after the start's minute; matches are whole
        # minutes, so starting a second before an exclusive bound keeps a match at the bound.
        search = croniter(cron.fields, wall - timedelta(seconds=1) if exclusive else wall)
        # Each step yields a new firing except right after a gap (its end's match repeats the
        # gap's instant): 2 * count steps suffice; the cap only guards against a bug.
        steps = 0
        while len(firings) < count:
            steps += 1
            if steps > 2 * count + 4:
                raise RuntimeError(f"next_firings did not converge for {expr!r} in {tz}")
            moment, gap_end = _instant(search.get_next(datetime), zone)
            if gap_end is not None:  # skip the rest of the gap: it all maps to ``moment``
                search = croniter(cron.fields, gap_end - timedelta(seconds=1))
            if moment > start and (not firings or moment > firings[-1]):
                firings.append(moment)
    except (CroniterBadDateError, OverflowError):
        pass  # beyond year 9999
    return firings


def latest_firing(expr: str, tz: str, after: datetime, until: datetime) -> datetime | None:
    """The last firing instant ``f`` with ``after < f <= until`` (aware UTC), or None.

    The scheduler fires a missed schedule once, at this instant, not once per missed slot.
    Equal to the last of ``next_firings(expr, tz, after, ...)`` that is ``<= until``.
    """
    cron = _parse(expr)
    zone = ZoneInfo(check_timezone(tz))
    low = _aware_utc(after, "after")
    high = _aware_utc(until, "until")
    if high <= low:
        return None
    try:
        wall, exclusive = _wall_bound(high, zone)
        # get_prev returns the last match strictly before its start: nudge an inclusive bound.
        bound = wall if exclusive else wall + timedelta(microseconds=1)
        moment, _ = _instant(croniter(cron.fields, bound).get_prev(datetime), zone)
    except (CroniterBadDateError, OverflowError):
        return None  # before year 1
    return moment if moment > low else None
