"""GET /dashboard in headless chromium: it loads clean, follows jobs, GPUs and the DLQ live."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import ADMIN_TOKEN, PageRecord, Stack, StartStack, wait_for

CHAT = {"model": "any", "messages": [{"role": "user", "content": "hello"}]}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def submit(base_url: str, *, max_tokens: int) -> str:
    """Enqueue a chat job; its id."""
    response = httpx.post(f"{base_url}/enqueue", json={**CHAT, "max_tokens": max_tokens})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def job_status(base_url: str, job_id: str) -> str:
    """A job's status, as an admin sees it."""
    status: str = httpx.get(f"{base_url}/status/{job_id}", headers=ADMIN).json()["status"]
    return status


def test_dashboard_with_running_stack_loads_without_console_error(
    start_stack: StartStack, page: tuple[Page, PageRecord]
) -> None:
    stack = start_stack({"a": {"speed": 100.0}, "b": {"speed": 100.0}})
    tab, record = page
    tab.goto(f"{stack.service.url}/dashboard")
    expect(tab.locator("#connection")).to_have_text("live")
    expect(tab.locator("#gpu-cards article.gpu")).to_have_count(2)
    expect(tab.locator("#gpu-a")).to_have_attribute("data-condition", "ok")
    expect(tab.locator("#consumer-rows tr[data-replica]")).to_have_count(1)
    expect(tab.locator("#legend [data-series=normal]")).to_contain_text("normal: 0")
    tab.wait_for_timeout(2000)  # a few more polls: redraws must stay clean too
    assert record.errors == []
    assert record.outside_requests == []


def test_dashboard_with_submitted_job_shows_it_running_then_completed(
    start_stack: StartStack, page: tuple[Page, PageRecord]
) -> None:
    stack = start_stack({"a": {"speed": 1.0}})
    tab, record = page
    tab.goto(f"{stack.service.url}/dashboard")
    expect(tab.locator("#count-completed")).to_have_text("0")
    job_id = submit(stack.service.url, max_tokens=160)  # about 4 s on a speed-1 sim
    expect(tab.locator("#count-processing")).to_have_text("1")
    expect(tab.locator("#gpu-a dd").first).to_have_text("1 / 2")
    expect(tab.locator("#count-completed")).to_have_text("1")
    expect(tab.locator("#count-processing")).to_have_text("0")
    assert job_status(stack.service.url, job_id) == "completed"
    assert record.errors == []


def test_dashboard_with_gpu_refusing_turns_its_card_red_and_back(
    start_stack: StartStack, page: tuple[Page, PageRecord]
) -> None:
    stack = start_stack({"a": {"speed": 100.0}, "b": {"speed": 100.0}})
    tab, record = page
    tab.goto(f"{stack.service.url}/dashboard")
    card = tab.locator("#gpu-b")
    expect(card).to_have_attribute("data-condition", "ok")
    stack.sims["b"].set_faults("refuse")
    expect(card).to_have_attribute("data-condition", "bad")
    expect(card).to_have_css("border-top-color", "rgb(214, 40, 40)")
    expect(card.locator(".state")).to_have_text("down")
    expect(tab.locator("#gpu-a")).to_have_attribute("data-condition", "ok")
    stack.sims["b"].set_faults("none")
    expect(card).to_have_attribute("data-condition", "ok")
    assert record.errors == []


def test_dashboard_dlq_retry_button_requeues_dead_job(
    start_stack: StartStack, page: tuple[Page, PageRecord]
) -> None:
    stack = start_stack({"a": {"speed": 100.0}}, max_retries=0)
    url = stack.service.url
    dead_id = make_dead_jobs(stack, count=1)[0]
    tab, record = page
    tab.goto(f"{url}/dashboard")
    row = tab.locator("#dlq-rows tr[data-entry]")
    expect(row).to_have_count(1)
    expect(tab.locator("#count-dead")).to_have_text("1")
    row.get_by_role("button", name="Retry").click()
    give_token(tab)
    expect(tab.locator("#dlq-message")).to_contain_text("requeued as job")
    new_id = tab.locator("#dlq-message").inner_text().rsplit(" ", 1)[-1]
    expect(row).to_have_count(0)
    expect(tab.locator("#count-dead")).to_have_text("0")
    wait_for(lambda: job_status(url, new_id) == "completed", timeout_s=20, what="the rerun")
    assert httpx.get(f"{url}/status/{new_id}", headers=ADMIN).json()["retry_of"] == dead_id
    assert record.errors == []


def test_dashboard_dlq_discard_after_retry_asks_token_once(
    start_stack: StartStack, page: tuple[Page, PageRecord]
) -> None:
    stack = start_stack({"a": {"speed": 100.0}}, max_retries=0)
    make_dead_jobs(stack, count=2)
    tab, record = page
    tab.goto(f"{stack.service.url}/dashboard")
    rows = tab.locator("#dlq-rows tr[data-entry]")
    expect(rows).to_have_count(2)
    rows.first.get_by_role("button", name="Retry").click()
    give_token(tab)
    expect(rows).to_have_count(1)
    rows.first.get_by_role("button", name="Discard").click()
    expect(tab.locator("#dlq-message")).to_contain_text("discarded")
    expect(tab.locator("#token-dialog")).not_to_be_visible()
    expect(rows).to_have_count(0)
    assert httpx.get(f"{stack.service.url}/dlq").json()["total"] == 0
    assert record.errors == []


def test_dashboard_with_depth_by_route_draws_a_line_per_route(
    start_stack: StartStack, page: tuple[Page, PageRecord]
) -> None:
    stack = start_stack({"a": {"speed": 100.0}})
    tab, record = page

    def with_routes(route: Route) -> None:
        overview = route.fetch().json()
        overview["depth"]["by_route"] = {"default": {"high": 1, "normal": 2, "low": 0, "total": 3},
                                         "vision": 4}  # fmt: skip
        route.fulfill(json=overview)

    tab.route("**/status", with_routes)
    tab.goto(f"{stack.service.url}/dashboard")
    expect(tab.locator("#legend [data-series='route default']")).to_contain_text("3")
    expect(tab.locator("#legend [data-series='route vision']")).to_contain_text("4")
    assert record.errors == []


def make_dead_jobs(stack: Stack, *, count: int) -> list[str]:
    """Jobs that die at once: the sim answers 500 and no retry is left; their ids."""
    sim, url = stack.sims["a"], stack.service.url
    sim.set_faults("error")
    job_ids = [submit(url, max_tokens=8) for _ in range(count)]
    wait_for(
        lambda: all(job_status(url, job_id) == "dead" for job_id in job_ids),
        timeout_s=20, what="dead jobs",
    )  # fmt: skip
    sim.set_faults("none")
    return job_ids


def give_token(tab: Page) -> None:
    """Answer the page's admin-token dialog."""
    tab.locator("#admin-token").fill(ADMIN_TOKEN)
    tab.locator("#token-ok").click()
