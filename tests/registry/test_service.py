"""The registry file: complete, consistent with DESIGN.md, and refused loudly when broken."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runhq.errors import RegistryError
from runhq.registry.schemas import GATED_RISKS
from runhq.registry.service import REGISTRY_FILE, load_registry
from runhq.runtime import check_registry
from tests.conftest import make_settings

# DESIGN.md's table: key → (agent, model, estimated €, risk).
DESIGN_TABLE = {
    "DAILY_EXECUTIVE_BRIEF": ("CEO", "gemini-2.5-pro", 0.10, "low"),
    "CEO_STANDUP_MEETING": ("CEO", "gemini-3-flash", 0.05, "low"),
    "PLATFORM_STATUS_REVIEW": ("CTO", "gemini-2.5-flash", 0.02, "low"),
    "SECURITY_AUDIT_RLS": ("CISO", "gemini-2.5-pro", 0.18, "medium"),
    "RELEASE_GATE_CHECK": ("CTO", "gemini-2.5-pro", 0.12, "high"),
    "DEPLOY_TO_PRODUCTION": ("CTO", "gemini-2.5-pro", 0.15, "critical"),
    "RLS_POLICY_UPDATE": ("CISO", "gemini-2.5-pro", 0.20, "critical"),
    "COMPETITIVE_ANALYSIS": ("CSO", "gemini-2.5-pro", 0.25, "low"),
    "QUALITY_AUDIT": ("CTO", "gemini-2.5-pro", 0.15, "medium"),
    "ADS_PERFORMANCE_REVIEW": ("CMO", "gemini-2.5-flash", 0.10, "low"),
    "GROWTH_STRATEGY_REVIEW": ("CGO", "gemini-2.5-pro", 0.22, "low"),
    "OKR_QUARTERLY_REVIEW": ("COO", "gemini-2.5-flash", 0.08, "low"),
    "COMPLIANCE_RGPD_CHECK": ("DPO", "gemini-2.5-pro", 0.16, "medium"),
    "SEO_AUDIT": ("CMO", "gemini-2.5-flash", 0.20, "low"),
    "CONTENT_CALENDAR_PLAN": ("CMO", "gemini-3-flash", 0.06, "low"),
    "REVENUE_FORECAST": ("CFO", "gemini-2.5-pro", 0.14, "low"),
    "LEAD_SCORING_UPDATE": ("CGO", "gemini-2.5-flash", 0.07, "low"),
    "FINANCIAL_REPORT": ("CFO", "gemini-2.5-pro", 0.12, "low"),
    "RGPD_AUDIT": ("DPO", "gemini-2.5-pro", 0.16, "medium"),
    "VULNERABILITY_SCAN": ("CISO", "gemini-2.5-pro", 0.18, "medium"),
    "ROADMAP_UPDATE": ("CPO", "gemini-2.5-flash", 0.08, "low"),
    "CODE_REVIEW": ("CTO", "gemini-2.5-pro", 0.12, "low"),
    "DEPLOYMENT_CHECK": ("CTO", "gemini-2.5-flash", 0.06, "low"),
    "DATA_INSIGHTS_REPORT": ("CDO", "gemini-2.5-pro", 0.14, "low"),
    "AGENT_PERFORMANCE_REVIEW": ("COO", "gemini-2.5-flash", 0.08, "low"),
    "TECH_WATCH_REPORT": ("CTO", "gemini-2.5-flash", 0.10, "low"),
    "MARKETING_WEEK_PLAN": ("CMO", "gemini-3-flash", 0.04, "low"),
    "MASS_EMAIL_CAMPAIGN": ("CMO", "gemini-2.5-pro", 0.15, "high"),
    "PRICING_CHANGE": ("CFO", "gemini-2.5-pro", 0.20, "critical"),
}


def test_registry_matches_the_design_table(tmp_path: Path) -> None:
    reg = load_registry()
    assert list(reg.run_types) == list(DESIGN_TABLE)
    for key, (agent, model, cost, risk) in DESIGN_TABLE.items():
        spec = reg.run_types[key]
        assert (spec.agent, spec.model, spec.estimated_cost_eur, spec.risk.value) == (
            agent,
            model,
            cost,
            risk,
        )
        assert spec.requires_approval == (spec.risk in GATED_RISKS)
    assert set(reg.agents) == {
        "CEO",
        "CTO",
        "CISO",
        "CSO",
        "CMO",
        "CGO",
        "COO",
        "DPO",
        "CFO",
        "CPO",
        "CDO",
    }
    check_registry(reg, make_settings(tmp_path, "sqlite://"))


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = REGISTRY_FILE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "run_types.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('risk = "critical"', 'risk = "extreme"', "entry DEPLOY_TO_PRODUCTION: field 'risk'"),
        (
            "estimated_cost_eur = 0.10",
            "estimated_cost_eur = -1",
            "entry DAILY_EXECUTIVE_BRIEF: field 'estimated_cost_eur'",
        ),
        ('agent = "CEO"', 'agent = "CXO"', "entry DAILY_EXECUTIVE_BRIEF: field 'agent'"),
        ("requires_approval = true", "requires_approval = false", "entry RELEASE_GATE_CHECK"),
        ('key = "SEO_AUDIT"', 'key = "SEO_AUDlT"', "entry SEO_AUDIT: field 'key'"),
        ("[run_types.CODE_REVIEW]", "[run_types.CODE_REVIEW\n", "not valid TOML"),
    ],
)
def test_broken_registry_names_the_entry_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_french_steps_must_match_the_english_ones(tmp_path: Path) -> None:
    path = _broken(tmp_path, 'steps_fr = ["', 'steps_fr = ["Une étape de trop", "')
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    message = str(info.value)
    assert "entry DAILY_EXECUTIVE_BRIEF" in message
    assert "steps_fr has" in message
    assert "one French name per step" in message


def test_every_step_has_a_french_name() -> None:
    for spec in load_registry(REGISTRY_FILE).run_types.values():
        assert len(spec.steps_in("fr")) == len(spec.steps_in("en")) == len(spec.steps)
        assert spec.steps_in("fr") != spec.steps  # translated, not copied


def test_unknown_context_provider_is_refused_at_start_up(tmp_path: Path) -> None:
    path = _broken(tmp_path, 'context = ["', 'context = ["crystal_ball", "')
    with pytest.raises(RegistryError, match="crystal_ball"):
        check_registry(load_registry(path), make_settings(tmp_path, "sqlite://"))


def test_server_refuses_to_start_on_a_broken_registry(tmp_path: Path) -> None:
    path = _broken(tmp_path, 'risk = "critical"', 'risk = "extreme"')
    env = {**os.environ, "RUNHQ_REGISTRY_PATH": str(path), "RUNHQ_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", "from runhq.cli import main; main()", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "entry DEPLOY_TO_PRODUCTION: field 'risk'" in proc.stderr
    assert "Traceback" not in proc.stderr
