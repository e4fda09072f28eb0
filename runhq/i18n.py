"""runhq's one translation layer: the catalogs, and the formatting of numbers, money,
percentages and dates in a language — for the dashboard's pages (in the visitor's language,
``runhq.dashboard.i18n.get_lang``) and for the texts runhq writes into reports (in
``RUNHQ_REPORT_LANGUAGE``).

Catalogs are ``locales/fr.toml`` and ``locales/en.toml`` (shared texts) plus one file per page
or subject in ``locales/fr/`` and ``locales/en/``: nested TOML tables flattened to
dotted keys (``[nav] briefing = "…"`` is ``nav.briefing``), values with ``{name}``
placeholders. Both files must have exactly the same keys (a test checks it, and that every
key a template uses exists). French is the default.
"""

from __future__ import annotations

import logging
import math
import tomllib
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from runhq import clock

logger = logging.getLogger(__name__)

LANGS = ("fr", "en")
DEFAULT_LANG = "fr"
LOCALES_DIR = Path(__file__).with_name("locales")

#: Shown wherever a figure is unknown: never 0, never NaN.
DASH = "—"
_NBSP = "\u00a0"  # before a currency symbol or % in French
_NNBSP = "\u202f"  # French thousands separator
_SYMBOLS = {"eur": "€", "usd": "$", "gbp": "£"}
_NO_MINOR_UNIT = frozenset({"jpy", "krw", "vnd", "clp", "isk"})


class CatalogError(ValueError):
    """A catalog file is malformed (raised when it is first read)."""


def _flatten(table: dict[str, Any], path: Path, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flatten(value, path, key + "."))
        elif isinstance(value, str):
            flat[key] = value
        else:
            raise CatalogError(f"{path}: {key}: a translation must be a string")
    return flat


def _read(path: Path) -> dict[str, str]:
    try:
        with path.open("rb") as fh:
            return _flatten(tomllib.load(fh), path)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from None


@lru_cache(maxsize=len(LANGS))
def get_catalog(lang: str) -> dict[str, str]:
    """The flattened catalog of ``lang`` (read once per process): ``locales/<lang>.toml``
    (shared texts) and one file per page in ``locales/<lang>/``; a key is defined once."""
    if lang not in LANGS:
        raise CatalogError(f"no catalog for language {lang!r} (known: {', '.join(LANGS)})")
    catalog: dict[str, str] = {}
    for path in [LOCALES_DIR / f"{lang}.toml", *sorted((LOCALES_DIR / lang).glob("*.toml"))]:
        for key, value in _read(path).items():
            if key in catalog:
                raise CatalogError(f"{path}: {key}: already defined in another file")
            catalog[key] = value
    return catalog


def _plural_form(lang: str, n: float) -> str:
    # French treats 0 and 1 as singular ("0 échec"), English only 1.
    if lang == "fr":
        return "one" if abs(n) < 2 else "other"
    return "one" if n == 1 else "other"


class Translator:
    """Texts and formats of one language; templates get it as ``fmt`` (and ``t``/``tn``)."""

    def __init__(self, lang: str, tz: str = "Europe/Paris") -> None:
        self.lang = lang if lang in LANGS else DEFAULT_LANG
        self.catalog = get_catalog(self.lang)
        self.tz = ZoneInfo(tz)

    # -- texts ----------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        return key in self.catalog

    def t(self, key: str, **params: Any) -> str:
        """The text of ``key`` with ``{placeholders}`` filled; the key itself if unknown."""
        text = self.catalog.get(key)
        if text is None:
            logger.warning("missing translation %r (%s)", key, self.lang)
            return key
        if not params:
            return text
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            logger.warning("translation %r (%s) does not fit its parameters", key, self.lang)
            return text

    def tn(self, key: str, n: float, **params: Any) -> str:
        """``key.one`` or ``key.other`` depending on ``n`` (passed as ``{n}``, formatted)."""
        form = _plural_form(self.lang, n)
        shown = self.number(n) if isinstance(n, int) else self.number(n, 1)
        return self.t(f"{key}.{form}", n=shown, **params)

    # -- numbers --------------------------------------------------------------------------

    def number(self, value: float | int | None, decimals: int = 0) -> str:
        if value is None or not math.isfinite(value):
            return DASH
        rounded = round(value, decimals)
        text = f"{abs(rounded):,.{decimals}f}"
        if self.lang == "fr":
            text = text.replace(",", _NNBSP).replace(".", ",")
        return ("-" if rounded < 0 else "") + text

    def percent(self, ratio: float | None, decimals: int = 1) -> str:
        """0.9951 → ``99,5 %`` (fr) / ``99.5%`` (en)."""
        if ratio is None or not math.isfinite(ratio):
            return DASH
        number = self.number(ratio * 100, decimals)
        return f"{number}{_NBSP}%" if self.lang == "fr" else f"{number}%"

    def money(self, amount: float | None, currency: str = "eur") -> str:
        """12.5 EUR → ``12,50 €`` (fr) / ``€12.50`` (en); unknown → ``—``."""
        if amount is None or not math.isfinite(amount):
            return DASH
        code = currency.lower()
        number = self.number(abs(amount), 0 if code in _NO_MINOR_UNIT else 2)
        sign = "-" if amount < 0 else ""
        symbol = _SYMBOLS.get(code)
        if self.lang == "fr":
            return f"{sign}{number}{_NBSP}{symbol or code.upper()}"
        if symbol:
            return f"{sign}{symbol}{number}"
        return f"{sign}{code.upper()}{_NBSP}{number}"

    # -- dates ----------------------------------------------------------------------------

    def _local(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("naive datetime: runhq stores aware UTC datetimes")
        return moment.astimezone(self.tz)

    def date(self, moment: datetime | None) -> str:
        """``12 mars 2026`` / ``12 Mar 2026`` in the business time zone."""
        if moment is None:
            return DASH
        local = self._local(moment)
        return self.t(
            "date.day_month_year", day=local.day, month=self._month(local), year=local.year
        )

    def timestamp(self, moment: datetime | None) -> str:
        """``12 mars 2026 à 14:05`` / ``12 Mar 2026, 14:05`` in the business time zone."""
        if moment is None:
            return DASH
        local = self._local(moment)
        return self.t(
            "date.datetime",
            day=local.day,
            month=self._month(local),
            year=local.year,
            time=f"{local:%H:%M}",
        )

    def iso(self, moment: datetime) -> str:
        """For ``<time datetime=…>``."""
        return moment.isoformat()

    def ago(self, moment: datetime | None, now: datetime | None = None) -> str:
        """``il y a 5 min`` / ``5 min ago`` (or ``dans 5 min`` / ``in 5 min`` ahead); the date
        beyond a week."""
        if moment is None:
            return DASH
        delta = (now or clock.now()) - moment
        ahead = delta < timedelta(0)
        seconds = abs(delta.total_seconds())
        if seconds >= 7 * 86400:
            return self.date(moment)
        # Rounded to the nearest unit: 2 h 58 min is "3 h".
        amount, unit = round(seconds / 60), "minutes"
        if amount < 1:
            return self.t("time.now")
        if amount >= 60:
            amount, unit = round(seconds / 3600), "hours"
            if amount >= 24:
                amount, unit = round(seconds / 86400), "days"
        return self.t(f"time.{'in' if ahead else 'ago'}_{unit}", n=amount)

    def _month(self, local: datetime) -> str:
        return self.t(f"date.months.m{local.month}")


@lru_cache(maxsize=16)
def get_translator(lang: str, tz: str = "Europe/Paris") -> Translator:
    """One ``Translator`` per language and time zone, shared (it holds no state that changes):
    what writes reports calls this on every run instead of building its own."""
    return Translator(lang, tz)
