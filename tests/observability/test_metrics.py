"""GET /metrics: exact request counts by route template and status, the pool, sessions and
transactions, and nothing a client sent in any label. One process here; several in test_metrics_workers."""
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, FrozenSet, Tuple

import pytest
from fastapi import BackgroundTasks
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session

from legacy_app import compat

from legacy_app.observability import metrics as metrics_module
from legacy_app.config import HTTP_MIDDLEWARE, YIELD_DEPENDENCY, Settings
from legacy_app.routers.deps import DbSession
from legacy_app.http.observer import METHODS, OTHER_METHOD, UNMATCHED
from legacy_app.main import create_app
from legacy_app.observability.metrics import MULTIPROC_DIR_VARIABLE, REQUEST_BUCKETS, Metrics
from legacy_app.models import User
from legacy_app.observability.metrics import KeptInProcess, WrittenAsTheyChange

from tools.drills.tcp_proxy import TcpProxy

from ..conftest import EVERY_DATABASE, FAST_HASHING, database_url_for, post_json, reset_database

Samples = Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> Dict[Tuple[Tuple[str, str], ...], float]:
    return {tuple(sorted(labels)): v for (sample_name, labels), v in samples.items() if sample_name == name}


def register(client, email: str = "metrics@example.com") -> int:
    response = post_json(client, "/users/", {"email": email, "password": "pw"})
    assert response.status_code == 200
    return response.json()["id"]


def test_requests_are_counted_exactly_by_method_route_template_and_status(client):
    user_id = register(client)
    for _ in range(7):
        assert client.get(f"/users/{user_id}").status_code == 200
    for missing in (900001, 900002, 900003):
        assert client.get(f"/users/{missing}").status_code == 404
    assert client.get("/users/not-a-number").status_code == 422
    assert client.get("/users/?limit=0").status_code == 422
    assert client.get("/users/?limit=101").status_code == 422
    assert client.get("/no/such/page").status_code == 404
    assert client.get("/users/1/items/extra").status_code == 404
    assert client.delete(f"/users/{user_id}").status_code == 405

    samples = scrape(client)
    assert series(samples, "http_requests_total") == {
        (("method", "POST"), ("route", "/users/"), ("status", "200")): 1,
        (("method", "GET"), ("route", "/users/{user_id}"), ("status", "200")): 7,
        (("method", "GET"), ("route", "/users/{user_id}"), ("status", "404")): 3,
        (("method", "GET"), ("route", "/users/{user_id}"), ("status", "422")): 1,
        (("method", "GET"), ("route", "/users/"), ("status", "422")): 2,
        (("method", "GET"), ("route", UNMATCHED), ("status", "404")): 2,
        (("method", "DELETE"), ("route", "/users/{user_id}"), ("status", "405")): 1,
    }
    assert value(samples, "http_request_duration_seconds_count", method="GET", route="/users/{user_id}") == 11
    assert value(samples, "http_request_duration_seconds_bucket", method="GET", route="/users/{user_id}", le="+Inf") == 11
    # The scrape counts once it is answered: the next scrape shows the first.
    assert value(scrape(client), "http_requests_total", method="GET", route="/metrics", status="200") == 1


def test_a_body_over_the_limit_is_counted_as_413(client):
    response = post_json(client, "/users/", {"email": "big@example.com", "password": "p" * 70_000})
    assert response.status_code == 413
    assert value(scrape(client), "http_requests_total", method="POST", route="/users/", status="413") == 1


@pytest.fixture
def one_connection_app(database_url: str, strategy: str):
    """A pool of one connection that gives up after 0.3 s."""
    settings = Settings(
        database_url=database_url, session_strategy=strategy,
        pool_size=1, max_overflow=0, pool_timeout=0.3, **FAST_HASHING,
    )
    app = create_app(settings)
    yield app
    app.state.engine.dispose()


def test_pool_gauge_counts_connections_in_use_and_a_timeout_is_a_503_counted_once(one_connection_app):
    engine = one_connection_app.state.engine
    with TestClient(one_connection_app) as client:
        user_id = register(client)
        assert value(scrape(client), "db_pool_checked_out") == 0
        assert value(scrape(client), "db_pool_capacity") == 1
        held = engine.connect()  # the only connection, taken from outside the service
        try:
            assert value(scrape(client), "db_pool_checked_out") == 1
            for _ in range(2):
                response = client.get(f"/users/{user_id}")
                assert response.status_code == 503 and response.headers["retry-after"] == "1"
        finally:
            held.close()
        assert client.get(f"/users/{user_id}").status_code == 200
        samples = scrape(client)
    assert value(samples, "http_requests_total", method="GET", route="/users/{user_id}", status="503") == 2
    assert value(samples, "db_pool_timeouts_total") == 2
    assert value(samples, "db_pool_checked_out") == 0  # back to 0 at rest


@EVERY_DATABASE  # transactions and checkouts as each database's pool and driver make them
def test_sessions_and_transactions_are_measured_and_none_left_open_at_rest(client, strategy):
    user_id = register(client)  # one transaction
    for _ in range(3):
        client.get(f"/users/{user_id}")  # one transaction each
    client.get("/health")
    client.get("/health")
    samples = scrape(client)
    # The middlewares open a session for every request, the yield dependency only where a route asks.
    expected_sessions = 4 if strategy == YIELD_DEPENDENCY else 6
    assert value(samples, "db_session_duration_seconds_count") == expected_sessions
    assert value(samples, "db_sessions_open") == 0  # the scrape itself opens none
    assert value(samples, "db_transaction_duration_seconds_count") == 4
    assert value(samples, "db_pool_checkout_wait_seconds_count") == 4
    assert value(samples, "db_pool_checked_out") == 0
    assert value(samples, "db_sessions_used_after_close_total") == 0


def test_a_late_use_of_a_closed_session_is_counted_under_http_middleware(app, strategy):
    outcomes = []

    @app.get("/probe/late-use")
    def late_use(tasks: BackgroundTasks, db: Session = DbSession):
        def use_session_after_the_response() -> None:
            try:
                db.execute(select(User.id)).all()
                outcomes.append("used")
            except InvalidRequestError:  # ClosedSessionError on SQLAlchemy 1.4 is one
                outcomes.append("refused")

        tasks.add_task(use_session_after_the_response)
        return {"ok": True}

    with TestClient(app) as client:
        for _ in range(3):
            assert client.get("/probe/late-use").status_code == 200
        samples = scrape(client)
    refused = strategy == HTTP_MIDDLEWARE
    assert outcomes == ["refused" if refused else "used"] * 3
    assert value(samples, "db_sessions_used_after_close_total") == (3 if refused else 0)
    assert value(samples, "db_sessions_open") == 0
    assert value(samples, "db_pool_checked_out") == 0


CANARY_EMAIL = "pii-canary-7f3a@example.com"
CANARY_ID = 987654321


def test_no_personal_data_anywhere_in_metrics(client):
    user_id = register(client, CANARY_EMAIL)
    client.get(f"/users/{user_id}", headers={"X-Request-ID": "pii-request-id-5d1"})
    client.get("/users/", params={"email": CANARY_EMAIL})
    client.get(f"/users/{CANARY_ID}")
    client.get(f"/{CANARY_EMAIL}/{CANARY_ID}")
    post_json(client, f"/users/{CANARY_ID}/items/", {"title": CANARY_EMAIL})
    post_json(client, "/users/", {"email": "not an email " + CANARY_EMAIL, "password": "pw"})
    client.request("PROPFIND", f"/users/{CANARY_ID}")
    response = client.get("/metrics")
    text = response.text
    for secret in (CANARY_EMAIL, "pii-canary", str(CANARY_ID), "pii-request-id", "not an email"):
        assert secret not in text
    samples = parse(text)
    routes = {dict(labels)["route"] for name, labels in samples if "route" in dict(labels)}
    templates = {route.path for route in compat.leaf_routes(client.app.router)}
    assert routes <= templates | {UNMATCHED, "/metrics"}
    assert f"/users/{user_id}" not in routes
    methods = {dict(labels)["method"] for name, labels in samples if "method" in dict(labels)}
    assert methods <= METHODS | {OTHER_METHOD}
    assert value(samples, "http_requests_total", method=OTHER_METHOD, route="/users/{user_id}", status="405") == 1


def test_metrics_false_serves_no_endpoint_and_installs_no_hooks(tmp_path):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'off.db'}", metrics=False, **FAST_HASHING))
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/health").status_code == 200
    assert app.state.metrics is None
    session = app.state.session_factory()
    assert "MeasuredSession" not in {cls.__name__ for cls in type(session).__mro__}
    session.close()
    app.state.engine.dispose()


@pytest.mark.parametrize("counted_by", ["the pool at scrape time", "pool events (several workers)"])
@pytest.mark.postgres
def test_pool_gauge_stays_exact_when_the_database_goes_away(tmp_path, monkeypatch, counted_by):
    # A checkout whose pre-ping and reconnect fail fires the pool's "checkin" without "checkout".
    monkeypatch.setattr(metrics_module, "counts_by_events", lambda: counted_by.startswith("pool events"))
    url = database_url_for("postgresql", tmp_path)
    reset_database(url)
    server = make_url(url)
    proxy = TcpProxy(server.host or "127.0.0.1", server.port or 5432).start()
    through_proxy = server.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    app = create_app(Settings(database_url=through_proxy, **FAST_HASHING))
    try:
        with TestClient(app) as client:
            assert client.get("/users/1").status_code == 404  # leaves one connection in the pool
            proxy.cut()
            assert client.get("/users/1").status_code == 503
            assert client.get("/users/1").status_code == 503
            samples = scrape(client)
    finally:
        proxy.cut()
        app.state.engine.dispose()
    assert value(samples, "db_pool_checked_out") == 0
    assert value(samples, "http_requests_total", method="GET", route="/users/{user_id}", status="503") == 2


LATE_STATEMENTS = {
    "execute": lambda db: db.execute(select(User.id)),
    "get": lambda db: db.get(User, 1),
    "scalars": lambda db: db.scalars(select(User)).all(),
    "query": lambda db: db.query(User).all(),
    "connection": lambda db: db.connection(),
    "add then flush": lambda db: (db.add(User(email="late@example.com", hashed_password="x")), db.flush()),
}


@pytest.fixture
def closed_http_middleware_session(tmp_path):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'late.db'}", session_strategy=HTTP_MIDDLEWARE))
    db = app.state.session_factory()
    db.close()
    yield db, app.state.metrics
    app.state.engine.dispose()


@pytest.mark.parametrize("statement", LATE_STATEMENTS)
def test_each_statement_on_a_closed_http_middleware_session_is_refused_and_counted_once(
    closed_http_middleware_session, statement
):
    db, metrics = closed_http_middleware_session
    if statement == "add then flush" and compat.SQLALCHEMY_2:
        pytest.skip("SQLAlchemy 2.x refuses the add() itself, uncounted (next test)")
    with pytest.raises(InvalidRequestError):
        LATE_STATEMENTS[statement](db)
    assert value(parse(metrics.scrape().decode()), "db_sessions_used_after_close_total") == 1


@pytest.mark.parametrize("operation", ["add", "commit"])
def test_add_and_commit_on_a_closed_session_are_not_counted(closed_http_middleware_session, operation):
    # On SQLAlchemy 2.x they are refused inside SQLAlchemy before a bind is asked for; on 1.4 an
    # add() is not refused until its flush, and a commit with nothing to flush has nothing to refuse.
    db, metrics = closed_http_middleware_session
    use = {"add": lambda: db.add(User(email="late@example.com", hashed_password="x")), "commit": db.commit}[operation]
    if compat.SQLALCHEMY_2:
        with pytest.raises(InvalidRequestError):
            use()
    else:
        use()
    assert value(parse(metrics.scrape().decode()), "db_sessions_used_after_close_total") == 0


SESSION_DURATIONS = (0.0, 1e-9, 0.001, 0.0010001, 0.0025, 0.3, 10.0, 11.0)  # on bounds, between, beyond the last


def test_session_figures_kept_in_process_read_exactly_as_prometheus_clients_own_gauge_and_histogram():
    kept_registry, library_registry = CollectorRegistry(), CollectorRegistry()
    kept = KeptInProcess(kept_registry, REQUEST_BUCKETS)
    library = WrittenAsTheyChange(library_registry, REQUEST_BUCKETS)
    for figures in (kept, library):
        for seconds in SESSION_DURATIONS:
            figures.opened()
            figures.closed(seconds)
        figures.opened()  # one still open
    # The library's histogram adds a `_created` timestamp: the one sample the two may differ in.
    kept_samples = parse(generate_latest(kept_registry).decode())
    library_samples = {key: v for key, v in parse(generate_latest(library_registry).decode()).items()
                       if not key[0].endswith("_created")}
    assert kept_samples == library_samples
    assert value(kept_samples, "db_sessions_open") == 1
    assert value(kept_samples, "db_session_duration_seconds_count") == len(SESSION_DURATIONS)


def test_session_figures_kept_in_process_stay_exact_when_threads_open_and_close_at_once():
    registry = CollectorRegistry()
    kept = KeptInProcess(registry, REQUEST_BUCKETS)
    threads, sessions_each = 8, 5_000

    def open_and_close() -> None:
        for _ in range(sessions_each):
            kept.opened()
            kept.closed(0.0002)

    with ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(open_and_close) for _ in range(threads)]:
            done.result()
    samples = parse(generate_latest(registry).decode())
    assert value(samples, "db_sessions_open") == 0
    assert value(samples, "db_session_duration_seconds_count") == threads * sessions_each
    assert value(samples, "db_session_duration_seconds_bucket", le="0.001") == threads * sessions_each


def test_several_workers_keep_session_figures_in_prometheus_clients_own_objects(monkeypatch, tmp_path):
    monkeypatch.setenv(MULTIPROC_DIR_VARIABLE, str(tmp_path))
    assert isinstance(Metrics().sessions, WrittenAsTheyChange)
    monkeypatch.delenv(MULTIPROC_DIR_VARIABLE)
    assert isinstance(Metrics().sessions, KeptInProcess)
