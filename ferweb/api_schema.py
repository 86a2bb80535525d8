"""The error answers in the OpenAPI schema, added to every /api/ operation in one place.

Every 4xx/5xx from /api/ has one shape (ferweb.api_errors); rather than repeat it in each
view's `extend_schema`, this drf-spectacular post-processing hook adds the answers that an
operation can give by its nature: 401/403 everywhere, 404 with path parameters, 400 with
input, 413/429 with a request body, 411 with an upload. Views still document the answers
that only they give (409 on a locked dataset, 503 when serving is busy).
"""

ERROR = {
    "type": "object",
    "description": "Every error from /api/: a sentence for a person, a code for a program.",
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "fields": {
            "type": "object",
            "description": "Validation errors only: the messages for each field.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["detail", "code"],
}

WHY = {
    "400": "The input is not valid (`fields` says which).",
    "401": "Not authenticated: send `Authorization: Token <token>` or log in.",
    "403": "Not allowed for this account.",
    "404": "No such record, or not yours.",
    "411": "An upload without a Content-Length header.",
    "413": "The request body is over the upload limit.",
    "429": "Too many requests (throttled; see Retry-After), or a quota is full.",
}


def errors_for(path: str, method: str, operation: dict) -> list[str]:
    codes = ["401", "403"]
    has_body = "requestBody" in operation
    if "{" in path:
        codes.append("404")
    if has_body or operation.get("parameters") and any(p.get("in") == "query" for p in operation["parameters"]):
        codes.append("400")
    if has_body:
        codes += ["413", "429"]
        if "multipart/form-data" in operation["requestBody"].get("content", {}):
            codes.append("411")
    return codes


def document_errors(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in errors_for(path, method, operation):
                responses.setdefault(code, {"description": WHY[code]})
            for code, response in responses.items():
                if code[0] in "45" and "content" not in response:
                    response["content"] = error_content
    return result
