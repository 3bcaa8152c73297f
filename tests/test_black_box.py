"""The contract against a real `uvicorn legacy_app.main:app`, configured only by environment variables.

One server per strategy and database; bad inputs and races included; the server log must end up
free of tracebacks and of any password.
"""
import json
from concurrent.futures import ThreadPoolExecutor
from typing import List

import httpx
import pytest

pytestmark = pytest.mark.slow  # a server per strategy and database, each driven for seconds

CANARY = "CANARY-9d2b7f"


def post(url: str, body: object) -> httpx.Response:
    return httpx.post(url, content=json.dumps(body).encode(), headers={"content-type": "application/json"}, timeout=30)


@pytest.fixture
def server(live_server_factory, database_url, strategy):
    return live_server_factory(DATABASE_URL=database_url, SESSION_STRATEGY=strategy)


def test_black_box_contract(server):
    base = server.url
    statuses: List[int] = []

    def check(response: httpx.Response, status: int) -> httpx.Response:
        statuses.append(response.status_code)
        assert response.status_code == status, response.text
        return response

    check(httpx.get(f"{base}/health"), 200)
    user = check(post(f"{base}/users/", {"email": "Rick@Example.com", "password": CANARY}), 200).json()
    assert user == {"email": "rick@example.com", "id": user["id"], "is_active": True, "items": []}
    assert check(post(f"{base}/users/", {"email": "RICK@example.com", "password": "x"}), 400).json() == {
        "detail": "Email already registered"
    }
    item = check(post(f"{base}/users/{user['id']}/items/", {"title": "Portal Gun"}), 200).json()
    assert item == {"title": "Portal Gun", "description": None, "id": item["id"], "owner_id": user["id"]}
    check(post(f"{base}/users/{user['id'] + 999}/items/", {"title": "orphan"}), 404)
    assert check(httpx.get(f"{base}/users/{user['id']}"), 200).json()["items"] == [item]
    check(httpx.get(f"{base}/users/{user['id'] + 999}"), 404)

    # A registration race: exactly one wins, everyone else is told the email is taken.
    with ThreadPoolExecutor(max_workers=20) as pool:
        race = list(pool.map(lambda _: post(f"{base}/users/", {"email": "race@example.com", "password": "pw"}), range(20)))
    assert sorted(r.status_code for r in race) == [200] + [400] * 19
    statuses.extend(r.status_code for r in race)

    # Sixteen concurrent writers: every write acknowledged, none lost.
    def writes(n: int) -> List[int]:
        codes = []
        for k in range(5):
            created = post(f"{base}/users/", {"email": f"writer{n}-{k}@example.com", "password": "pw"})
            codes.append(created.status_code)
            if created.status_code == 200:
                codes.append(post(f"{base}/users/{created.json()['id']}/items/", {"title": f"{n}-{k}"}).status_code)
        return codes

    with ThreadPoolExecutor(max_workers=16) as pool:
        write_codes = [code for codes in pool.map(writes, range(16)) for code in codes]
    assert write_codes == [200] * 160
    users = check(httpx.get(f"{base}/users/", params={"limit": 100}), 200).json()
    assert [u["id"] for u in users] == sorted(u["id"] for u in users)
    total_users = len(users) + len(check(httpx.get(f"{base}/users/", params={"skip": 100}), 200).json())
    assert total_users == 1 + 1 + 80
    items = check(httpx.get(f"{base}/items/", params={"limit": 100}), 200).json()
    assert len(items) == 81 and [i["id"] for i in items] == sorted(i["id"] for i in items)

    # Hostile and malformed input: a clear 4xx, nothing stored, no password echoed.
    for params in ({"skip": -1}, {"limit": 0}, {"limit": 101}, {"skip": "x"}, {"skip": 2**64}):
        check(httpx.get(f"{base}/users/", params=params), 422)
        check(httpx.get(f"{base}/items/", params=params), 422)
    for user_id in ("-1", "x", str(2**31), str(2**70)):
        check(httpx.get(f"{base}/users/{user_id}"), 422)
    for body in (
        {"password": CANARY},
        {"email": "nope", "password": CANARY},
        {"email": "nul\u0000@example.com", "password": CANARY},
        {"email": "ok@example.com", "password": CANARY + "\ud800"},
        {"email": "ok@example.com", "password": CANARY * 100},
        [CANARY],
    ):
        response = check(post(f"{base}/users/", body), 422)
        assert CANARY not in response.text
    for body in ({"title": "x" * 201}, {"title": "t", "description": "d" * 2001}, {"title": "nul\u0000"}, {}):
        check(post(f"{base}/users/{user['id']}/items/", body), 422)
    check(httpx.post(f"{base}/users/", content=b'{"email": "a@b.co", "pass', headers={"content-type": "application/json"}), 422)
    check(httpx.post(f"{base}/users/", content=b"\xff\xfe\x00garbage", headers={"content-type": "application/json"}), 422)
    assert len(check(httpx.get(f"{base}/items/", params={"limit": 100}), 200).json()) == 81

    assert 500 not in statuses
    server.stop()
    log = server.log()
    # Graceful stop: uvicorn >= 0.29 re-raises SIGTERM after its clean shutdown (-15); older ones exit 0.
    assert server.process.returncode in (0, -15), log
    assert "Application shutdown complete" in log
    assert "Traceback" not in log
    assert CANARY not in log
