"""/docs and /redoc work with no internet: their assets come from the service, and a browser shows them."""
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import List, Set

import pytest
import requests

from fastapi.testclient import TestClient

from legacy_app.config import Settings
from legacy_app.http.protection import HEADERS
from legacy_app.main import create_app

CHROMIUM = shutil.which("chromium")
DOCS_HOST = "docs.internal"  # a name, not localhost: Swagger UI treats localhost specially


class AssetLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: List[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.links += [value for name, value in attrs if name in ("src", "href", "spec-url") and value]


def asset_links(html: str) -> List[str]:
    parser = AssetLinks()
    parser.feed(html)
    return parser.links


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(Settings(database_url=f"sqlite:///{tmp_path / 'docs.db'}"))) as test_client:
        yield test_client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_assets_from_the_service_only(client, page):
    response = client.get(page)
    assert response.status_code == 200
    links = asset_links(response.text)
    assert links, "the page names its scripts"
    assert all(link.startswith("/") and not link.startswith("//") for link in links), links
    for link in links:
        assert client.get(link).status_code == 200, link


def test_content_security_policy_lets_pages_load_only_from_the_service(client):
    policy = client.get("/docs").headers["content-security-policy"]
    assert policy == dict(HEADERS)[b"content-security-policy"].decode()
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy


def render(url: str, scratch: Path) -> tuple:
    """Chromium's DOM after scripts ran, and the URLs the page itself requested (from its net log)."""
    net_log = scratch / "net-log.json"
    completed = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={scratch / 'profile'}",
            # Offline: the docs host is this machine, every other name fails to resolve.
            f"--host-resolver-rules=MAP {DOCS_HOST} 127.0.0.1, MAP * ~NOTFOUND",
            f"--log-net-log={net_log}", "--virtual-time-budget=20000", "--dump-dom", url,
        ],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout, page_requests(json.loads(net_log.read_text()), origin=re.match(r"https?://[^/]+", url).group())


def page_requests(net_log: dict, origin: str) -> List[str]:
    """URLs the page loaded or its scripts requested; Chromium's own background traffic is left out."""
    event_types = {number: name for name, number in net_log["constants"]["logEventTypes"].items()}
    urls = []
    for event in net_log["events"]:
        params = event.get("params", {})
        if event_types.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        if params.get("request_type") == "main frame" or params.get("initiator") == origin:
            urls.append(params["url"])
    return urls


@pytest.fixture
def docs_server(live_server_factory, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt install chromium; .ci/run installs it)")
    return live_server_factory(DATABASE_URL=f"sqlite:///{tmp_path / 'docs.db'}")


def schema(server) -> dict:
    return requests.get(f"{server.url}/openapi.json", timeout=10).json()


def assert_only_same_origin(urls: List[str], origin: str, expected_assets: Set[str]) -> None:
    assert all(url.startswith(origin + "/") for url in urls), [u for u in urls if not u.startswith(origin + "/")]
    assert expected_assets <= {url[len(origin):] for url in urls}, urls  # the log did record the page


@pytest.mark.browser
def test_swagger_ui_renders_every_operation_offline(docs_server, tmp_path):
    origin = f"http://{DOCS_HOST}:{docs_server.port}"
    dom, urls = render(f"{origin}/docs", tmp_path)
    rendered = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert rendered == set(schema(docs_server)["paths"])
    assert_only_same_origin(urls, origin, {"/docs", "/openapi.json", "/static-offline-docs/swagger-ui-bundle.js"})


@pytest.mark.browser
def test_redoc_renders_every_operation_offline(docs_server, tmp_path):
    origin = f"http://{DOCS_HOST}:{docs_server.port}"
    dom, urls = render(f"{origin}/redoc", tmp_path)
    operation_ids = {
        operation["operationId"] for path in schema(docs_server)["paths"].values() for operation in path.values()
    }
    assert set(re.findall(r'id="operation/([^"]+)"', dom)) == operation_ids
    assert_only_same_origin(urls, origin, {"/redoc", "/openapi.json", "/static-offline-docs/redoc.standalone.js"})
