"""The built site, read as a reader reads it: in a real headless Chromium.

The site is served over HTTP from 127.0.0.1; Chromium and its driver are Debian's
packages (``/usr/bin/chromium``, ``/usr/bin/chromedriver``, installed by ``.ci/run``),
driven by selenium. The tests check that the front page, the guides and an API page
render with their navigation, that every internal link of every page resolves (each
one requested over HTTP, its ``#anchor`` looked up in the target page, and a few
followed by clicks), and that the search page finds a public name and leads to its
entry. Without Chromium the tests skip; under ``OPEX_REQUIRE_PEERS=1`` (CI) they fail.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests import peers
from tests.docs.conftest import require_module

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)
# One worker runs this file's tests, with one browser (nox runs tests/docs with
# pytest-xdist, --dist loadgroup).
pytestmark = pytest.mark.xdist_group("browser")

WAIT = 60.0  # seconds for a page or a search to show what is waited for, on a loaded machine


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site_url(built_site: Path) -> Iterator[str]:
    """The built site served over HTTP from a free port of 127.0.0.1."""
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def require_chromium() -> None:
    """Skip, or fail under ``OPEX_REQUIRE_PEERS=1``, when Debian's Chromium is missing."""
    require_module("selenium")
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    if missing:
        message = (
            f"{' and '.join(missing)} not installed: apt-get install chromium chromium-driver "
            "(.ci/run does it)"
        )
        if peers.peers_required():
            pytest.fail(f"{message} [{peers.REQUIRE_ENV}=1 makes a missing peer an error]")
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium with a fresh profile, driven by selenium."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    # The driver is given, so selenium looks nothing up and downloads nothing.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, css: str) -> list[Any]:
    """The elements matching ``css``, once there is at least one (or a timeout error)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    found: list[Any] = WebDriverWait(driver, WAIT).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, css) or False
    )
    return found


def sidebar_links(driver: Any) -> dict[str, str]:
    """The text and target of every link in the navigation sidebar."""
    links = wait_for(driver, ".sidebar-tree a.reference")
    return {link.text.strip(): link.get_attribute("href") for link in links if link.text.strip()}


def current_in_sidebar(driver: Any) -> list[str]:
    """The sidebar entries marked as the page being read (or its ancestors)."""
    return [a.text.strip() for a in wait_for(driver, ".sidebar-tree li.current > a")]


def test_front_page_renders_with_its_navigation(browser: Any, site_url: str) -> None:
    browser.get(site_url)
    assert browser.title.startswith("opex_trio")
    heading = wait_for(browser, "article h1")[0].text
    assert heading.startswith("opex_trio")
    links = sidebar_links(browser)
    assert "Guides" in links
    assert "API reference" in links
    # A click along the navigation reaches the page it names.
    wait_for(browser, ".sidebar-tree a.reference")
    from selenium.webdriver.common.by import By

    browser.find_element(By.LINK_TEXT, "API reference").click()
    assert wait_for(browser, "article h1")[0].text.startswith("API reference")
    assert browser.current_url == urllib.parse.urljoin(site_url, "api/index.html")
    assert "API reference" in current_in_sidebar(browser)


def test_a_guide_renders_with_its_navigation(browser: Any, site_url: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(urllib.parse.urljoin(site_url, "guides/index.html"))
    assert wait_for(browser, "article h1")[0].text.startswith("Guides")
    assert "Guides" in current_in_sidebar(browser)
    listed = browser.find_elements(By.CSS_SELECTOR, "article .toctree-wrapper a.reference")
    if not listed:
        pytest.skip("the guides index lists no guide yet")
    title = listed[0].text.strip()
    listed[0].click()
    assert wait_for(browser, "article h1")[0].text.strip().startswith(title)
    assert browser.title.startswith(title)
    assert title in current_in_sidebar(browser)
    assert "API reference" in sidebar_links(browser)


def test_an_api_page_renders_with_its_navigation(browser: Any, site_url: str) -> None:
    browser.get(urllib.parse.urljoin(site_url, "api/mcp.html"))
    title = "MCP client and session manager"
    assert wait_for(browser, "article h1")[0].text.startswith(title)
    assert browser.title.startswith(title)
    assert title in current_in_sidebar(browser)
    entry = wait_for(browser, "dt#opex_trio\\.mcp\\.manager\\.SessionManager")[0]
    assert "SessionManager" in entry.text
    # The page's own table of contents lists its modules (textContent: at this width
    # furo may fold it away, and selenium's .text is only what is visible).
    toc = [a.get_attribute("textContent") or "" for a in wait_for(browser, ".toc-tree a")]
    assert any("opex_trio.mcp.manager" in text for text in toc)


def test_search_finds_a_public_name_and_leads_to_its_entry(browser: Any, site_url: str) -> None:
    browser.get(urllib.parse.urljoin(site_url, "search.html?q=SessionManager"))
    results = wait_for(browser, "#search-results ul.search li a")
    target = "api/mcp.html#opex_trio.mcp.manager.SessionManager"
    hrefs = [a.get_attribute("href") or "" for a in results]
    assert any(href.endswith(target) for href in hrefs), hrefs
    link = next(a for a in results if (a.get_attribute("href") or "").endswith(target))
    link.click()
    entry = wait_for(browser, "dt#opex_trio\\.mcp\\.manager\\.SessionManager")[0]
    assert browser.current_url.endswith(target)
    assert "SessionManager" in entry.text


class _Links(HTMLParser):
    """The ids a page defines and the links and resources it refers to."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in {"id", "name"}:
                self.ids.add(value)
            elif (name == "href" and tag in {"a", "link"}) or (
                name == "src" and tag in {"script", "img"}
            ):
                self.refs.append(value)


def internal(ref: str) -> bool:
    """Whether a link stays in the site (no scheme, not protocol-relative)."""
    parsed = urllib.parse.urlsplit(ref)
    return not parsed.scheme and not ref.startswith("//")


def broken_links(site: Path, base_url: str) -> list[str]:
    """Every internal link of the site that does not resolve, as ``page: link (why)``."""
    pages = sorted(site.rglob("*.html"))
    parsed: dict[str, _Links] = {}

    def page_of(url: str) -> _Links:
        if url not in parsed:
            with urllib.request.urlopen(url, timeout=WAIT) as response:
                body = response.read().decode("utf-8", errors="replace")
            links = _Links()
            links.feed(body)
            parsed[url] = links
        return parsed[url]

    broken: list[str] = []
    checked: set[str] = set()
    for page in pages:
        page_url = urllib.parse.urljoin(base_url, page.relative_to(site).as_posix())
        for ref in page_of(page_url).refs:
            if not internal(ref) or not ref.strip():
                continue
            url = urllib.parse.urljoin(page_url, ref)
            target, _, fragment = url.partition("#")
            where = f"{page.relative_to(site)}: {ref}"
            if target not in checked:
                try:
                    with urllib.request.urlopen(target, timeout=WAIT) as response:
                        response.read()
                except urllib.error.HTTPError as exc:
                    broken.append(f"{where} (HTTP {exc.code})")
                    continue
                checked.add(target)
            if fragment and target.endswith(".html"):
                fragment = urllib.parse.unquote(fragment)
                if fragment not in page_of(target).ids:
                    broken.append(f"{where} (no element with id {fragment!r})")
    return broken


def test_every_internal_link_resolves(built_site: Path, site_url: str) -> None:
    assert broken_links(built_site, site_url) == []


def test_the_link_check_finds_a_broken_link(built_site: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(built_site, site)
    page = site / "index.html"
    html = page.read_text(encoding="utf-8")
    assert 'href="api/index.html"' in html
    broken_page = html.replace('href="api/index.html"', 'href="api/missing.html"', 1)
    broken_page = broken_page.replace("</body>", '<a href="guides/index.html#nowhere">x</a></body>')
    page.write_text(broken_page, encoding="utf-8")
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        broken = broken_links(site, f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert "index.html: api/missing.html (HTTP 404)" in broken
    assert "index.html: guides/index.html#nowhere (no element with id 'nowhere')" in broken
