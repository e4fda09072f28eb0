"""GitHub Actions ``workflow_dispatch``: start a workflow run (a deploy, a release) on a ref.

``POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches`` with
``{"ref": ..., "inputs": {...}}`` (GitHub's "Create a workflow dispatch event"). ``workflow_id``
is the workflow's numeric id or its file name (``deploy.yml``). The token needs the ``repo``
scope (classic) or the ``actions:write`` permission (fine-grained, GitHub App).

GitHub answers ``204 No Content``; since February 2026 the optional body parameter
``return_run_details: true`` makes it answer ``200 OK`` with ``workflow_run_id``, ``run_url`` and
``html_url`` instead. Both are success here. Servers that do not know the parameter (older GitHub
Enterprise Server) reject it with 422; nothing was dispatched then, so the request is sent once
more without it.

Like every action connector, a dispatch is sent once (a dispatch cannot be deduplicated by
GitHub): 5xx, 429, timeouts and connection errors raise a retryable :class:`ActionFailed`, and
the caller decides.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import httpx

from runhq.actions.connectors.base import ActionFailed, ActionResult, clip, redact

__all__ = ["API_VERSION", "DEFAULT_API_URL", "dispatch_workflow"]

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def dispatch_workflow(
    client: httpx.Client,
    *,
    api_url: str = DEFAULT_API_URL,
    token: str,
    repository: str,
    workflow: str,
    ref: str,
    inputs: dict[str, str],
    return_run_details: bool = True,
) -> ActionResult:
    """Dispatch ``workflow`` of ``repository`` (``owner/name``) on ``ref`` with ``inputs``.

    Success details: ``repository``, ``workflow``, ``ref``, ``status_code`` and, when GitHub
    returned them, ``run_id``, ``run_url`` (API) and ``html_url``. 401/403/404/422 raise a
    non-retryable :class:`ActionFailed` carrying GitHub's ``message`` (404 also means "no access":
    GitHub hides private repositories); 429, 5xx and transport errors a retryable one.
    """
    if not token:
        raise ValueError("a GitHub token is required")
    if not _REPOSITORY.fullmatch(repository):
        raise ValueError("repository must look like 'owner/name'")
    if not workflow.strip() or not ref.strip():
        raise ValueError("workflow and ref are required")
    owner, name = repository.split("/")
    path = (
        f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"
        f"/actions/workflows/{quote(workflow, safe='')}/dispatches"
    )
    url = api_url.rstrip("/") + path
    headers = {
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {token}",
        "X-GitHub-Api-Version": API_VERSION,
    }
    body: dict[str, Any] = {"ref": ref, "inputs": dict(inputs)}
    if return_run_details:
        body["return_run_details"] = True
    where = f"GitHub ({repository}, workflow {workflow})"

    response = _post(client, url, body, headers, where, token)
    if (
        return_run_details
        and response.status_code in {400, 422}
        and "return_run_details" in (_message(response) or "")
    ):
        # Validation failed before anything was dispatched: resend without the parameter.
        del body["return_run_details"]
        response = _post(client, url, body, headers, where, token)

    status = response.status_code
    if status in {200, 201, 204}:
        details: dict[str, Any] = {
            "repository": repository,
            "workflow": workflow,
            "ref": ref,
            "status_code": status,
        }
        run = _json_object(response) if status != 204 else None
        if run is not None:
            for source, target in (
                ("workflow_run_id", "run_id"),
                ("run_url", "run_url"),
                ("html_url", "html_url"),
            ):
                if run.get(source) is not None:
                    details[target] = run[source]
        summary = f"dispatched workflow {workflow} of {repository} on {ref}"
        if "run_id" in details:
            summary += f" (run {details['run_id']})"
        return ActionResult(ok=True, summary=summary, details=details)

    message = _message(response)
    answered = f"{where} answered {status}"
    answered += f": {redact(message, [token])}" if message else f" {response.reason_phrase}"
    raise ActionFailed(answered, retryable=_retryable(response), status_code=status)


def _post(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    where: str,
    token: str,
) -> httpx.Response:
    try:
        return client.post(url, json=body, headers=headers, follow_redirects=False)
    except httpx.ConnectError as exc:
        detail = redact(clip(str(exc) or type(exc).__name__), [token])
        raise ActionFailed(
            f"could not connect to {where} ({detail}); nothing was dispatched", retryable=True
        ) from None
    except httpx.TimeoutException:
        raise ActionFailed(
            f"{where} did not answer in time; the workflow may or may not have been dispatched "
            f"(check its runs before dispatching again)",
            retryable=True,
        ) from None
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        detail = redact(clip(str(exc) or type(exc).__name__), [token])
        raise ActionFailed(
            f"the connection to {where} failed ({detail}); the workflow may or may not have "
            f"been dispatched (check its runs before dispatching again)",
            retryable=True,
        ) from None
    except httpx.HTTPError as exc:
        detail = redact(clip(str(exc) or type(exc).__name__), [token])
        raise ActionFailed(f"request to {where} failed: {detail}", retryable=False) from None


def _retryable(response: httpx.Response) -> bool:
    status = response.status_code
    if status == 429 or status >= 500:
        return True
    # GitHub's secondary and primary rate limits may answer 403 with these headers.
    if status == 403 and (
        response.headers.get("retry-after") is not None
        or response.headers.get("x-ratelimit-remaining") == "0"
    ):
        return True
    return False


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _message(response: httpx.Response) -> str | None:
    """GitHub's error ``message`` (plus the first validation ``errors`` entry), if any."""
    data = _json_object(response)
    if data is None:
        text = response.text.strip() if response.content else ""
        return clip(text) if text else None
    message = data.get("message")
    if not isinstance(message, str) or not message.strip():
        return None
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        first = errors[0]
        extra = first.get("message") if isinstance(first, dict) else first
        if isinstance(extra, str) and extra.strip() and extra.strip() not in message:
            message = f"{message} ({extra.strip()})"
    return clip(message)
