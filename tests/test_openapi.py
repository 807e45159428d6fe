"""The committed OpenAPI document is what the app serves, valid, and client-friendly."""

import json
import re
from pathlib import Path
from typing import Any

from openapi_spec_validator import validate

from crm_api.app import create_app
from crm_api.config import Settings

COMMITTED = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"
OPERATION_ID = re.compile(r"^[a-z]+(_[a-z]+)*_[a-z]+$")


def _served() -> dict[str, Any]:
    document: dict[str, Any] = create_app(Settings()).openapi()
    return document


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


class TestCommittedDocument:
    def test_matches_what_the_app_serves(self) -> None:
        committed = json.loads(COMMITTED.read_text())
        assert committed == _served(), "openapi/openapi.json is stale: run `crm-api openapi`"

    def test_is_a_valid_openapi_document(self) -> None:
        validate(json.loads(COMMITTED.read_text()))


class TestContractConventions:
    def test_operation_ids_are_stable_resource_action_names(self) -> None:
        ids = [operation["operationId"] for _, _, operation in _operations(_served())]
        assert len(ids) == len(set(ids))
        assert all(OPERATION_ID.match(operation_id) for operation_id in ids), ids

    def test_every_v1_operation_declares_its_problem_responses(self) -> None:
        for path, method, operation in _operations(_served()):
            if not path.startswith("/v1/"):
                continue
            responses = operation["responses"]
            for status in ("401", "422", "500"):
                content = responses[status]["content"]
                assert "application/problem+json" in content, (path, method, status)
            if method == "patch" or (method == "delete" and "api-keys" not in path):
                assert {"404", "409", "412"} <= set(responses), (path, method)

    def test_schemas_have_readable_names(self) -> None:
        names = set(_served()["components"]["schemas"])
        assert {"ContactRead", "ContactPage", "CompanyPage", "Problem"} <= names
        assert not [name for name in names if "_" in name or "[" in name]

    def test_schemas_say_what_the_api_accepts_and_returns(self) -> None:
        schemas = _served()["components"]["schemas"]
        revenue = schemas["CompanyRead"]["properties"]["annual_revenue"]
        assert {"type": "null"} in revenue["anyOf"]  # a company may have no revenue
        assert "type" not in revenue  # and it is never a JSON number
        stage = schemas["ContactUpdate"]["properties"]["lifecycle_stage"]
        assert "anyOf" not in stage  # PATCH may omit it, never null it
        assert "400" in _served()["paths"]["/v1/contacts"]["post"]["responses"]
