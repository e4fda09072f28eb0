"""Cron validation and DST-correct firing instants (runhq/scheduler/cron.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runhq.errors import InvalidInput
from runhq.scheduler.cron import check_cron, check_timezone, latest_firing, next_firings

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def day_firings(expr: str, tz: str, day: date) -> list[datetime]:
    """Every firing whose local date (in ``tz``) is ``day``."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC) - timedelta(hours=3)
    found = [f for f in next_firings(expr, tz, start, 200) if f.astimezone(zone).date() == day]
    assert len(found) < 150, "window too small for this expression"
    return found


def local(moment: datetime, tz: str) -> datetime:
    return moment.astimezone(ZoneInfo(tz))


# --- daily at 02:30 around both Paris transitions ------------------------------------------


def test_daily_fires_once_a_day_across_spring_forward() -> None:
    for offset in range(-4, 5):
        day = date(2026, 3, 29) + timedelta(days=offset)
        firings = day_firings("30 2 * * *", PARIS, day)
        assert len(firings) == 1, day
        if offset == 0:  # 02:30 does not exist: the first instant after the gap, 03:00 CEST
            assert firings == [utc(2026, 3, 29, 1, 0)]
            assert local(firings[0], PARIS).isoformat() == "2026-03-29T03:00:00+02:00"
        else:
            assert local(firings[0], PARIS).time() == time(2, 30)


def test_daily_fires_once_a_day_across_fall_back() -> None:
    for offset in range(-4, 5):
        day = date(2026, 10, 25) + timedelta(days=offset)
        firings = day_firings("30 2 * * *", PARIS, day)
        assert len(firings) == 1, day
        assert local(firings[0], PARIS).time() == time(2, 30)
    # 02:30 happens twice on 2026-10-25: the first one (CEST) fires, the second does not.
    assert day_firings("30 2 * * *", PARIS, date(2026, 10, 25)) == [utc(2026, 10, 25, 0, 30)]
    assert next_firings("30 2 * * *", PARIS, utc(2026, 10, 25, 0, 30), 1) == [
        utc(2026, 10, 26, 1, 30)
    ]


# --- hourly across both transitions --------------------------------------------------------


def test_hourly_on_spring_forward_day_fires_23_times_an_hour_apart() -> None:
    firings = day_firings("0 * * * *", PARIS, date(2026, 3, 29))
    assert len(firings) == 23
    assert [local(f, PARIS).hour for f in firings] == [0, 1, *range(3, 24)]
    # 02:00 does not exist and becomes 03:00 CEST, which is also the 03:00 match: fires once,
    # one hour after 01:00 CET. The whole week stays exactly one hour apart.
    week = next_firings("0 * * * *", PARIS, utc(2026, 3, 26), 24 * 7)
    assert {b - a for a, b in zip(week, week[1:], strict=False)} == {timedelta(hours=1)}


def test_hourly_on_fall_back_day_fires_24_times_not_25() -> None:
    firings = day_firings("0 * * * *", PARIS, date(2026, 10, 25))
    assert len(firings) == 24
    assert [local(f, PARIS).hour for f in firings] == list(range(24))
    assert len(set(firings)) == 24
    assert local(firings[2], PARIS).isoformat() == "2026-10-25T02:00:00+02:00"  # first 02:00
    gaps = [b - a for a, b in zip(firings, firings[1:], strict=False)]
    # 02:00 CEST -> 03:00 CET is two hours: the second 02:00 (CET) does not fire.
    assert gaps == [timedelta(hours=1)] * 2 + [timedelta(hours=2)] + [timedelta(hours=1)] * 20


def test_matches_inside_the_gap_fire_once_at_its_end() -> None:
    assert day_firings("*/15 2 * * *", PARIS, date(2026, 3, 29)) == [utc(2026, 3, 29, 1, 0)]
    assert len(day_firings("*/15 2 * * *", PARIS, date(2026, 3, 28))) == 4
    # A match at 03:00 is the same instant as the shifted ones: still once.
    assert day_firings("*/15 2,3 * * *", PARIS, date(2026, 3, 29)) == [
        utc(2026, 3, 29, 1, 0),
        utc(2026, 3, 29, 1, 15),
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 29, 1, 45),
    ]


def test_every_minute_through_the_repeated_hour() -> None:
    # Second pass of 02:xx (01:00-02:00 UTC) never fires; the next firing is 03:00 CET.
    assert next_firings("* * * * *", PARIS, utc(2026, 10, 25, 0, 58), 3) == [
        utc(2026, 10, 25, 0, 59),
        utc(2026, 10, 25, 2, 0),
        utc(2026, 10, 25, 2, 1),
    ]
    assert next_firings("* * * * *", PARIS, utc(2026, 10, 25, 1, 45, 30), 1) == [
        utc(2026, 10, 25, 2, 0)
    ]
    # Through the gap: 01:59 CET then 03:00 CEST.
    assert next_firings("* * * * *", PARIS, utc(2026, 3, 29, 0, 58), 3) == [
        utc(2026, 3, 29, 0, 59),
        utc(2026, 3, 29, 1, 0),
        utc(2026, 3, 29, 1, 1),
    ]


# --- other zones ---------------------------------------------------------------------------


def test_new_york_transitions() -> None:
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    assert day_firings("30 2 * * *", NEW_YORK, date(2026, 3, 8)) == [utc(2026, 3, 8, 7, 0)]
    assert day_firings("30 2 * * *", NEW_YORK, date(2026, 3, 9)) == [utc(2026, 3, 9, 6, 30)]
    # 2026-11-01: 01:00-02:00 happens twice; 01:30 fires once, at 01:30 EDT.
    assert day_firings("30 1 * * *", NEW_YORK, date(2026, 11, 1)) == [utc(2026, 11, 1, 5, 30)]
    assert day_firings("30 2 * * *", NEW_YORK, date(2026, 11, 1)) == [utc(2026, 11, 1, 7, 30)]
    assert len(day_firings("0 * * * *", NEW_YORK, date(2026, 3, 8))) == 23
    assert len(day_firings("0 * * * *", NEW_YORK, date(2026, 11, 1))) == 24


def test_half_hour_transitions_lord_howe() -> None:
    zone = "Australia/Lord_Howe"  # DST is +30 min: 02:00 -> 02:30, and 02:00 -> 01:30
    assert day_firings("15 2 * * *", zone, date(2026, 10, 4)) == [utc(2026, 10, 3, 15, 30)]
    assert day_firings("45 1 * * *", zone, date(2026, 4, 5)) == [utc(2026, 4, 4, 14, 45)]
    assert len(day_firings("*/30 * * * *", zone, date(2026, 4, 5))) == 48


def test_a_skipped_day_samoa_2011() -> None:
    # Pacific/Apia skipped 2011-12-30 entirely (-10:00 -> +14:00).
    firings = next_firings("0 12 * * *", "Pacific/Apia", utc(2011, 12, 29), 3)
    assert firings == [utc(2011, 12, 29, 22), utc(2011, 12, 30, 10), utc(2011, 12, 30, 22)]
    assert local(firings[1], "Pacific/Apia").isoformat() == "2011-12-31T00:00:00+14:00"


def test_utc_is_plain() -> None:
    assert next_firings("0 9 * * MON-FRI", "UTC", utc(2026, 3, 27, 9), 3) == [
        utc(2026, 3, 30, 9),
        utc(2026, 3, 31, 9),
        utc(2026, 4, 1, 9),
    ]
    firings = next_firings("*/10 * * * *", "UTC", utc(2026, 3, 29, 0, 55, 12), 4)
    assert firings == [utc(2026, 3, 29, 1, m) for m in (0, 10, 20, 30)]
    assert all(f.tzinfo is UTC for f in firings)


def test_after_any_zone_and_strictly_after() -> None:
    at = datetime(2026, 6, 1, 2, 30, tzinfo=ZoneInfo(PARIS))
    assert next_firings("30 2 * * *", PARIS, at, 1) == [utc(2026, 6, 2, 0, 30)]
    assert next_firings("30 2 * * *", PARIS, at - timedelta(microseconds=1), 1) == [
        utc(2026, 6, 1, 0, 30)
    ]


def test_macros_and_rare_expressions() -> None:
    assert next_firings("@daily", PARIS, utc(2026, 3, 28, 12), 2) == [
        utc(2026, 3, 28, 23),
        utc(2026, 3, 29, 22),
    ]
    assert local(next_firings("@weekly", PARIS, utc(2026, 3, 25), 1)[0], PARIS).weekday() == 6
    leap = next_firings("0 0 29 2 *", PARIS, utc(2026, 1, 1), 3)
    assert [local(f, PARIS).date() for f in leap] == [
        date(2028, 2, 29),
        date(2032, 2, 29),
        date(2036, 2, 29),
    ]
    assert latest_firing("0 0 29 2 *", PARIS, utc(2026, 1, 1), utc(2031, 1, 1)) == leap[0]
    # Day of month and day of week both restricted: either matches (croniter's default).
    both = next_firings("0 0 13 * FRI", "UTC", utc(2026, 3, 1), 3)
    assert [f.day for f in both] == [6, 13, 20]


def test_equal_ranges_are_one_value() -> None:
    # croniter 7 reads "5-5" and "JAN-JAN" as the whole cycle; standard cron means one value.
    assert next_firings("5-5 0-0 * * *", "UTC", utc(2026, 3, 1), 2) == [
        utc(2026, 3, 1, 0, 5),
        utc(2026, 3, 2, 0, 5),
    ]
    assert next_firings("0 0 1 JAN-JAN *", "UTC", utc(2026, 3, 1), 1) == [utc(2027, 1, 1)]
    assert next_firings("0 0 * * SUN-SUN", "UTC", utc(2026, 3, 2), 1) == [utc(2026, 3, 8)]


def test_count_and_calendar_end() -> None:
    assert next_firings("* * * * *", PARIS, utc(2026, 1, 1), 0) == []
    with pytest.raises(ValueError, match="count"):
        next_firings("* * * * *", PARIS, utc(2026, 1, 1), -1)
    assert next_firings("0 0 * * *", "UTC", utc(9999, 12, 30, 12), 5) == [utc(9999, 12, 31)]
    assert next_firings("0 0 * * *", PARIS, utc(9999, 12, 31, 23, 30), 5) == []


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 3, 29, 2, 30)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        next_firings("* * * * *", PARIS, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        latest_firing("* * * * *", PARIS, naive, utc(2026, 4, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        latest_firing("* * * * *", PARIS, utc(2026, 3, 1), naive)


# --- latest_firing -------------------------------------------------------------------------


def test_latest_firing_fires_a_missed_schedule_once() -> None:
    after, until = utc(2026, 3, 26, 12), utc(2026, 3, 31, 12)
    assert latest_firing("30 2 * * *", PARIS, after, until) == utc(2026, 3, 31, 0, 30)
    assert latest_firing("30 2 * * *", PARIS, after, utc(2026, 3, 29, 1, 0)) == utc(2026, 3, 29, 1)
    assert latest_firing("30 2 * * *", PARIS, after, utc(2026, 3, 29, 0, 59)) == utc(
        2026, 3, 28, 1, 30
    )
    # Bounds: after is exclusive, until inclusive.
    assert latest_firing("30 2 * * *", PARIS, utc(2026, 3, 31, 0, 30), until) is None
    assert latest_firing("30 2 * * *", PARIS, utc(2026, 3, 31, 0, 29), until) == utc(
        2026, 3, 31, 0, 30
    )
    assert latest_firing("30 2 * * *", PARIS, until, until) is None
    assert latest_firing("30 2 * * *", PARIS, until, after) is None


def test_latest_firing_in_the_repeated_hour() -> None:
    after = utc(2026, 10, 24)
    # During the second pass of 02:xx nothing fires: the latest is the first pass's 02:59.
    assert latest_firing("* * * * *", PARIS, after, utc(2026, 10, 25, 1, 45)) == utc(
        2026, 10, 25, 0, 59
    )
    assert latest_firing("30 2 * * *", PARIS, after, utc(2026, 10, 25, 1, 45)) == utc(
        2026, 10, 25, 0, 30
    )
    assert latest_firing("0 3 * * *", PARIS, after, utc(2026, 10, 25, 1, 59, 59)) == utc(
        2026, 10, 24, 1, 0
    )
    assert latest_firing("0 3 * * *", PARIS, after, utc(2026, 10, 25, 2)) == utc(2026, 10, 25, 2)


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("30 2 * * *", "30 2 * * *"),
        ("  30   2 *  * mon-fri ", "30 2 * * MON-FRI"),
        ("0 9 1,15 jan-jun/2 sun,7", "0 9 1,15 JAN-JUN/2 SUN,7"),
        ("*/15 08-18 * * 1-5", "*/15 8-18 * * 1-5"),
        ("0 0 29 2 *", "0 0 29 2 *"),
        ("0 0 31 4 MON", "0 0 31 4 MON"),
        ("@Daily", "@daily"),
        ("@annually", "@annually"),
        ("@hourly", "@hourly"),
    ],
)
def test_check_cron_normalises(given: str, normalised: str) -> None:
    assert check_cron(given) == normalised
    assert check_cron(normalised) == normalised


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("0 30 2 * * *", "expected 5 fields (minute hour day month weekday), got 6"),
        ("0 0 * * * 2026 1", "got 7"),
        ("0 2 * *", "got 4"),
        ("garbage", "got 1"),
        ("", "empty"),
        ("   ", "empty"),
        ("61 * * * *", "minute 61 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day of month 0 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "day of week 8 is out of range 0-7"),
        ("0 0 * foo *", "month 'foo' is not valid"),
        ("0 0 L * *", "day of month 'L' is not valid"),
        ("0 0 15W * *", "day of month '15W' is not valid"),
        ("0 0 * * MON#2", "day of week 'MON#2' is not valid"),
        ("H * * * *", "minute 'H' is not valid"),
        ("? * * * *", "minute '?' is not valid"),
        ("5-1 * * * *", "ranges do not wrap around"),
        ("0 0 * * FRI-MON", "split it: '5-6,0-1'"),
        ("*/0 * * * *", "step in '*/0' must be a number from 1 to 59"),
        ("*/60 * * * *", "from 1 to 59"),
        ("5/15 * * * *", "needs a range: '5-59/15'"),
        ("1,,2 * * * *", "empty list item"),
        ("*,5 * * * *", "mixes '*'"),
        ("0 0 31 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("@reboot", "unknown macro '@reboot'"),
        ("0 0 * * *" + " " * 50 + "0" * 50, "longer than 100"),
        ("0 0 * * ２", "non-ASCII"),
    ],
)
def test_check_cron_errors(expr: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_cron(expr)
    assert says in caught.value.message
    assert caught.value.message.startswith("cron: ")
    assert "e.g. '30 2 * * *'" in caught.value.message
    assert caught.value.details == {"field": "cron"}
    assert caught.value.status == 422


def test_firing_functions_validate_their_input() -> None:
    with pytest.raises(InvalidInput):
        next_firings("0 0 * * * *", PARIS, utc(2026, 1, 1))
    with pytest.raises(InvalidInput):
        latest_firing("* * * * *", "Paris", utc(2026, 1, 1), utc(2026, 1, 2))


@pytest.mark.parametrize("name", ["Europe/Paris", "UTC", "America/New_York", "Asia/Kolkata"])
def test_check_timezone_accepts_iana_names(name: str) -> None:
    assert check_timezone(name) == name


@pytest.mark.parametrize(
    "name", ["", "Paris", "Mars/Olympus", "europe/paris", " UTC", "../etc/passwd", "/etc/localtime"]
)
def test_check_timezone_errors(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_timezone(name)
    assert caught.value.message.startswith("timezone: ")
    assert "e.g. 'Europe/Paris'" in caught.value.message
    assert caught.value.details == {"field": "timezone"}


# --- properties ----------------------------------------------------------------------------


@st.composite
def fields(draw: st.DrawFn, top: int) -> tuple[str, frozenset[int]]:
    """A cron field over 0..top, with the set of values it matches (computed here)."""
    kind = draw(st.sampled_from(["star", "step", "list", "range"]))
    if kind == "star":
        return "*", frozenset(range(top + 1))
    if kind == "step":
        step = draw(st.integers(2, top // 2))
        return f"*/{step}", frozenset(range(0, top + 1, step))
    if kind == "list":
        values = draw(st.lists(st.integers(0, top), min_size=1, max_size=4, unique=True))
        return ",".join(map(str, values)), frozenset(values)
    low = draw(st.integers(0, top))
    high = draw(st.integers(low, top))
    step = draw(st.integers(1, 7))
    text = f"{low}-{high}" + (f"/{step}" if step > 1 else "")
    return text, frozenset(range(low, high + 1, step))


TRANSITIONS = [utc(2026, 3, 29, 1), utc(2026, 10, 25, 1)]
instants_2026 = st.one_of(
    st.integers(0, 365 * 24 * 3600 - 1).map(lambda s: utc(2026, 1, 1) + timedelta(seconds=s)),
    st.tuples(st.sampled_from(TRANSITIONS), st.integers(-6 * 3600, 6 * 3600)).map(
        lambda t: t[0] + timedelta(seconds=t[1])
    ),
)


def expected_firings(
    minutes: frozenset[int], hours: frozenset[int], after: datetime, until: datetime
) -> list[datetime]:
    """Brute force over UTC minutes: ``u`` fires iff a matching wall-clock minute ``t`` has
    ``max(wall(v) for v < u) < t <= wall(u)`` (a match fires at the first instant whose wall
    clock reads it or later). Independent of croniter and of the module under test."""
    zone = ZoneInfo(PARIS)
    u = after.replace(second=0, microsecond=0) - timedelta(hours=3)
    seen = (u - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None)
    out = []
    while u <= until:
        wall = u.astimezone(zone).replace(tzinfo=None)
        fires = False
        t = seen + timedelta(minutes=1)
        while t <= wall:
            fires = fires or (t.minute in minutes and t.hour in hours)
            t += timedelta(minutes=1)
        seen = max(seen, wall)
        if fires and u > after:
            out.append(u)
        u += timedelta(minutes=1)
    return out


@settings(max_examples=100, deadline=None)
@given(minute=fields(59), hour=fields(23), after=instants_2026, data=st.data())
def test_firings_follow_the_dst_policy(
    minute: tuple[str, frozenset[int]],
    hour: tuple[str, frozenset[int]],
    after: datetime,
    data: st.DataObject,
) -> None:
    expr = f"{minute[0]} {hour[0]} * * *"
    firings = next_firings(expr, PARIS, after, 3)
    assert len(firings) == 3
    assert all(f.tzinfo is UTC for f in firings)
    assert firings[0] > after
    assert all(a < b for a, b in zip(firings, firings[1:], strict=False))
    zone = ZoneInfo(PARIS)
    for f in firings:
        wall = f.astimezone(zone)
        matches = wall.minute in minute[1] and wall.hour in hour[1]
        shifted = (f - timedelta(seconds=1)).astimezone(zone).utcoffset() != wall.utcoffset()
        assert matches or shifted, f
    # Complete and exact: nothing fires in between, nothing is missing.
    assert firings == expected_firings(minute[1], hour[1], after, firings[-1])
    # latest_firing agrees with next_firings.
    until = data.draw(
        st.one_of(
            st.sampled_from(firings),
            st.sampled_from(firings).map(lambda f: f - timedelta(seconds=1)),
            st.integers(0, int((firings[-1] - after).total_seconds())).map(
                lambda s: after + timedelta(seconds=s)
            ),
        )
    )
    expected = [f for f in firings if f <= until]
    assert latest_firing(expr, PARIS, after, until) == (expected[-1] if expected else None)
