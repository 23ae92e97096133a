"""Signing in and out: the session cookie, the one-click link, who may do what."""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import httpx
from playwright.sync_api import Page, Request, expect

from herald.api.auth import mint_token
from herald.states import TaskStatus
from tests.console.conftest import Console, shot, sign_in


def test_sign_in_see_the_overview_and_sign_out(page: Page, console: Console) -> None:
    console.create(key="u1", status=TaskStatus.UNCERTAIN, chat_id=501)
    console.create(key="d1", status=TaskStatus.DELIVERED)
    console.create(key="f1", status=TaskStatus.FAILED)
    console.create(key="p1")

    page.goto("/console/tasks?status=failed")
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "sign-in")

    page.get_by_label("Token").fill(console.token("alice"))
    page.get_by_role("button", name="Sign in").click()
    # Back where the operator was going, signed in.
    expect(page).to_have_url(f"{console.url}/console/tasks?status=failed")
    expect(page.locator("header .who")).to_contain_text("alice")

    (cookie,) = [c for c in page.context.cookies() if c["name"] == "herald_console"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console"
    assert cookie["expires"] > 0  # it ends with the token (an hour here), not "session"
    assert console.token("alice") not in cookie["value"]

    page.get_by_role("link", name="Overview").click()
    uncertain = page.get_by_role("region", name=re.compile("uncertain task"))
    expect(uncertain).to_contain_text("1 uncertain task waits for a decision")
    expect(uncertain).to_contain_text("501")
    counts = page.get_by_role("region", name="Tasks by status")
    # The counts come from the gateway's background reading: wait for it to see them.
    expect(counts.locator("dd").nth(0)).to_have_text("1", timeout=5000)
    expect(page.get_by_role("img", name=re.compile("Deliveries and failures"))).to_be_visible()
    expect(page.get_by_role("region", name="Top failure reasons, last hour")).to_contain_text(
        "chat not found"
    )
    shot(page, "overview")

    # Signing out ends the session on the server too: the old cookie opens nothing.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.context.add_cookies([{**cookie}])  # type: ignore[list-item]
    page.goto("/console")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))


def test_the_overview_refreshes_itself(page: Page, console: Console) -> None:
    sign_in(page, console)
    region = page.get_by_role("region", name="Backlog and workers")
    expect(page.get_by_role("region", name=re.compile("uncertain task"))).to_have_count(0)
    console.create(key="u-late", status=TaskStatus.UNCERTAIN)
    # No reload: the page's script swaps in the new part within a refresh or two.
    expect(page.get_by_role("region", name=re.compile("uncertain task"))).to_contain_text(
        "1 uncertain task", timeout=15_000
    )
    expect(region).to_be_visible()
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1


def test_one_click_link_signs_in_without_the_token_in_any_url(page: Page, console: Console) -> None:
    token = console.token("alice")
    seen: list[Request] = []
    page.on("request", lambda request: seen.append(request))
    page.goto(f"/console/sign-in#token={quote(token)}")
    expect(page).to_have_url(f"{console.url}/console")
    expect(page.locator("header .who")).to_contain_text("alice")
    # The token went in one POST body, never in a URL (access logs, history) or a header.
    in_urls_or_headers = [r.url for r in seen if token in r.url + str(r.headers)]
    in_bodies = [(r.method, r.url) for r in seen if token in (r.post_data or "")]
    assert in_urls_or_headers == []
    assert in_bodies == [("POST", f"{console.url}/console/sign-in")]
    assert token not in page.evaluate("location.href + document.referrer")


def test_a_refused_token_says_why(page: Page, console: Console) -> None:
    page.goto("/console/sign-in")
    page.get_by_label("Token").fill(console.token("bob", "tasks:write"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("neither tasks:read nor tasks:manage")
    page.get_by_label("Token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("This token was refused")
    assert not [c for c in page.context.cookies() if c["name"] == "herald_console"]


def test_behind_tls_the_cookies_are_secure(console: Console) -> None:
    """nginx terminates TLS and says so in X-Forwarded-Proto (deploy/nginx/herald.conf)."""
    https = {"X-Forwarded-Proto": "https"}
    with httpx.Client(base_url=console.url) as http:
        _sign_in_over_tls(http, console, https)


def _sign_in_over_tls(http: httpx.Client, console: Console, https: dict[str, str]) -> None:
    form = http.get("/console/sign-in", headers=https)
    assert "; secure" in form.headers["set-cookie"].lower()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    # A Secure cookie goes back over HTTPS only: here, by hand.
    signed_in = http.post(
        "/console/sign-in",
        data={"csrf": csrf.group(1), "token": console.token("alice"), "next": "/console"},
        headers={**https, "Cookie": f"herald_console_signin={csrf.group(1)}"},
    )
    assert signed_in.status_code == 303
    session = next(c for c in signed_in.headers.get_list("set-cookie") if "herald_console=" in c)
    assert "; secure" in session.lower()
    assert "httponly" in session.lower()
    assert "samesite=strict" in session.lower()
    plain = http.get("/console/sign-in")
    assert "secure" not in plain.headers["set-cookie"].lower()


def test_the_session_ends_when_the_token_does(page: Page, console: Console) -> None:
    minted = time.time()
    short = mint_token(console.settings, "alice", ["tasks:read"], ttl=5)
    page.goto("/console/sign-in")
    page.get_by_label("Token").fill(short)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("header .who")).to_contain_text("alice")
    time.sleep(max(0.0, minted + 6 - time.time()))  # the token's exp is whole seconds
    page.goto("/console/tasks")
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
