"""Malformed input to the admin API: bad bodies, bad query strings, bad ids. Every answer is a
4xx in Bastion's error shape; none is a 500 or shows a traceback or pydantic's text."""

from __future__ import annotations

from typing import Any

from tests.auth.admin_world import ROUTES, World

LEAKS = ("Traceback", "pydantic", 'File "', "errors.pydantic.dev", "sqlalchemy", "asyncpg")

BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("not json", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("empty", {"content": b""}),
    ("array", {"json": [1, 2, 3]}),
    ("string", {"json": "hello"}),
    ("null", {"json": None}),
    ("number", {"json": 7}),
    ("unknown field", {"json": {"surprise": True}}),
    ("wrong types", {"json": {"name": 5, "role": ["admin"], "email": {}, "settings": "rpm=5", "disabled": "no"}}),
    ("bad role", {"json": {"role": "root", "email": "x@y.z"}}),
    ("huge string", {"json": {"name": "n" * 100_000, "email": "e" * 100_000}}),
    ("invalid utf-8", {"content": b'{"name": "\xff\xfe"}', "headers": {"content-type": "application/json"}}),
    ("deep nesting", {"content": b"[" * 5000 + b"]" * 5000}),
    ("bad expiry", {"json": {"expires_at": "tomorrow-ish"}}),
    ("bad user id", {"json": {"user_id": "../../etc/passwd"}}),
    ("bad tenant name", {"json": {"name": "has spaces/and slashes"}}),
    ("settings nulls", {"json": {"settings": {"rpm": None, "guard": None}}}),
]

BAD_IDS = ["x", "0" * 32, "' OR 1=1 --", "%2e%2e%2fetc", "é" * 40, "a" * 2000]


def _check(response: Any, what: str, wrong: list[str]) -> None:
    if response.status_code >= 500:
        wrong.append(f"{what}: {response.status_code} {response.text[:200]}")
        return
    if any(leak in response.text for leak in LEAKS):
        wrong.append(f"{what}: leaks internals: {response.text[:200]}")
    if response.status_code >= 400:
        body = response.json()
        if set(body) != {"error"} or not body["error"].get("message"):
            wrong.append(f"{what}: error shape {body}")


async def test_bad_bodies_on_every_write_route(world: World) -> None:
    wrong: list[str] = []
    for route in (r for r in ROUTES if r.method in ("POST", "PATCH")):
        who = "platform" if route.rule == "platform" else "admin"
        for name, kwargs in BAD_BODIES:
            request_kwargs = dict(kwargs)
            headers = {"authorization": f"Bearer {world.keys[who]}", **request_kwargs.pop("headers", {})}
            response = await world.env.client.request(
                route.method, route.path(world.ids), headers=headers, **request_kwargs
            )
            _check(response, f"{route.name} [{name}]", wrong)
    assert not wrong, "\n".join(wrong)


async def test_bad_ids_on_every_id_route(world: World) -> None:
    wrong: list[str] = []
    for route in (r for r in ROUTES if "{" in r.template):
        who = "platform" if route.rule == "platform" else "admin"
        for bad in BAD_IDS:
            ids = dict.fromkeys(world.ids, bad)
            body = route.body() if route.body else None
            response = await world.call(who, route.method, route.path(ids), body)
            _check(response, f"{route.name} [{bad[:20]}]", wrong)
            if response.status_code not in (404, 400):
                wrong.append(f"{route.name} [{bad[:20]}]: {response.status_code}, expected 404")
    assert not wrong, "\n".join(wrong)


async def test_bad_query_strings_on_listings(world: World) -> None:
    wrong: list[str] = []
    queries = [
        {"limit": "abc"},
        {"limit": "0"},
        {"limit": "100000"},
        {"limit": "-5"},
        {"cursor": "!!!"},
        {"cursor": "bm90IGEgY3Vyc29y"},  # base64 of "not a cursor"
        {"cursor": "MjAyNi0xMy0zMnxhYmM"},  # a cursor with an impossible date
        {"include_revoked": "maybe"},
        {"prefix": "%_\\"},
        {"user_id": "' OR 1=1 --"},
    ]
    for route in (r for r in ROUTES if r.method == "GET" and "{" not in r.template):
        who = "platform" if route.rule == "platform" else "admin"
        for params in queries:
            response = await world.call(who, "GET", route.path(world.ids), params=params)
            _check(response, f"{route.name} {params}", wrong)
    assert not wrong, "\n".join(wrong)


async def test_wrong_methods_and_unknown_admin_paths(world: World) -> None:
    for method, path in [("PUT", "/api/v1/admin/keys"), ("DELETE", "/api/v1/admin/tenant"), ("GET", "/api/v1/admin/x")]:
        response = await world.call("admin", method, path)
        assert response.status_code in (404, 405), (method, path, response.status_code)
        assert set(response.json()) == {"error"}
