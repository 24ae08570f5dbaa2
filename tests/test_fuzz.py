"""Every JSON endpoint, fuzzed from the OpenAPI schema: bodies that fit the schema and bodies that do not.
No request gets a 5xx, and every error is JSON with a readable `detail`."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import local_client
from llmviz.serve.server import create_app

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def client(nano):
    return local_client(create_app([nano]))


@pytest.fixture(scope="module")
def openapi(client):
    return client.get("/openapi.json").json()


def inline(schema, components):
    """The schema with every $ref replaced by what it points to (the API's schemas are not recursive)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return inline(components[schema["$ref"].rsplit("/", 1)[1]], components)
        return {k: inline(v, components) for k, v in schema.items()}
    if isinstance(schema, list):
        return [inline(v, components) for v in schema]
    return schema


def from_schema(schema):
    """Values that fit a JSON schema, for the keywords the API's schemas use; short, and near the edges."""
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([from_schema(s) for s in schema.get("anyOf", schema.get("oneOf"))])
    examples = st.sampled_from(schema["examples"]) if schema.get("examples") else st.nothing()
    kind = schema.get("type")
    if kind == "object":
        props, required = schema.get("properties", {}), set(schema.get("required", ()))
        if not props:
            return st.dictionaries(st.text(max_size=10), from_schema(schema.get("additionalProperties", {})), max_size=3)
        return st.fixed_dictionaries({k: from_schema(v) for k, v in props.items() if k in required},
                                     optional={k: from_schema(v) for k, v in props.items() if k not in required})
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {})), max_size=min(schema.get("maxItems", 12), 12)) | examples
    if kind == "string":
        return st.text(max_size=min(schema.get("maxLength", 30), 30)) | examples
    if kind == "integer":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        small = st.integers(max(lo, -3) if lo is not None else -3, min(hi, 12) if hi is not None else 12)
        return small | st.integers(lo, hi) | examples
    if kind == "number":
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        return st.floats(lo, schema.get("maximum"), exclude_min="exclusiveMinimum" in schema, allow_nan=False,
                         allow_infinity=False) | examples
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return json_values()


def json_values():
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                            max_size=4), max_leaves=12)


def post_endpoints(openapi):
    out = []
    for path, methods in openapi["paths"].items():
        body = methods.get("post", {}).get("requestBody")
        if body:
            out.append((path, inline(body["content"]["application/json"]["schema"], openapi["components"]["schemas"])))
    return out


TENSORS = ["blocks.0.attn.hook_q", "probs", "blocks.2.attn.hook_pattern", "tokens", "embed.W_E", "blocks.1.ln2.hook_scale"]


def plausible(body):
    """The served model and exactly one of text or tokens (from its alphabet): bodies that reach the forward pass."""
    if set(body) <= {"count"}:  # a session's step
        return body
    body = {**body, "model": "nano-gpt"}
    if isinstance(body.get("text"), str):
        body["text"] = "".join("ABC"[ord(c) % 3] for c in body["text"])[:11] or "A"
        body.pop("tokens", None)
    elif "tokens" not in body or body["tokens"] is None:
        body["tokens"] = [0, 2, 1]
    body.pop("text", None) if body.get("tokens") is not None else None
    if isinstance(body.get("edits"), list):  # interventions: tensors of nano-gpt
        body["edits"] = [{**e, "tensor": TENSORS[len(str(e.get("tensor"))) % len(TENSORS)]} if isinstance(e, dict) else e
                         for e in body["edits"]]
    if isinstance(body.get("slices"), list):  # cells: tensors of nano-gpt
        body["slices"] = [{**s, "tensor": TENSORS[len(str(s.get("tensor"))) % len(TENSORS)]} if isinstance(s, dict) else s
                          for s in body["slices"]]
    return body


def assert_answered(r):
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        detail = r.json()["detail"]
        assert isinstance(detail, str) and detail


POSTS = ["/api/trace", "/api/scene", "/api/cells", "/api/generate", "/api/sessions", "/api/sessions/{sid}/step",
         "/api/attention", "/api/lens", "/api/branches", "/api/intervene", "/api/attribution", "/api/patching", "/api/chain",
         "/api/training", "/api/training/control", "/api/compare", "/api/compare/scene"]


def test_every_post_endpoint_is_covered(openapi):
    assert {p for p, _ in post_endpoints(openapi)} == set(POSTS)


@pytest.fixture(scope="module")
def session(client):
    return client.post("/api/sessions", json={"text": "CBA", "temperature": 1.0, "seed": 1}).json()["session"]


@pytest.mark.parametrize("path", POSTS)
def test_bodies_that_fit_the_schema(client, openapi, session, path):
    schema = dict(post_endpoints(openapi))[path]
    bodies = from_schema(schema) | from_schema(schema).map(plausible)
    url = path.replace("{sid}", session)  # a real session: its steps run until its context is full

    @SETTINGS
    @given(bodies)
    def check(body):
        assert_answered(client.post(url, json=body))

    check()


@pytest.mark.parametrize("path", POSTS)
def test_bodies_that_do_not(client, session, path):
    url = path.replace("{sid}", session)

    @SETTINGS
    @given(json_values())
    def check(body):
        r = client.post(url, content=json.dumps(body), headers={"content-type": "application/json"})
        assert_answered(r)

    check()


@SETTINGS
@given(st.binary(max_size=64))
def test_bytes_that_are_not_json(client, data):
    assert_answered(client.post("/api/cells", content=data, headers={"content-type": "application/json"}))


@SETTINGS
@given(st.text(min_size=1, max_size=30))
def test_graph_of_any_name(client, name):
    from urllib.parse import quote

    assert_answered(client.get(f"/api/models/{quote(name, safe='')}/graph"))


@SETTINGS
@given(st.text(max_size=30), st.sampled_from(["nano-gpt", "gpt2", "gpt3", "nope"]))
def test_walkthrough_of_any_input(client, text, model):
    assert_answered(client.get("/api/walkthrough", params={"model": model, "input": text}))
