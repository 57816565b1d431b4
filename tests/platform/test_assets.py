"""Page weight: hashed, long-cached, gzipped static files (scripts without comment lines); only the reporter's empty forms compressed; a favicon."""

from __future__ import annotations

import posixpath
import re

from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from service.domain import channels, installation
from service.platform import assets
from service.platform.settings import Settings
from tests.factories import make_world

ASSET_URL = re.compile(r'(?:src|href)="(/static/[^"]+)"')


def _asset_urls(html: str) -> list[str]:
    return ASSET_URL.findall(html)


def test_pages_name_assets_by_content_hash(client: TestClient) -> None:
    page = client.get("/").text
    urls = _asset_urls(page)
    version = assets.current().version
    assert urls, "the intake page links its stylesheet and script"
    assert all(url.startswith(f"/static/{version}/") for url in urls), urls
    assert f"/static/{version}/favicon.svg" in urls
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == "max-age=31536000, immutable"
        assert response.headers["x-content-type-options"] == "nosniff"
        # The policy binds documents and workers: anything a browser could open as a document
        # (the SVG) keeps it; an imported module or a stylesheet, which ignores it, goes without.
        if url.endswith((".js", ".css")):
            assert "content-security-policy" not in response.headers, url
        else:
            assert "script-src 'self'" in response.headers["content-security-policy"], url


def test_version_changes_with_any_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "a.js").write_text("export const a = 1;\n")
    first = assets.build(tmp_path)
    (tmp_path / "js" / "a.js").write_text("export const a = 2;\n")
    second = assets.build(tmp_path)
    assert first.version != second.version
    assert second.url("js/a.js") == f"/static/{second.version}/js/a.js"


def test_static_gzipped_when_accepted(client: TestClient) -> None:
    url = assets.url("js/intake.js")
    raw = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    packed = client.get(url, headers={"Accept-Encoding": "gzip, br"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["vary"] == "Accept-Encoding"
    assert packed.content == raw.content  # httpx decodes: same bytes
    assert int(packed.headers["content-length"]) < len(raw.content) / 2
    refused = client.get(url, headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


def test_revalidation_answers_304(client: TestClient) -> None:
    url = "/static/css/app.css"
    first = client.get(url)
    again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


def test_pages_with_secrets_never_compressed(client: TestClient) -> None:
    # BREACH needs a compressed response holding a secret next to reflected text: the console
    # (CSRF token, key handle), error pages (reflect the path) and every POST answer are sent
    # uncompressed whatever the browser accepts.
    for path in ("/console/login", "/no-such-page", "/followup?x=1", "/language"):
        response = client.get(path, headers={"Accept-Encoding": "gzip, deflate, br"},
                              follow_redirects=False)
        assert "content-encoding" not in response.headers, path
    response = client.post("/followup", data={"receipt": "1" * 20},
                           headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers


def test_compressed_pages_hold_no_reused_secret(client: TestClient, session: Session,
                                                settings: Settings) -> None:
    # Only the reporter's empty forms are compressed. Two fetches must be the same page except
    # for the intake form's one-time token, which must differ: a secret kept across responses
    # (what BREACH guesses at) would show as another difference or as a repeated token.
    installation.initialise(session, settings)
    channels.add_channel(session, slug="acme", kind="enterprise", name_zh="某机械厂内部举报")
    session.commit()
    token = re.compile(rb'name="form_token" value="([^"]*)"')
    for path in assets.COMPRESSIBLE_PAGES:
        first = client.get(path, headers={"Accept-Encoding": "gzip"})
        second = client.get(path, headers={"Accept-Encoding": "gzip"})
        assert first.status_code == 200, path
        assert first.headers["content-encoding"] == "gzip", path
        assert first.headers["cache-control"] == "no-store"
        assert "set-cookie" not in first.headers
        tokens = [token.findall(page.content) for page in (first, second)]
        assert len(tokens[0]) == len(tokens[1]) <= 1, path
        if tokens[0]:
            assert tokens[0] != tokens[1], f"{path} repeats its form token"
        assert (token.sub(b"", first.content) == token.sub(b"", second.content)), \
            f"{path} changes per response beyond its form token: a secret?"
    assert token.search(client.get("/").content), "the intake page carries its form token"


def test_reflecting_variants_of_compressed_pages_are_not_compressed(client: TestClient) -> None:
    for path in assets.COMPRESSIBLE_PAGES:
        response = client.get(path + "?q=guess", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in response.headers, path


def test_intake_page_is_compressed(client: TestClient) -> None:
    response = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"


def test_scripts_are_served_without_their_comment_lines(client: TestClient) -> None:
    source = (assets.STATIC_DIR / "js/intake.js").read_bytes()
    served = client.get(assets.url("js/intake.js")).content
    assert b"\n//" in b"\n" + source and len(served) < len(source)
    assert served == b"".join(line for line in source.splitlines(keepends=True)
                              if not line.lstrip().startswith(b"//"))
    css = (assets.STATIC_DIR / "css/app.css").read_bytes()
    assert client.get(assets.url("css/app.css")).content == css


def test_no_script_continues_a_string_across_lines() -> None:
    # compact() drops every line that starts with //; that is only safe while no template
    # literal or string runs over a line end (such a line could then be text, not a comment).
    for path in sorted(assets.STATIC_DIR.rglob("*.js")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.lstrip()
            if code.startswith("//"):
                continue
            where = f"{path.relative_to(assets.STATIC_DIR)}:{number}"
            assert code.count("`") % 2 == 0, f"{where}: a template literal over lines?"
            assert not line.endswith("\\"), f"{where}: a string continued over lines?"


def test_favicon(client: TestClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")


def test_unknown_asset_is_404(client: TestClient) -> None:
    assert client.get(f"/static/{assets.current().version}/js/nope.js").status_code == 404
    assert client.get("/static/../service/app.py").status_code == 404
    assert client.get("/static/%2e%2e/settings.py").status_code == 404


# A static import or re-export (`import … from "./x.js"`, `import "./x.js"`, `export … from
# "./x.js"`); `import("./x.js")`, loaded only when needed, is not one.
STATIC_IMPORT = re.compile(r'^\s*(?:import|export)\s(?:[^;]*?\sfrom\s)?\s*"(\.\.?/[^"]+)"', re.M)
# What bench/weight.py holds the first visit to: bytes a phone receives, headers included.
FIRST_VISIT_BUDGET = 45_000


def _received(response) -> int:  # type: ignore[no-untyped-def]
    # As sent (gzipped where it is), not as decoded: the body's Content-Length and the headers.
    assert response.status_code == 200, response.url
    headers = sum(len(name) + len(value) + 4 for name, value in response.headers.items())
    return int(response.headers["content-length"]) + headers + len("HTTP/1.1 200 OK\r\n\r\n")


def _first_visit(client: TestClient, path: str, calls: tuple[str, ...]) -> tuple[int, list[str]]:
    gz = {"Accept-Encoding": "gzip", "Accept-Language": "zh-CN,zh;q=0.9"}
    page = client.get(path, headers=gz)
    total, fetched = _received(page), [path]
    version = assets.current().version
    queue = _asset_urls(page.text) + [assets.url("favicon.svg")]
    seen: set[str] = set()
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        response = client.get(url, headers=gz)
        total += _received(response)
        fetched.append(url)
        if url.endswith(".js"):
            name = url.removeprefix(f"/static/{version}/")
            for target in STATIC_IMPORT.findall(response.text):
                joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
                queue.append(assets.url(joined))
    for call in calls:
        total += _received(client.get(call, headers={**gz, "Accept": "application/json"}))
        fetched.append(call)
    return total, fetched


def test_the_reporter_pages_stay_within_their_first_visit_budget(
        client: TestClient, session: Session, settings: Settings) -> None:
    """The weight goal of bench/weight.py, kept by every change: the report page and the
    follow-up page, with the scripts they import at once and the calls they make on
    opening, under 45 KB as sent. The upload worker's code once pushed both past it
    unnoticed; code needed later (a reward claim, a worker) is fetched when needed."""
    make_world(session, settings, reviewers=1)
    report, fetched = _first_visit(client, "/", ("/api/v1/channels", "/api/v1/pow"))
    assert any(url.endswith("/js/intake.js") for url in fetched)
    assert not any(url.endswith("worker.js") for url in fetched), fetched
    assert report <= FIRST_VISIT_BUDGET, (report, fetched)
    followup, fetched = _first_visit(client, "/followup", ("/api/v1/pow",))
    assert any(url.endswith("/js/followup.js") for url in fetched)
    assert not any(url.endswith("claim.js") for url in fetched), fetched
    assert followup <= FIRST_VISIT_BUDGET, (followup, fetched)
