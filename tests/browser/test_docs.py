"""/docs (Swagger UI) and /redoc in headless chromium with no internet: every route, Try it out."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PageRecord, Stack, StartStack

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def stack(start_stack: StartStack) -> Stack:
    """One replica over one fast sim."""
    return start_stack({"a": {"speed": 100.0}})


def operations(base_url: str) -> set[tuple[str, str]]:
    """(method, path) of every operation in the service's OpenAPI schema."""
    schema = httpx.get(f"{base_url}/openapi.json").json()
    return {
        (method, path)
        for path, item in schema["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def rendered_operations(tab: Page) -> set[tuple[str, str]]:
    """(method, path) of every operation block Swagger UI drew."""
    found: list[list[str]] = tab.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(b => [
            b.querySelector('.opblock-summary-method').textContent.toLowerCase(),
            b.querySelector('.opblock-summary-path').getAttribute('data-path')])""",
    )
    return {(method, path) for method, path in found}


def test_docs_without_internet_renders_every_route(
    stack: Stack, page: tuple[Page, PageRecord]
) -> None:
    tab, record = page
    expected = operations(stack.service.url)
    tab.goto(f"{stack.service.url}/docs")
    expect(tab.locator(".opblock")).to_have_count(len(expected))
    assert rendered_operations(tab) == expected
    assert ("get", "/dashboard") in expected
    assert record.outside_requests == []
    assert record.errors == []


def test_docs_try_it_out_on_enqueue_gets_202_with_job_id(
    stack: Stack, page: tuple[Page, PageRecord]
) -> None:
    tab, record = page
    tab.goto(f"{stack.service.url}/docs")
    block = tab.locator(".opblock-post").filter(
        has=tab.locator('.opblock-summary-path[data-path="/enqueue"]')
    )
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    block.get_by_role("button", name="Execute").click()
    live = block.locator(".live-responses-table .response")
    expect(live.locator(".response-col_status")).to_have_text("202")
    expect(live.locator(".response-col_description")).to_contain_text('"job_id"')
    assert record.outside_requests == []
    assert record.errors == []


def test_redoc_without_internet_renders_the_api(
    stack: Stack, page: tuple[Page, PageRecord]
) -> None:
    tab, record = page
    tab.goto(f"{stack.service.url}/redoc")
    expect(tab.locator(".api-content h1").first).to_contain_text("smartqueue")
    expect(tab.locator("h2", has_text="Submit a job")).to_be_visible()
    expect(tab.locator("[data-section-id^='operation/']")).not_to_have_count(0)
    assert record.outside_requests == []
    assert record.errors == []
