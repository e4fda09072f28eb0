"""The release gate's rule (offline, or no verdict from the model), fact by fact."""

from __future__ import annotations

from typing import Any

import pytest

from runhq.actions.service import gate_verdict


def _facts(github: dict[str, Any] | None) -> dict[str, Any]:
    facts: dict[str, Any] = {"failures": {"status": "ok", "data": {"recurring_24h": []}}}
    if github is not None:
        facts["github"] = github
    return {"facts": facts}


@pytest.mark.parametrize(
    ("github", "verdict", "reason"),
    [
        (None, "pass", "CI not checked: GitHub is not configured"),
        (
            {"status": "unavailable", "data": {"configured": False}, "reason": "no repository"},
            "pass",
            "CI not checked: GitHub is not configured",
        ),
        (
            {"status": "unavailable", "data": {}, "reason": "GitHub API answered 502"},
            "fail",
            "CI status unknown: GitHub API answered 502",
        ),
        (
            {"status": "ok", "data": {"workflow_runs": {"failure_rate": 0.5}}},
            "fail",
            "CI failure rate 50% over 20 %",
        ),
        (
            {"status": "ok", "data": {"workflow_runs": {"failure_rate": 0.1}}},
            "pass",
            "no open incident, no run type failing repeatedly in 24 h, CI healthy or not checked",
        ),
        (
            {"status": "ok", "data": {"workflow_runs": {}}},
            "pass",
            "CI not checked: no workflow runs in the window",
        ),
    ],
)
def test_ci_is_judged_unknown_only_when_github_is_configured_and_unreadable(
    github: dict[str, Any] | None, verdict: str, reason: str
) -> None:
    got, reasons = gate_verdict(_facts(github), "app", lang="en")
    assert got == verdict
    assert reason in reasons


def test_an_open_incident_counts_only_for_the_gated_platform() -> None:
    context = _facts(None)
    context["facts"]["platforms"] = {
        "data": {
            "platforms": [
                {"platform_key": "blog", "open_incident": {"reason": "HTTP 503"}},
            ]
        }
    }
    assert gate_verdict(context, "app", lang="en")[0] == "pass"
    verdict, reasons = gate_verdict(context, "blog", lang="en")
    assert (verdict, reasons) == ("fail", ["open incident on blog: HTTP 503"])
    assert (
        gate_verdict(context, None, lang="en")[0] == "fail"
    )  # a gate for no platform: any incident


def test_the_reasons_are_in_the_report_language() -> None:
    context = _facts({"status": "ok", "data": {"workflow_runs": {"failure_rate": 0.5}}})
    context["facts"]["platforms"] = {
        "data": {"platforms": [{"platform_key": "blog", "open_incident": {"reason": "HTTP 503"}}]}
    }
    verdict, reasons = gate_verdict(context, "blog")  # French by default, as the setting
    assert verdict == "fail"
    assert reasons == [
        "incident ouvert sur blog\u00a0: HTTP 503",
        "taux d'échec de la CI de 50\u00a0%, au-dessus de 20\u00a0%",
    ]
