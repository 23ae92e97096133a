"""schemathesis against Herald's own OpenAPI document, over a live `herald api`.

Every operation gets generated requests, valid and invalid (negative mode), with a token
that holds every scope. Whatever the input, the gateway must never answer 5xx, and every
answer must be one the document declares: status code, content type, headers and body.
"""

from __future__ import annotations

import hypothesis
import schemathesis
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from herald.api.app import create_app
from tests.conftest import make_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# The document the running gateway serves: building the app connects to nothing (the
# lifespan does), so it is read at import, as schemathesis's parametrize needs.
schema = schemathesis.openapi.from_dict(
    create_app(make_settings("postgresql://unused/x")).openapi()
)


@schema.parametrize()
@hypothesis.settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_no_server_error_and_every_answer_matches_the_document(
    case: Case, live_api: str, all_scopes_token: str
) -> None:
    case.call_and_validate(
        base_url=live_api,
        headers={"Authorization": f"Bearer {all_scopes_token}"},
        checks=CHECKS,
    )
