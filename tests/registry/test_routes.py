"""GET /api/v1/run-types."""

from __future__ import annotations

from fastapi.testclient import TestClient

from runhq.runtime import Runtime
from tests.conftest import Team, bearer


def test_list_and_get(client: TestClient, runtime: Runtime, team: Team) -> None:
    h = bearer(runtime, team.viewer)
    types = client.get("/api/v1/run-types", headers=h).json()
    assert len(types) == 29
    deploy = client.get("/api/v1/run-types/DEPLOY_TO_PRODUCTION", headers=h).json()
    assert deploy["requires_approval"] is True
    assert deploy["agent_title"]["fr"]
    assert deploy["params_schema"]["type"] == "object"
    missing = client.get("/api/v1/run-types/NOPE", headers=h)
    assert missing.status_code == 404
    assert "DAILY_EXECUTIVE_BRIEF" in missing.json()["error"]["message"]
    assert client.get("/api/v1/run-types").status_code == 401


def test_openapi_documents_schemas_and_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    create = spec["paths"]["/api/v1/runs"]["post"]
    assert {"201", "200", "400", "401", "402", "403", "409", "422"} <= set(create["responses"])
    assert "RunCreate" in spec["components"]["schemas"]
    error = create["responses"]["409"]["content"]["application/json"]["schema"]
    assert error["$ref"].endswith("/ErrorResponse")
