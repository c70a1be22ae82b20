"""schemathesis over the server's own OpenAPI document: every operation gets generated requests (valid and not),
and no answer may be a 5xx or differ from what the document promises (status, content type, body schema)."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

sys.path.insert(0, str(Path(__file__).parent))
from _server import Server, make_home

from engram.server.keys import KeyStore

EXAMPLES = 6  # per operation and mode: bounded, so the whole run stays under a minute
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[tuple[Server, str]]:
    home = make_home(tmp_path_factory.mktemp("schema"), models_dir)
    key, _ = KeyStore(home / "keys.db").create("fuzz", admin=True)
    server = Server(home).start()
    yield server, key
    assert server.stop_cleanly()


def test_every_operation_answers_as_documented_and_never_5xx(served: tuple[Server, str]) -> None:
    server, key = served
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    results = list(schema.get_all_operations())
    assert not [result.err() for result in results if isinstance(result, Err)]
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) >= 25
    headers = {"Authorization": f"Token {key}"}
    seen: dict[str, set[int]] = {}

    for operation, mode in itertools.product(operations, (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def exercise(case: schemathesis.Case) -> None:
            response = case.call(base_url=server.url, headers=headers, timeout=60)
            seen.setdefault(case.operation.label, set()).add(response.status_code)
            case.validate_response(response, checks=CHECKS)

        try:
            exercise()
        except Unsatisfiable:  # an operation without parameters or body has no invalid request to make
            assert mode is GenerationMode.NEGATIVE
    assert len(seen) == len(operations)
    statuses = set().union(*seen.values())
    assert {200, 400, 404, 422} <= statuses and not any(s >= 500 for s in statuses)
