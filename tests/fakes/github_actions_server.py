"""A local fake of GitHub's "Create a workflow dispatch event" endpoint, for tests.

Written from GitHub's public REST reference (Actions > Workflows), not from runhq's code:

- ``POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches``, ``workflow_id``
  being the workflow's numeric id or its file name (``deploy.yml``);
- JSON body ``{"ref": <branch or tag>, "inputs": {...}?, "return_run_details": bool?}``;
  ``inputs`` at most 25 properties, only the inputs the workflow declares, every required one;
- headers ``Accept: application/vnd.github+json`` and ``X-GitHub-Api-Version`` (an unknown
  version -> 400); token as ``Authorization: Bearer <token>`` (or ``token <token>``): none ->
  401 ``Requires authentication``, a wrong one -> 401 ``Bad credentials``, a token without
  ``actions:write`` -> 403 ``Resource not accessible by personal access token``;
- unknown repository or workflow -> 404 ``Not Found``; validation failures -> 422 (``"ref"
  wasn't supplied``, ``No ref found for: <ref>``, ``Workflow does not have 'workflow_dispatch'
  trigger``, ``Unexpected inputs provided: [...]``, ``Required input '<name>' not provided``);
- success: ``204 No Content``; with ``return_run_details: true`` (Feb 2026) ``200 OK`` and
  ``{"workflow_run_id", "run_url", "html_url"}``. ``legacy=True`` imitates a server that
  predates the parameter (422 ``"return_run_details" is not a permitted key``);
- errors: ``{"message", "documentation_url", "status"}``.

It is a real HTTP server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1, ephemeral port, daemon
threads)::

    with FakeGitHubActions() as fake:
        fake.add_workflow("acme/api", "deploy.yml", inputs={"version": True}, refs=["main"])
        fake.fail(502, times=1)
        ... fake.base_url, fake.token, fake.dispatches ...
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.fakes._served import base_url_of, serve, shut

__all__ = [
    "DEFAULT_TOKEN",
    "Dispatch",
    "FakeGitHubActions",
    "RecordedRequest",
    "Workflow",
    "error_body",
]

JSONDict = dict[str, Any]

DEFAULT_TOKEN = "ghp_fakeRunhqActionsToken0123456789abcdef"
SUPPORTED_API_VERSIONS = frozenset({"2022-11-28", "2026-03-10"})
MAX_INPUTS = 25
_DOCS = "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event"
_ids = itertools.count(161_000_001)


def error_body(message: str, status: int, documentation_url: str = _DOCS) -> JSONDict:
    """GitHub's error body."""
    return {"message": message, "documentation_url": documentation_url, "status": str(status)}


@dataclass
class Workflow:
    id: int
    path: str  # .github/workflows/<file>
    #: Declared ``workflow_dispatch`` inputs: name -> required.
    inputs: dict[str, bool] = field(default_factory=dict)
    dispatchable: bool = True

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class _Repository:
    refs: set[str]
    workflows: list[Workflow] = field(default_factory=list)


@dataclass(frozen=True)
class Dispatch:
    repository: str
    workflow: str  # file name
    ref: str
    inputs: dict[str, Any]
    run_id: int


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Failure:
    status: int
    body: Any
    headers: dict[str, str]
    remaining: int | None


@dataclass
class FakeGitHubActions:
    """Context manager running the fake; ``repositories`` are added with :meth:`add_workflow`."""

    token: str = DEFAULT_TOKEN
    #: Valid tokens lacking the ``actions:write`` permission.
    read_only_tokens: set[str] = field(default_factory=set)
    legacy: bool = False
    requests: list[RecordedRequest] = field(default_factory=list)
    dispatches: list[Dispatch] = field(default_factory=list)
    _repositories: dict[str, _Repository] = field(default_factory=dict)
    _failures: list[_Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> FakeGitHubActions:
        self._server, self._thread = serve(self, _Handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        shut(self._server, self._thread)
        self._server = None
        self._thread = None

    @property
    def base_url(self) -> str:
        return base_url_of(self._server, "FakeGitHubActions")

    def add_workflow(
        self,
        repository: str,
        file_name: str,
        *,
        inputs: Mapping[str, bool] | None = None,
        refs: Iterable[str] = ("main",),
        dispatchable: bool = True,
    ) -> Workflow:
        """Declare a workflow (``inputs``: name -> required) in ``repository`` with ``refs``."""
        workflow = Workflow(
            id=next(_ids),
            path=f".github/workflows/{file_name}",
            inputs=dict(inputs or {}),
            dispatchable=dispatchable,
        )
        with self._lock:
            repo = self._repositories.setdefault(repository.lower(), _Repository(set()))
            repo.refs.update(refs)
            repo.workflows.append(workflow)
        return workflow

    def fail(
        self,
        status: int,
        body: Any = None,
        *,
        times: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests (all if None) with ``status`` and ``body``."""
        default = error_body("Server Error" if status >= 500 else "Request failed", status)
        with self._lock:
            self._failures.append(
                _Failure(status, default if body is None else body, dict(headers or {}), times)
            )

    # -- behaviour -----------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> _Failure | None:
        with self._lock:
            self.requests.append(request)
            if not self._failures:
                return None
            failure = self._failures[0]
            if failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.pop(0)
            return failure

    def _handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any]:
        version = headers.get("x-github-api-version")
        if version is not None and version not in SUPPORTED_API_VERSIONS:
            return 400, error_body(f"API version '{version}' is not supported.", 400)
        authorization = headers.get("authorization")
        if authorization is None:
            return 401, error_body("Requires authentication", 401)
        scheme, _, credentials = authorization.partition(" ")
        token = credentials.strip()
        if scheme.lower() not in {"bearer", "token"} or (
            token != self.token and token not in self.read_only_tokens
        ):
            return 401, error_body("Bad credentials", 401)
        parts = [unquote(part) for part in path.strip("/").split("/")]
        if (
            method != "POST"
            or len(parts) != 7
            or parts[0] != "repos"
            or parts[3:5] != ["actions", "workflows"]
            or parts[6] != "dispatches"
        ):
            return 404, error_body("Not Found", 404)
        full_name = f"{parts[1]}/{parts[2]}"
        with self._lock:
            repo = self._repositories.get(full_name.lower())
            workflow = None
            if repo is not None:
                workflow = next(
                    (w for w in repo.workflows if parts[5] in {str(w.id), w.file_name, w.path}),
                    None,
                )
            refs = set(repo.refs) if repo is not None else set()
        if repo is None or workflow is None:
            return 404, error_body("Not Found", 404)
        if token in self.read_only_tokens:
            return 403, error_body("Resource not accessible by personal access token", 403)
        try:
            document = json.loads(body) if body else None
        except ValueError:
            return 400, error_body("Problems parsing JSON", 400)
        if not isinstance(document, dict):
            return 422, error_body(
                "Invalid request.\n\nFor 'links/0/schema', nil is not an object.", 422
            )
        allowed = {"ref", "inputs", "return_run_details"}
        if self.legacy:
            allowed.discard("return_run_details")
        for key in document:
            if key not in allowed:
                return 422, error_body(f'Invalid request.\n\n"{key}" is not a permitted key.', 422)
        ref = document.get("ref")
        if ref is None:
            return 422, error_body('Invalid request.\n\n"ref" wasn\'t supplied.', 422)
        if not isinstance(ref, str):
            return 422, error_body(
                f"Invalid request.\n\nFor 'properties/ref', {json.dumps(ref)} is not a string.",
                422,
            )
        inputs = document.get("inputs") or {}
        if not isinstance(inputs, dict):
            return 422, error_body(
                "Invalid request.\n\nFor 'properties/inputs', not an object.", 422
            )
        if len(inputs) > MAX_INPUTS:
            return 422, error_body(
                f"Invalid request.\n\nFor 'properties/inputs', more than {MAX_INPUTS} properties.",
                422,
            )
        short_ref = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
        if short_ref not in refs:
            return 422, error_body(f"No ref found for: {ref}", 422)
        if not workflow.dispatchable:
            return 422, error_body("Workflow does not have 'workflow_dispatch' trigger", 422)
        unexpected = sorted(name for name in inputs if name not in workflow.inputs)
        if unexpected:
            return 422, error_body(f"Unexpected inputs provided: {json.dumps(unexpected)}", 422)
        for name, required in workflow.inputs.items():
            if required and name not in inputs:
                return 422, error_body(f"Required input '{name}' not provided", 422)
        run_id = next(_ids)
        with self._lock:
            self.dispatches.append(
                Dispatch(full_name, workflow.file_name, ref, dict(inputs), run_id)
            )
        if document.get("return_run_details") is True:
            return 200, {
                "workflow_run_id": run_id,
                "run_url": f"{self.base_url}/repos/{full_name}/actions/runs/{run_id}",
                "html_url": f"https://github.com/{full_name}/actions/runs/{run_id}",
            }
        return 204, None


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeGitHubActions/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the default stderr access log."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        fake: FakeGitHubActions = self.server.fake  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        headers = {name.lower(): value for name, value in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        failure = fake._record(RecordedRequest(method, path, headers, body))
        if failure is not None:
            self._send(failure.status, failure.body, failure.headers)
            return
        status, answer = fake._handle(method, path, headers, body)
        self._send(status, answer, {})

    def _send(self, status: int, body: Any, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        if status == 204:
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            return
        payload = json.dumps(body).encode()
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
