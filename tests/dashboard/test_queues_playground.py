"""Queues, the playground and sign-in in a real browser against a real fleet.

- pausing a queue from its page holds its tasks (real workers take none of them) and
  resuming drains them;
- the playground runs a pixelate pipeline on the fleet and shows the result image, and a
  bad parameter is explained next to its field in the API's words;
- without a token, actions are refused (and nothing changes); with it, they work.
"""
from __future__ import annotations

import time

import pytest
import requests

from tests.dashboard.conftest import PHONE, accessibility_basics, sign_in
from tests.fleet_helpers import job_status, png_bytes, submit, wait_for_status, wait_until, worker_record

pytestmark = pytest.mark.timeout(180)
QUEUE = "pixelfleet:io"
BLUR = [{"filter": "blur", "params": {"radius": 1.0}}]


def wait_workers_see_pause(conn) -> None:
    """Every worker re-reads the paused set within a second: wait until both say they did."""
    wait_until(lambda: all(QUEUE in (worker_record(conn, name) or {}).get("paused_queues", [])
                           for name in ("dash-io", "dash-all")), 15, what="workers to report the paused queue")


def test_pause_from_the_queues_page_holds_tasks_and_resume_drains_them(dash_fleet, fleet_redis, page, shoot):
    sign_in(page, dash_fleet, "/dashboard/queues/")
    row = page.locator(f'#queues tr[data-queue="{QUEUE}"]')
    row.get_by_role("button", name=f"Pause {QUEUE}").click()
    page.get_by_text(f"Paused {QUEUE}.").wait_for()
    row.get_by_role("button", name=f"Resume {QUEUE}").wait_for()
    assert "paused" in row.locator("td.state").inner_text()
    # The io-only worker has nothing left to take and says so; the other names the queue.
    wait_workers_see_pause(fleet_redis)
    wait_until(lambda: (worker_record(fleet_redis, "dash-io") or {}).get("state") == "paused", 15,
               what="dash-io to report paused")

    held = [submit(fleet_redis, BLUR) for _ in range(4)]
    wait_until(lambda: row.locator("td.depth").inner_text() == "4", 15, what="the page to show 4 queued")
    time.sleep(2.5)                                   # more than two pause checks of every worker
    assert {job_status(fleet_redis, t) for t in held} == {"queued"}
    page.goto(f"{dash_fleet.url}/dashboard/")        # the overview says it too
    page.locator('#workers tr[data-worker="dash-io"]').get_by_text("paused").first.wait_for()
    page.goto(f"{dash_fleet.url}/dashboard/queues/")
    row = page.locator(f'#queues tr[data-queue="{QUEUE}"]')
    row.locator("td.depth").get_by_text("4").wait_for()
    accessibility_basics(page)
    assert row.locator("td.oldest").inner_text() != "–"
    shoot(page, "queues")

    row.get_by_role("button", name=f"Resume {QUEUE}").click()
    for task_id in held:
        assert wait_for_status(fleet_redis, task_id, timeout=60) == "finished"
    row.locator("td.depth").get_by_text("0").wait_for()
    assert "running" in row.locator("td.state").inner_text()


def test_cancel_one_then_empty_asks_first_and_cancels(dash_fleet, fleet_redis, page):
    sign_in(page, dash_fleet, "/dashboard/queues/")
    row = page.locator(f'#queues tr[data-queue="{QUEUE}"]')
    row.get_by_role("button", name=f"Pause {QUEUE}").click()
    row.get_by_role("button", name=f"Resume {QUEUE}").wait_for()
    wait_workers_see_pause(fleet_redis)
    one = submit(fleet_redis, BLUR)
    ids = [submit(fleet_redis, BLUR) for _ in range(3)]
    try:
        page.goto(f"{dash_fleet.url}/dashboard/tasks/{one}/")           # a queued task's page: Cancel
        page.locator('[data-fact="waiting_reason"]').get_by_text(f"queue {QUEUE} is paused").wait_for()
        page.get_by_role("button", name="Cancel").click()
        page.get_by_text("Canceled.").wait_for()
        assert job_status(fleet_redis, one) == "canceled"
        page.get_by_role("button", name="Retry").wait_for()               # canceled: retryable
        page.goto(f"{dash_fleet.url}/dashboard/queues/")
        row.locator("td.depth").get_by_text("3").wait_for()
        row.get_by_role("button", name=f"Empty {QUEUE}").click()
        page.get_by_role("button", name="Keep the tasks").click()          # said no: nothing happens
        assert fleet_redis.llen(f"rq:queue:{QUEUE}") == 3
        row.get_by_role("button", name=f"Empty {QUEUE}").click()
        page.get_by_role("button", name="Empty the queue").click()
        page.get_by_text(f"Emptied {QUEUE}: 3 task(s) canceled").wait_for()
        assert {job_status(fleet_redis, t) for t in ids} == {"canceled"}
    finally:
        row.get_by_role("button", name=f"Resume {QUEUE}").click()
        row.get_by_role("button", name=f"Pause {QUEUE}").wait_for()


def test_playground_runs_pixelate_and_explains_a_bad_parameter(dash_fleet, page, shoot):
    sign_in(page, dash_fleet, "/dashboard/playground/")
    step = page.locator('fieldset.step[data-filter="pixelate"]')
    block = step.get_by_label("block_size")
    assert block.input_value() == "8"                                     # the registry's default
    accessibility_basics(page)
    assert step.get_by_label("palette", exact=True).locator("option").all_inner_texts()[:2] == ["adaptive", "none"]

    block.fill("0")                                                       # out of range: the API explains
    page.get_by_role("button", name="Run on the fleet").click()
    error = step.locator('[data-param="block_size"] .field-error')
    error.get_by_text("pixelate.block_size must be between 1 and 256, got 0").wait_for()
    assert block.get_attribute("aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == block.get_attribute("id")

    block.fill("12")
    step.get_by_label("palette", exact=True).select_option("pico-8")
    step.get_by_label("dither").select_option("bayer")
    page.get_by_label("Sample image").select_option("small")
    page.get_by_role("button", name="Run on the fleet").click()
    assert error.inner_text() == ""
    page.locator("#run-state.ok").wait_for(timeout=90_000)
    page.wait_for_function("document.getElementById('after').naturalWidth > 0 && document.getElementById('before').naturalWidth > 0",
                           timeout=90_000)   # thumbnails are made on demand: slow under the full suite's load
    assert page.locator("#run-timings tbody tr").first.inner_text().split()[1] == "pixelate"
    assert "Finished" in page.locator("#run-state").inner_text()
    shoot(page, "playground")


def test_playground_upload_on_a_phone(dash_fleet, browser, tmp_path, shoot):
    image = tmp_path / "upload.png"
    image.write_bytes(png_bytes(160, 100, smooth=True))
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        sign_in(page, dash_fleet, "/dashboard/playground/")
        page.get_by_label("Image file").set_input_files(str(image))
        page.get_by_role("button", name="Remove step 1 (pixelate)").click()
        page.get_by_role("button", name="Run on the fleet").click()        # no step: the API says so
        page.locator("#steps-error").get_by_text("at least one step").wait_for()
        page.get_by_label("Add a step").select_option("grayscale")
        page.get_by_role("button", name="Add step").click()
        page.get_by_role("button", name="Run on the fleet").click()
        page.locator("#run-state.ok").wait_for(timeout=90_000)
        assert "160×100" in page.locator("#after-caption").inner_text()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"page is {overflow}px wider than a phone screen"
        shoot(page, "playground-phone")
    finally:
        context.close()


def test_without_a_token_actions_are_refused(dash_fleet, fleet_redis, page):
    failed = submit(fleet_redis, [{"filter": "resize", "params": {"scale": 16.0}}], png_bytes(600, 600, smooth=True))
    assert wait_for_status(fleet_redis, failed, timeout=60) == "failed"

    page.goto(f"{dash_fleet.url}/dashboard/tasks/{failed}/")              # reads are open here
    page.get_by_role("button", name="Retry").click()
    page.get_by_text("Sign in with an API token on /dashboard/login/ to act.").wait_for()
    assert job_status(fleet_redis, failed) == "failed"

    page.goto(f"{dash_fleet.url}/dashboard/queues/")
    page.get_by_role("button", name=f"Pause {QUEUE}").click()
    page.locator("#status.error").wait_for()
    assert not fleet_redis.sismember("pixelfleet:paused_queues", QUEUE)

    page.goto(f"{dash_fleet.url}/dashboard/tasks/?status=failed")
    page.get_by_role("button", name="Retry all failed").click()
    page.get_by_text("Retry refused: Sign in with an API token").wait_for()
    assert job_status(fleet_redis, failed) == "failed"

    page.goto(f"{dash_fleet.url}/dashboard/login/")                       # a wrong token is refused too
    page.get_by_label("API token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("That token is not one of the API's tokens").wait_for()

    # Outside the browser: no CSRF token → 403, a CSRF token but no session → 401.
    session = requests.Session()
    session.get(f"{dash_fleet.url}/dashboard/", timeout=10)
    url = f"{dash_fleet.url}/dashboard/api/tasks/{failed}/retry/"
    assert session.post(url, timeout=10).json()["error"]["code"] == "csrf_failed"
    answer = session.post(url, headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": dash_fleet.url + "/"},
                          timeout=10)
    assert answer.status_code == 401
    # Signed in, the same retry works.
    sign_in(page, dash_fleet, f"/dashboard/tasks/{failed}/")
    page.get_by_role("button", name="Retry").click()
    page.get_by_text("Retried: the task is queued again.").wait_for()
