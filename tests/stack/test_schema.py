"""The HTTP API against its OpenAPI document (frontend/openapi.json, served at /openapi.json).

schemathesis generates requests from the document (its examples, boundary "coverage" cases and
random fuzzing, valid and invalid) and sends them to a live stack; every response must conform:
no 5xx, only documented status codes, content types, bodies and headers. A few explicit tests pin
the errors a generator does not reach: 413, 415 and 405, all with the JSON error body.
"""
import json
import re
from pathlib import Path
from urllib.parse import quote

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

from client.session import Session
from runtime.settings import Settings

DOC_PATH = Path(__file__).resolve().parents[2] / "frontend" / "openapi.json"
DOC = json.loads(DOC_PATH.read_text())
BUY = {"name": "GameStart", "quantity": 1, "type": "buy"}
# The orders each schemathesis run starts with, so that looking up an order can find one.
SEED_ORDERS = [BUY, {"name": "FishCo", "quantity": 5, "type": "sell"},
               {"name": "BoarCo", "quantity": 2, "type": "buy"}]

CONFIG = SchemathesisConfig.from_dict({
    "seed": 0,
    # Up to 100 random cases per operation, on top of the examples and coverage cases; the same
    # ones on every run (deterministic, no example database), so CI does not flake.
    "generation": {"max-examples": 100, "deterministic": True, "database": "none"},
    "checks": {
        # A schema-valid order can still be refused because of the state of the stack: an unknown
        # stock (404), not enough shares (409), an Idempotency-Key already used for another order (422);
        # an If-None-Match that matches the stock listing (304).
        "positive_data_acceptance": {"expected-statuses": ["2xx", "304", "404", "409", "422"]},
    },
})
# The document is loaded from the file and the requests go to each test's own stack (base_url);
# the test below checks the stack serves this very file. (schemathesis.pytest.from_fixture would load
# it from the stack, but schemathesis 4.32 sets Node._nodeid there, which pytest 9.2 no longer has.)
schema = schemathesis.openapi.from_path(DOC_PATH, config=CONFIG)

# All of schemathesis's checks that apply to this API. Left out: max_response_time (timing makes CI
# flaky); ignored_auth and object_level_authorization (the API has no authentication);
# use_after_free and ensure_resource_availability (they follow links between operations in
# schemathesis's stateful phase, which the pytest integration does not run, and nothing is deleted).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.positive_data_acceptance,
    checks.negative_data_rejection,
    checks.missing_required_header,
    checks.unsupported_method,
    checks.allow_header_conformance,
]


@pytest.fixture
def trading_stack(stack):
    """A stack with a few orders placed already."""
    session = Session(stack.url)
    for order in SEED_ORDERS:
        assert session.post("/orders", order)[0] == 200
    session.close()
    return stack


@schema.parametrize()
# One stack per operation, shared by all its cases: the state they build up (orders, stock
# quantities, used Idempotency-Keys) is part of what is tested.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_conforms_to_openapi(case, trading_stack):
    case.call_and_validate(base_url=trading_stack.url, checks=CHECKS)


def test_served_document_is_the_file_and_valid_openapi(stack):
    loaded = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")
    assert loaded.raw_schema == DOC
    loaded.validate()  # raises unless it is a valid OpenAPI 3.0 document (the official JSON Schema)
    operations = {(path, method) for path, item in DOC["paths"].items() for method in item}
    assert operations >= {("/stocks/{name}", "get"), ("/stock/{name}", "get"), ("/orders", "post"),
                          ("/order", "post"), ("/orders/{number}", "get"), ("/openapi.json", "get")}


def test_examples_in_the_document_match_its_schemas():
    found = list(_examples(DOC))
    assert len(found) > 20
    for where, schema_, example in found:
        errors = [e.message for e in _validator(schema_).iter_errors(example)]
        assert not errors, f"example at {where}: {errors}"
    for path, item in DOC["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                for _, _, example in _examples(_resolve(response)):
                    if status != "200":
                        assert example["error"]["code"] == int(status), f"{method} {path} {status}"


def test_oversized_body_gets_413(api):
    limit = Settings.from_env().max_body_bytes
    just_fits = _padded(BUY, limit)
    status, body, headers = api.request("POST", "/orders", headers={"Content-Type": "application/json"},
                                        raw=_padded(BUY, limit + 1))
    assert_error(status, body, headers, 413)
    assert "413" in DOC["paths"]["/orders"]["post"]["responses"]
    assert api.get("/orders/0")[0] == 404
    # Exactly the limit is accepted, and the unknown property is ignored.
    assert api.request("POST", "/orders", headers={"Content-Type": "application/json"},
                       raw=just_fits)[:2] == (200, {"data": {"transaction_number": 0}})


def test_non_json_content_type_gets_415(api):
    status, body, headers = api.request("POST", "/orders", headers={"Content-Type": "text/plain"},
                                        raw=json.dumps(BUY).encode())
    assert_error(status, body, headers, 415)
    assert "415" in DOC["paths"]["/orders"]["post"]["responses"]
    assert api.get("/orders/0")[0] == 404


def test_unknown_method_gets_405(api):
    status, body, headers = api.request("DELETE", "/orders")
    assert_error(status, body, headers, 405)
    assert "POST" in [method.strip() for method in headers["Allow"].split(",")]
    assert "delete" not in DOC["paths"]["/orders"]


def test_order_number_is_decimal_digits_only(api):
    assert api.post("/orders", BUY)[0] == 200
    assert api.get("/orders/0")[0] == 200
    # int() alone would take each of these for order 0.
    for number in [" 0", "+0", "0_0", "\u0660", "0\n", "0.0"]:
        status, body, headers = api.get("/orders/" + quote(number))
        assert_error(status, body, headers, 400)


def test_huge_quantity_is_not_a_server_error(api):
    status, body, headers = api.post("/orders", {**BUY, "type": "sell", "quantity": 10 ** 4300 - 1})
    assert_error(status, body, headers, 400)


def assert_error(status, body, headers, expected):
    """An error response as documented: the status, JSON, the Error schema, an X-Request-ID."""
    assert status == expected, body
    assert headers["Content-Type"] == "application/json"
    _validator({"$ref": "#/components/schemas/Error"}).validate(body)
    assert body["error"]["code"] == expected
    pattern = DOC["components"]["headers"]["X-Request-ID"]["schema"]["pattern"]
    assert re.fullmatch(pattern, headers["X-Request-ID"])


def _padded(order, size):
    """The order as a JSON body of exactly ``size`` bytes, padded with an unknown property."""
    base = len(json.dumps({**order, "padding": ""}).encode())
    body = json.dumps({**order, "padding": "x" * (size - base)}).encode()
    assert len(body) == size
    return body


def _validator(schema_):
    # OpenAPI 3.0 schemas are JSON Schema draft 4 (as far as this document goes); their $refs point
    # into the document's components.
    return jsonschema.Draft4Validator({**schema_, "components": DOC["components"]})


def _resolve(node):
    """Follow local $refs."""
    while "$ref" in node:
        target = DOC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _examples(node, where="#"):
    """``(where, schema, example)`` for every example next to a schema: media types and parameters."""
    if isinstance(node, dict):
        if "schema" in node:
            if "example" in node:
                yield where, node["schema"], node["example"]
            for name, example in node.get("examples", {}).items():
                yield f"{where}/examples/{name}", node["schema"], example["value"]
        elif "example" in node and where.startswith("#/components/schemas/"):
            yield where, {k: v for k, v in node.items() if k != "example"}, node["example"]
        for key, value in node.items():
            if key not in ("example", "examples"):
                yield from _examples(value, f"{where}/{key}")
