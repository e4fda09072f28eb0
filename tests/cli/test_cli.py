"""The ``runhq`` CLI in-process, on a fresh database: verbs, --json, and bad inputs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runhq import cli
from runhq.config import get_settings
from runhq.demo import DEMO_SCHEDULES

Cli = Callable[..., tuple[int, str, str]]
OWNER = "owner@example.com"
PASSWORD = "a-long-password-1"


@pytest.fixture
def runhq(
    tmp_path: Path,
    fresh_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Cli]:
    monkeypatch.setenv("RUNHQ_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RUNHQ_DATABASE_URL", fresh_database_url)
    get_settings.cache_clear()
    cli._State.runtime = None

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["runhq", *args])
        code = 0
        try:
            cli.main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield invoke
    cli._State.runtime = None
    get_settings.cache_clear()


@pytest.fixture
def initialised(runhq: Cli) -> Cli:
    code, out, err = runhq("init", "--owner-email", OWNER, "--owner-password", PASSWORD, "--demo")
    assert code == 0, err
    assert "owner owner@example.com created" in out
    return runhq


def test_init_demo_watches_this_server_and_schedules_the_routine(initialised: Cli) -> None:
    code, out, err = initialised("platforms", "--json")
    assert code == 0, err
    watched = {p["key"]: p for p in json.loads(out)}
    assert set(watched) == {"app", "api"}
    assert watched["app"]["health_urls"] == ["http://127.0.0.1:8000/health/live"]
    code, out, err = initialised("schedules", "--json")
    assert code == 0, err
    assert {s["job_key"]: s["run_type"] for s in json.loads(out)} == {
        job_key: run_type for job_key, run_type, _ in DEMO_SCHEDULES
    }


def test_commands_before_init_say_to_run_init(runhq: Cli) -> None:
    code, _, err = runhq("runs")
    assert code == 1
    assert "runhq init" in err
    assert "Traceback" not in err


def test_init_is_idempotent_and_refuses_a_second_owner(initialised: Cli) -> None:
    code, out, _ = initialised("init", "--owner-email", OWNER, "--owner-password", PASSWORD)
    assert code == 0
    assert "nothing changed" in out
    code, _, err = initialised(
        "init", "--owner-email", "other@example.com", "--owner-password", PASSWORD
    )
    assert code == 1
    assert "already has an owner" in err


def test_init_rejects_a_short_password(runhq: Cli) -> None:
    code, _, err = runhq("init", "--owner-email", OWNER, "--owner-password", "short")
    assert code == 1
    assert "10 characters" in err


def test_types_json_lists_the_29(initialised: Cli) -> None:
    code, out, _ = initialised("types", "--json")
    assert code == 0
    types = json.loads(out)
    assert len(types) == 29
    assert {"key", "agent", "model", "estimated_cost_eur", "risk", "requires_approval"} <= set(
        types[0]
    )


def test_run_inline_completes_from_the_demo_data(initialised: Cli) -> None:
    code, out, err = initialised("run", "DAILY_EXECUTIVE_BRIEF", "--inline", "--json")
    assert code == 0, err
    run = json.loads(out)
    assert run["status"] == "completed"
    assert run["model_used"] == "offline"
    assert "runs ces 7 derniers jours" in run["executive_summary"]  # in the report language
    code, out, _ = initialised("show", run["id"], "--json")
    assert json.loads(out)["context"]["facts"]["recent_runs"]["data"]["total"] > 0


def test_gated_run_waits_then_owner_approves(initialised: Cli) -> None:
    code, out, _ = initialised("run", "RELEASE_GATE_CHECK", "--platform", "app", "--json")
    run = json.loads(out)
    assert run["status"] == "pending_approval"
    code, _, err = initialised(
        "user", "add", "ops@example.com", "--password", PASSWORD, "--role", "operator"
    )
    assert code == 0, err
    code, _, err = initialised("approve", run["id"], "--user", "ops@example.com")
    assert code == 1
    assert "requires the owner role" in err
    code, out, _ = initialised("approve", run["id"], "--reason", "ok", "--json")
    assert code == 0
    assert json.loads(out)["status"] == "queued"


def test_bad_inputs_exit_1_with_one_clear_line(initialised: Cli) -> None:
    code, _, err = initialised("run", "NOPE")
    assert code == 1
    assert "unknown run type 'NOPE'" in err
    assert "DAILY_EXECUTIVE_BRIEF" in err
    code, _, err = initialised("run", "REVENUE_FORECAST", "-p", "horizon_months=99")
    assert code == 1
    assert "params.horizon_months" in err
    code, _, err = initialised("run", "SEO_AUDIT", "-p", "novalue")
    assert code == 1
    assert "name=value" in err
    code, _, err = initialised("run", "SEO_AUDIT", "--params-json", "[1]")
    assert code == 1
    assert "JSON object" in err
    code, _, err = initialised("show", "not-a-uuid")
    assert code == 1
    assert "not a run id" in err
    code, _, err = initialised("show", "00000000-0000-0000-0000-000000000000")
    assert code == 1
    assert "no run" in err
    code, _, err = initialised("runs", "--status", "nope")
    assert code == 2
    code, _, err = initialised("costs", "--month", "2026-13")
    assert code == 1
    assert "month" in err
    code, _, err = initialised("reject", "00000000-0000-0000-0000-000000000000", "--reason", " ")
    assert code == 1


def test_duplicate_run_is_refused_with_the_running_id(initialised: Cli) -> None:
    code, out, _ = initialised("run", "SEO_AUDIT", "--json")
    first = json.loads(out)["id"]
    code, _, err = initialised("run", "SEO_AUDIT")
    assert code == 1
    assert first in err


def test_runs_logs_costs_json(initialised: Cli) -> None:
    code, out, _ = initialised("runs", "--json", "--limit", "5")
    page = json.loads(out)
    assert len(page["items"]) == 5
    assert page["next_cursor"]
    code, out, _ = initialised("runs", "--json", "--limit", "5", "--cursor", page["next_cursor"])
    assert {r["id"] for r in json.loads(out)["items"]}.isdisjoint({r["id"] for r in page["items"]})
    code, out, _ = initialised("logs", "--json", "--level", "error")
    assert all(item["level"] == "error" for item in json.loads(out)["items"])
    code, out, _ = initialised("costs", "--json")
    assert json.loads(out)["budgets"][0]["monthly_limit_eur"] == 50.0
    code, out, _ = initialised("logs", "purge", "--json")
    assert code == 0
    assert json.loads(out)["deleted"] >= 0


def test_retry_and_cancel(initialised: Cli) -> None:
    code, out, _ = initialised("run", "SEO_AUDIT", "--json")
    run = json.loads(out)["id"]
    code, out, _ = initialised("cancel", run, "--json")
    assert json.loads(out)["status"] == "cancelled"
    code, out, _ = initialised("retry", run, "--json")
    retried = json.loads(out)
    assert retried["parent_run_id"] == run
    code, _, err = initialised("retry", retried["id"])
    assert code == 1
    assert "only failed or cancelled" in err


def test_budget_and_apikeys(initialised: Cli) -> None:
    code, _, err = initialised("costs", "budget", "0.01", "--scope", "CFO")
    assert code == 0, err
    code, _, err = initialised("run", "FINANCIAL_REPORT")
    assert code == 1
    assert "budget" in err
    code, _, err = initialised("costs", "budget", "1", "--scope", "NOBODY")
    assert code == 1
    code, out, _ = initialised("apikey", "create", "ci", "--json")
    key = json.loads(out)
    assert key["key"].startswith("rhq_")
    code, out, _ = initialised("apikey", "list", "--json")
    assert "key" not in json.loads(out)[0]
    code, out, _ = initialised("apikey", "revoke", key["id"])
    assert code == 0


def test_logs_table_renders_every_level(initialised: Cli) -> None:
    initialised("run", "SEO_AUDIT", "--inline")
    code, out, err = initialised("logs", "--limit", "20")
    assert code == 0, err
    assert "run.completed" in out
    assert "Traceback" not in err


def test_bad_platform_key_names_the_field(initialised: Cli) -> None:
    code, _, err = initialised("run", "SEO_AUDIT", "--platform", "Bad Key")
    assert code == 1
    assert "platform_key:" in err
    assert "pattern" in err


def test_unknown_type_lists_valid_types_once(initialised: Cli) -> None:
    code, _, err = initialised("run", "NOPE")
    assert err.count("DAILY_EXECUTIVE_BRIEF") == 1


def _token_of(email: str) -> str:
    """A JWT for ``email``, issued in-process on the CLI's database (as a login would)."""
    from runhq.auth import service as auth
    from runhq.db.session import transaction

    runtime = cli._runtime()
    with transaction(runtime.sessions) as session:
        owner = auth.get_default_owner(session)
        user_id = auth.get_member_by_email(session, owner, email)
        actor = auth._actor_for(session, user_id, owner.workspace_id)
        return auth.issue_token(session, actor, secret="s" * 40, ttl_minutes=10)


def _works(token: str) -> bool:
    from runhq.auth import service as auth
    from runhq.db.session import transaction
    from runhq.errors import NotAuthenticated

    with transaction(cli._runtime().sessions) as session:
        try:
            auth.resolve_token(session, token, secret="s" * 40)
        except NotAuthenticated:
            return False
    return True


def test_user_verbs(initialised: Cli) -> None:
    code, out, err = initialised(
        "user", "add", "op@example.com", "--password", PASSWORD, "--role", "operator"
    )
    assert code == 0, err
    code, out, err = initialised("user", "list", "--json")
    assert code == 0, err
    assert [(u["email"], u["role"], u["is_active"]) for u in json.loads(out)] == [
        (OWNER, "owner", True),
        ("op@example.com", "operator", True),
    ]
    code, out, _ = initialised("user", "list")
    assert "op@example.com" in out
    token = _token_of("op@example.com")
    assert _works(token)
    code, out, err = initialised("user", "logout", "OP@example.com")
    assert code == 0, err
    assert "must log in again" in out
    assert not _works(token)
    token = _token_of("op@example.com")
    code, out, err = initialised("apikey", "create", "script", "--user", "op@example.com", "--json")
    assert code == 0, err
    key = json.loads(out)["key"]
    assert _works(key)
    code, out, err = initialised("user", "deactivate", "op@example.com")
    assert code == 0, err
    assert "user op@example.com deactivated; 1 API key(s) revoked" in out
    assert not _works(token)
    assert not _works(key)
    code, out, _ = initialised("user", "list", "--json")
    assert {u["email"]: u["is_active"] for u in json.loads(out)}["op@example.com"] is False
    code, out, _ = initialised("user", "activate", "op@example.com")
    assert (code, out.strip()) == (0, "user op@example.com activated")
    assert _works(_token_of("op@example.com"))
    assert not _works(key)  # a reopened account does not bring its old keys back


def test_user_verbs_bad_inputs(initialised: Cli) -> None:
    for verb in ("logout", "deactivate", "activate"):
        code, _, err = initialised("user", verb, "ghost@example.com")
        assert code == 1
        assert "no user 'ghost@example.com'" in err
    # The CLI acts as the owner: not on themselves, never the last active owner.
    code, _, err = initialised("user", "deactivate", OWNER)
    assert code == 1
    assert "yourself" in err
    code, out, _ = initialised("user", "list", "--json")
    assert all(u["is_active"] for u in json.loads(out))
    code, _, err = initialised("user", "add", "bad", "--password", PASSWORD)
    assert code == 1
    assert "Traceback" not in err


def test_apikey_revoke_bad_id_says_key(initialised: Cli) -> None:
    code, _, err = initialised("apikey", "revoke", "abc")
    assert code == 1
    assert "not a key id" in err


def test_reads_as_another_user_are_scoped_to_their_role(initialised: Cli) -> None:
    initialised("user", "add", "viewer@example.com", "--password", PASSWORD)
    code, out, _ = initialised("runs", "--json", "--user", "viewer@example.com", "--limit", "1")
    assert code == 0
    assert len(json.loads(out)["items"]) == 1
    code, _, err = initialised("run", "SEO_AUDIT", "--user", "viewer@example.com")
    assert code == 1
    assert "operator role" in err
    code, _, err = initialised("runs", "--user", "ghost@example.com")
    assert code == 1
    assert "no user" in err


def test_schedules_verbs(initialised: Cli) -> None:
    code, out, err = initialised(
        "schedules", "add", "brief", "DAILY_EXECUTIVE_BRIEF", "--cron", "30 7 * * 1-5", "--json"
    )
    assert code == 0, err
    added = json.loads(out)
    assert len(added["next_firings"]) == 5
    code, out, _ = initialised("schedules", "--json")
    demo = {job_key for job_key, _, _ in DEMO_SCHEDULES}
    assert sorted(s["job_key"] for s in json.loads(out)) == sorted({"brief"} | demo)
    code, out, _ = initialised("schedules")
    assert "brief" in out
    assert initialised("schedules", "disable", "brief")[0] == 0
    code, out, _ = initialised("schedules", "--json")
    assert {s["job_key"]: s["enabled"] for s in json.loads(out)}["brief"] is False
    assert initialised("schedules", "enable", "brief")[0] == 0
    assert initialised("schedules", "remove", "brief")[0] == 0
    code, _, err = initialised("schedules", "remove", "brief")
    assert code == 1
    assert "no schedule" in err


def test_schedules_bad_inputs(initialised: Cli) -> None:
    code, _, err = initialised("schedules", "add", "x", "SEO_AUDIT", "--cron", "61 * * * *")
    assert code == 1
    assert "cron:" in err
    code, _, err = initialised(
        "schedules", "add", "x", "SEO_AUDIT", "--cron", "0 8 * * *", "--tz", "Nowhere/City"
    )
    assert code == 1
    assert "timezone" in err
    code, _, err = initialised("schedules", "add", "Bad Key", "SEO_AUDIT", "--cron", "0 8 * * *")
    assert code == 1
    assert "job_key" in err
    code, _, err = initialised("schedules", "add", "x", "NOPE", "--cron", "0 8 * * *")
    assert code == 1
    assert "unknown run type" in err
    code, out, _ = initialised("schedules", "--json")
    assert "x" not in {s["job_key"] for s in json.loads(out)}  # nothing written


def test_autopilot_verbs(initialised: Cli) -> None:
    code, out, _ = initialised("autopilot", "status", "--json")
    assert json.loads(out)["enabled"] is False
    code, out, _ = initialised("autopilot", "on", "--interval", "10", "--json")
    state = json.loads(out)
    assert (state["enabled"], state["interval_minutes"], state["mode"]) == (
        True,
        10,
        "deterministic",
    )
    code, _, _ = initialised("autopilot", "on", "--interval", "0")
    assert code == 2
    code, out, _ = initialised("autopilot", "decisions", "--json")
    assert json.loads(out)["items"] == []
    code, out, _ = initialised("autopilot", "off")
    assert "autopilot off" in out


def test_worker_rejects_an_unknown_pool(initialised: Cli) -> None:
    code, _, err = initialised("worker", "--pool", "gevent")
    assert code == 2
    assert "--pool" in err


def test_error_messages_keep_their_brackets(initialised: Cli) -> None:
    code, _, err = initialised("schedules", "add", "Bad Key", "SEO_AUDIT", "--cron", "0 8 * * *")
    assert code == 1
    assert "[a-z0-9]" in err


def test_platforms_verbs(initialised: Cli) -> None:
    from tests.fakes.health_server import FakeHealth

    with FakeHealth() as health:
        code, _, err = initialised(
            "platforms", "add", "shop", "--name", "Shop", "--health-url", health.url
        )
        assert code == 0, err
        code, out, _ = initialised("platforms", "check", "shop", "--json")
        assert json.loads(out)["status"] == "up"
    code, out, _ = initialised("platforms", "--json")
    shop = {p["key"]: p for p in json.loads(out)}["shop"]
    assert shop["uptime"][0]["checks"] == 1
    code, out, _ = initialised("platforms")
    assert "100.00%" in out
    code, _, err = initialised("platforms", "add", "x", "--name", "X", "--health-url", "nope")
    assert code == 1
    assert "health_urls" in err
    code, _, err = initialised("platforms", "check", "ghost")
    assert code == 1
    assert initialised("platforms", "remove", "shop")[0] == 0


def test_action_run_plans_then_waits_for_the_owner(initialised: Cli) -> None:
    code, out, err = initialised(
        "run", "DEPLOY_TO_PRODUCTION", "--platform", "app", "--inline", "--json"
    )
    assert code == 0, err
    run = json.loads(out)
    assert (run["status"], run["phase"]) == ("pending_approval", "review")
    assert run["plan"]["action"] == "deploy"
    assert "plan ready" in err
    code, out, _ = initialised("approve", run["id"], "--json")
    assert json.loads(out)["phase"] == "act"


def test_contacts_verbs(initialised: Cli, tmp_path: Path) -> None:
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text(
        "Email;Name;Consent\nana@example.com;Ana;oui\nBOB@example.com;;no\n"
        "cy@example.com;Cy;yes\nana@example.com;Ana B.;yes\n",
        encoding="utf-8",
    )
    code, out, err = initialised("contacts", "import", str(csv_file), "--json")
    assert code == 0, err
    assert json.loads(out) == {"written": 4, "audience": 2}
    code, out, err = initialised("contacts", "--json", "--limit", "2")
    assert code == 0, err
    page = json.loads(out)
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    code, out, _ = initialised("contacts", "--json", "--cursor", page["next_cursor"])
    everyone = page["items"] + json.loads(out)["items"]
    assert {c["email"]: (c["name"], c["consent"]) for c in everyone} == {
        "ana@example.com": ("Ana B.", True),
        "bob@example.com": (None, False),
        "cy@example.com": ("Cy", True),
    }
    code, out, _ = initialised("contacts")
    assert "audience of a campaign now: 2" in out
    # Every row's consent from the command line instead of a column.
    no_column = tmp_path / "more.csv"
    no_column.write_text("email\ndee@example.com\n", encoding="utf-8")
    code, out, err = initialised("contacts", "import", str(no_column), "--consent")
    assert code == 0, err
    assert "audience of a campaign now: 3" in out
    code, out, err = initialised("contacts", "erase", "cy@example.com")
    assert code == 0, err
    code, out, _ = initialised("contacts", "--json")
    assert "cy@example.com" not in out


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("name,consent\nAna,yes\n", [], "no 'email' column (found: consent, name)"),
        ("email\nana@example.com\n", [], "no 'consent' column"),
        ("email,consent\nana@example.com,yes\nnot-an-email,yes\n", [], "row 2"),
        ("email,consent\nana@example.com,yes\nbob@example.com,perhaps\n", [], "line 3: consent"),
        ("email,consent\n" + "x" * 400 + "@example.com,yes\n", [], "line 2: email"),
    ],
)
def test_contacts_import_bad_inputs_write_nothing(
    initialised: Cli, tmp_path: Path, content: str, args: list[str], message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(content, encoding="utf-8")
    code, _, err = initialised("contacts", "import", str(bad), *args)
    assert code == 1
    assert message in " ".join(err.split())  # rich wraps long lines
    assert "Traceback" not in err
    code, out, _ = initialised("contacts", "--json")
    assert json.loads(out)["items"] == []  # all rows or none


def test_contacts_other_bad_inputs(initialised: Cli, tmp_path: Path) -> None:
    code, _, err = initialised("contacts", "import", str(tmp_path / "missing.csv"))
    assert code == 1
    assert "cannot read" in err
    code, _, err = initialised("contacts", "erase", "nobody@example.com")
    assert code == 1
    assert "no contact nobody@example.com" in err
    initialised("user", "add", "op@example.com", "--password", PASSWORD, "--role", "operator")
    code, _, err = initialised("contacts", "--user", "op@example.com")
    assert code == 1
    assert "admin role" in err


def test_platform_deploy_targets(initialised: Cli) -> None:
    code, _, err = initialised(
        "platforms", "add", "shop", "--name", "Shop",
        "--webhook", "https://deploy.example.com/hooks/shop", "--secret-env", "SHOP_SECRET",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = initialised("platforms", "target", "shop", "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "type": "webhook",
        "url": "https://deploy.example.com/hooks/shop",
        "secret_env": "SHOP_SECRET",
    }
    code, out, err = initialised(
        "platforms", "target", "shop", "--github-workflow", "deploy.yml",
        "--token-env", "GH_TOKEN", "--database-url-env", "SHOP_DB",
    )  # fmt: skip
    assert code == 0, err
    assert "type=github" in out
    code, out, _ = initialised("platforms", "target", "shop", "--json")
    assert json.loads(out) == {
        "type": "github",
        "workflow": "deploy.yml",
        "token_env": "GH_TOKEN",
        "database_url_env": "SHOP_DB",
    }
    code, out, _ = initialised("platforms", "target", "shop", "--clear")
    assert code == 0
    assert "no deploy target" in out
    # A viewer sees the kind of target, not where it points.
    initialised("platforms", "target", "shop", "--webhook", "https://d.example.com/h/T0K3N",
                "--secret-env", "S")  # fmt: skip
    initialised("user", "add", "viewer@example.com", "--password", PASSWORD)
    code, out, _ = initialised(
        "platforms", "target", "shop", "--json", "--user", "viewer@example.com"
    )
    assert "T0K3N" not in out
    assert json.loads(out)["type"] == "webhook"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--webhook", "https://d.example.com/h"], "a webhook target needs secret_env"),
        (["--webhook", "not a url", "--secret-env", "S"], "deploy_target.url"),
        (["--secret-env", "has-dash", "--webhook", "https://d.example.com"], "secret_env"),
        (["--github-workflow", "d.yml"], "a github target needs token_env"),
        (["--webhook", "https://d.example.com", "--github-workflow", "d.yml"], "choose one"),
        (["--clear", "--database-url-env", "DB"], "--clear takes no other option"),
    ],
)
def test_platform_target_bad_inputs_change_nothing(
    initialised: Cli, args: list[str], message: str
) -> None:
    initialised("platforms", "add", "shop", "--name", "Shop", "--database-url-env", "SHOP_DB")
    code, _, err = initialised("platforms", "target", "shop", *args)
    assert code == 1
    assert message in " ".join(err.split())
    assert "Traceback" not in err
    code, out, _ = initialised("platforms", "target", "shop", "--json")
    assert json.loads(out) == {"database_url_env": "SHOP_DB"}
    code, _, err = initialised("platforms", "target", "nope")
    assert code == 1
    assert "nope" in err


def test_plan_show_edit_and_approve_the_plan_reviewed(initialised: Cli) -> None:
    code, out, err = initialised(
        "run", "DEPLOY_TO_PRODUCTION", "--platform", "app", "-p", "ref=v1.4.0", "--inline", "--json"
    )
    assert code == 0, err
    run = json.loads(out)
    assert run["status"] == "pending_approval"
    code, out, err = initialised("plan", run["id"], "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["plan"]["ref"] == "v1.4.0"
    old_hash = shown["plan_hash"]
    code, out, err = initialised("plan", run["id"], "--set", "ref=v1.5.0", "--set", "window=[1,2]")
    assert code == 0, err
    assert "needs a new approval" in out
    code, out, _ = initialised("plan", run["id"], "--json")
    edited = json.loads(out)
    assert (edited["plan"]["ref"], edited["plan"]["window"]) == ("v1.5.0", [1, 2])
    assert edited["plan_hash"] != old_hash
    # Approving the plan reviewed before the edit is refused; the current one is approved.
    code, _, err = initialised("approve", run["id"], "--plan-hash", old_hash)
    assert code == 1
    assert "plan" in err
    code, out, err = initialised("approve", run["id"], "--plan-hash", edited["plan_hash"])
    assert code == 0, err


def test_plan_bad_inputs(initialised: Cli, tmp_path: Path) -> None:
    code, out, _ = initialised("run", "SEO_AUDIT", "--inline", "--json")
    plain = json.loads(out)["id"]
    code, _, err = initialised("plan", plain)
    assert code == 1
    assert "has no plan" in " ".join(err.split())
    code, out, _ = initialised(
        "run", "DEPLOY_TO_PRODUCTION", "--platform", "app", "--inline", "--json"
    )
    run_id = json.loads(out)["id"]
    code, out, _ = initialised("plan", run_id, "--json")
    before = json.loads(out)
    not_json = tmp_path / "plan.json"
    not_json.write_text("{nope", encoding="utf-8")
    a_list = tmp_path / "list.json"
    a_list.write_text("[1]", encoding="utf-8")
    for args, message in (
        (["--set", "ref"], "write KEY=VALUE"),
        (["--set", "action=pricing"], "plan.action cannot be edited"),
        (["--file", str(tmp_path / "missing.json")], "cannot read"),
        (["--file", str(not_json)], "is not JSON"),
        (["--file", str(a_list)], "a plan is a JSON object"),
        (["--set", "ref=x", "--file", str(a_list)], "choose one"),
    ):
        code, _, err = initialised("plan", run_id, *args)
        assert code == 1, args
        assert message in " ".join(err.split()), (args, err)
    code, out, _ = initialised("plan", run_id, "--json")
    assert json.loads(out) == before  # nothing changed
    code, _, err = initialised("plan", "not-an-id")
    assert code == 1
