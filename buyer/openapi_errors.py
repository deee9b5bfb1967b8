"""Every error answer of the REST API in its OpenAPI schema, with its body.

The routes declare their successful answers (and a few specific errors); the errors every route shares come from
the API's own layers and are added here by what an operation has: a key (401, 403, 429), parameters or a body
(422), a body (400 unparseable, 413 too large), an id in the path or a filter (404), a mutation (400 and 409: the
services' refusals), and 503 for any route but /health when the database or the broker is unavailable. A
schemathesis run over the API (``tests/api/test_schema_conformance.py``) checks that no other status comes back."""

from __future__ import annotations

from typing import Any

ERROR_OUT = "ErrorOut"
VALIDATION_ERROR_OUT = "ValidationErrorOut"

COMPONENTS: dict[str, dict[str, Any]] = {
    ERROR_OUT: {
        "title": ERROR_OUT,
        "type": "object",
        "properties": {"detail": {"title": "Detail", "type": "string", "description": "What went wrong, in words"}},
        "required": ["detail"],
    },
    VALIDATION_ERROR_OUT: {
        "title": VALIDATION_ERROR_OUT,
        "type": "object",
        "properties": {
            "detail": {
                "title": "Detail",
                "type": "array",
                "description": "One entry per refused input: where it is (loc), why (type, msg), and the limit (ctx)",
                "items": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                        "msg": {"type": "string"},
                        "ctx": {"type": "object"},
                    },
                    "required": ["type", "loc", "msg"],
                },
            }
        },
        "required": ["detail"],
    },
}

DESCRIPTIONS = {
    400: "The request cannot be read (a body that is not JSON), or the service refused it as asked",
    401: "Invalid or missing API key (the X-API-Key header)",
    403: "The API key lacks the scope this route needs",
    404: "Nothing with this id",
    409: "Not possible in the current state (for example, a job no longer awaiting approval)",
    413: "The body is larger than MAX_REQUEST_BODY_BYTES",
    422: "A parameter or a body field was refused; each entry names it",
    429: "Rate limit reached (API_RATE_LIMIT_PER_MINUTE); the Retry-After header says when to try again",
    503: "A service this route needs (the database or the broker) is unavailable; try again shortly",
}

MUTATIONS = {"post", "put", "patch", "delete"}


def error_codes(method: str, operation: dict[str, Any]) -> set[int]:
    """The shared error answers one operation can give."""
    codes: set[int] = set()
    parameters = operation.get("parameters") or []
    has_body = "requestBody" in operation
    if operation.get("security"):  # every route but the liveness check: a key, a rate limit and the database
        # 422 too: any query string may hold text the database cannot store (buyer.storable), declared or not.
        codes |= {401, 403, 422, 429, 503}
    if parameters or has_body:
        codes.add(422)
    if has_body:
        codes |= {400, 413}
    if any(p.get("in") == "path" or str(p.get("name", "")).endswith("_id") for p in parameters):
        codes.add(404)  # a path's id, or a filter naming something (campaign_id) that does not exist
    if method in MUTATIONS:
        codes |= {400, 409}
    return codes


def _answer(code: int, described: dict[str, Any] | None) -> dict[str, Any]:
    body = VALIDATION_ERROR_OUT if code == 422 else ERROR_OUT
    answer = {"description": DESCRIPTIONS.get(code, "Error"), **(described or {})}
    answer.setdefault("content", {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}})
    return answer


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every operation's error answers listed, each with its JSON body (in place)."""
    schema.setdefault("components", {}).setdefault("schemas", {}).update(COMPONENTS)
    for operations in schema.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            declared = {int(code) for code in responses if str(code).isdigit() and int(code) >= 400}
            for code in sorted(error_codes(method, operation) | declared):
                responses[str(code)] = _answer(code, responses.get(str(code), responses.get(code)))
                responses.pop(code, None)
    return schema
