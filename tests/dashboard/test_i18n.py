"""The one translation layer: catalog parity, keys used by templates, formats, the switch."""

from __future__ import annotations

import math
import re
import string
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from runhq.auth.models import Role
from runhq.clock import FrozenClock
from runhq.dashboard.briefing import CARDS
from runhq.dashboard.pages import BADGES, NAV, TEMPLATES_DIR
from runhq.i18n import DASH, LANGS, LOCALES_DIR, Translator, get_catalog
from runhq.runs.models import RunStatus
from tests.conftest import Team
from tests.dashboard.conftest import csrf_of, log_in

# t('literal') or tn('literal', …): a key written whole (dynamic keys end with "~").
_KEY_RE = re.compile(r"""\b(tn?)\(\s*(['"])([^'"]+)\2\s*[,)]""")
NBSP, NNBSP = "\u00a0", "\u202f"


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_catalogs_have_the_same_keys_and_placeholders() -> None:
    fr, en = get_catalog("fr"), get_catalog("en")
    assert set(fr) == set(en), {
        "only in fr": sorted(set(fr) - set(en)),
        "only in en": sorted(set(en) - set(fr)),
    }
    for key in fr:
        assert fr[key].strip(), key
        assert en[key].strip(), key
        assert _placeholders(fr[key]) == _placeholders(en[key]), key
    assert sorted(p.stem for p in LOCALES_DIR.glob("*.toml")) == sorted(LANGS)


def _template_keys() -> set[tuple[str, str]]:
    found = set()
    for path in TEMPLATES_DIR.rglob("*.html"):
        for func, _, key in _KEY_RE.findall(path.read_text(encoding="utf-8")):
            found.add((func, key))
    return found


def test_every_key_a_template_uses_exists() -> None:
    used = _template_keys()
    assert len(used) > 40  # the scan sees the templates
    for lang in LANGS:
        catalog = get_catalog(lang)
        missing = [
            key
            for func, key in used
            for needed in ([key] if func == "t" else [f"{key}.one", f"{key}.other"])
            if needed not in catalog
        ]
        assert not missing, (lang, missing)


def test_keys_built_at_run_time_exist() -> None:
    """Keys templates compose (``'status.' ~ run.status``) and the routes' error keys."""
    needed = [f"nav.{item.key}" for item in NAV]
    needed += [f"nav.badge.{name}.{form}" for name in BADGES for form in ("one", "other")]
    needed += [f"status.{status.value}" for status in RunStatus]
    needed += [f"roles.{role.value}" for role in Role]
    needed += [f"briefing.{key}.title" for key in CARDS]
    needed += [f"date.months.m{month}" for month in range(1, 13)]
    needed += ["login.failed", "login.missing", "login.no_workspace"]
    for lang in LANGS:
        catalog = get_catalog(lang)
        assert [key for key in needed if key not in catalog] == [], lang


def test_numbers_and_money_per_language() -> None:
    fr, en = Translator("fr"), Translator("en")
    assert fr.money(12.5) == f"12,50{NBSP}€"
    assert en.money(12.5) == "€12.50"
    assert fr.money(1234567.891, "usd") == f"1{NNBSP}234{NNBSP}567,89{NBSP}$"
    assert en.money(1234567.891, "usd") == "$1,234,567.89"
    assert en.money(-3, "eur") == "-€3.00"
    assert en.money(1500, "jpy") == f"JPY{NBSP}1,500"  # no minor unit
    assert fr.money(10, "chf") == f"10,00{NBSP}CHF"
    assert fr.percent(0.99512) == f"99,5{NBSP}%"
    assert en.percent(0.99512, 2) == "99.51%"
    assert fr.number(-0.0001, 2) == "0,00"  # no "-0,00"
    for value in (None, math.nan, math.inf):
        assert fr.money(value) == DASH
        assert en.percent(value) == DASH
        assert fr.number(value) == DASH


def test_dates_in_the_business_time_zone() -> None:
    moment = datetime(2026, 3, 12, 13, 5, tzinfo=UTC)  # 14:05 in Paris
    assert Translator("fr").timestamp(moment) == "12 mars 2026 à 14:05"
    assert Translator("en").timestamp(moment) == "12 Mar 2026, 14:05"
    assert Translator("en", "UTC").date(moment) == "12 Mar 2026"
    assert Translator("fr").timestamp(None) == DASH
    with pytest.raises(ValueError, match="naive"):
        Translator("fr").date(datetime(2026, 3, 12))  # noqa: DTZ001 - the refusal under test
    with FrozenClock(moment):
        fr, en = Translator("fr"), Translator("en")
        assert fr.ago(moment - timedelta(seconds=20)) == "à l'instant"
        assert fr.ago(moment - timedelta(minutes=5)) == "il y a 5 min"
        assert en.ago(moment - timedelta(hours=3)) == "3 h ago"
        assert en.ago(moment + timedelta(days=2)) == "in 2 d"
        assert fr.ago(moment - timedelta(days=30)) == "10 févr. 2026"


def test_plurals() -> None:
    fr, en = Translator("fr"), Translator("en")
    assert fr.tn("briefing.mrr.subscriptions", 0) == "0 abonnement actif"
    assert en.tn("briefing.mrr.subscriptions", 0) == "0 active subscriptions"
    assert en.tn("briefing.mrr.subscriptions", 1) == "1 active subscription"
    assert fr.tn("briefing.mrr.subscriptions", 1200) == f"1{NNBSP}200 abonnements actifs"


def test_unknown_keys_and_languages_degrade_without_breaking() -> None:
    assert Translator("de").lang == "fr"
    assert Translator("fr").t("no.such.key") == "no.such.key"


def test_switching_language(client: TestClient, team: Team) -> None:
    login_page = client.get("/login")
    assert '<html lang="fr">' in login_page.text
    assert "Se connecter" in login_page.text
    # Before logging in (the anonymous token)…
    r = client.post(
        "/lang",
        data={"lang": "en", "csrf_token": csrf_of(login_page.text), "next": "/login"},
        follow_redirects=False,
    )
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    page = client.get("/login")
    assert '<html lang="en">' in page.text
    assert "Log in to the HQ" in page.text
    # …and after.
    log_in(client, team.emails[Role.owner])
    page = client.get("/")
    assert '<html lang="en">' in page.text
    assert "Active agents" in page.text
    assert "Approvals" in page.text
    r = client.post(
        "/lang",
        data={"lang": "fr", "csrf_token": csrf_of(page.text), "next": "/"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"
    page = client.get("/")
    assert '<html lang="fr">' in page.text
    assert "Agents actifs" in page.text
    assert "Approbations" in page.text
    client.cookies.set("runhq_lang", "xx")  # anything else: French
    assert '<html lang="fr">' in client.get("/").text
