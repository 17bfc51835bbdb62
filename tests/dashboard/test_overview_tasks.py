"""The overview and the task pages in a real browser against a real fleet.

The overview must show the live workers and a queue's depth rising then falling during a
burst; a failed task's page must show its reason, and its Retry button must put it back
on its queue (the retried task then fails again for the same reason, which the page says).
"""
from __future__ import annotations

import re
import time

import pytest

from tests.dashboard.conftest import PHONE, WORKERS, accessibility_basics, sign_in
from tests.fleet_helpers import png_bytes, submit, wait_for_status, wait_until
from workers import settings

pytestmark = pytest.mark.timeout(180)
QUEUE = "pixelfleet:io"


def depth_shown(page) -> int:
    text = page.locator(f'#queues tr[data-queue="{QUEUE}"] td.depth').inner_text()
    return int(text)


def test_overview_shows_workers_and_a_burst_rising_then_falling(dash_fleet, fleet_redis, page, shoot):
    page.goto(f"{dash_fleet.url}/dashboard/")
    for name in WORKERS:                      # every live worker, from its heartbeat
        row = page.locator(f'#workers tr[data-worker="{name}"]')
        row.wait_for()
    assert "cpu, io" in page.locator('#workers tr[data-worker="dash-all"]').inner_text()
    assert re.search(r"\d+(\.\d)? s ago", page.locator('#workers tr[data-worker="dash-io"]').inner_text())
    assert depth_shown(page) == 0
    accessibility_basics(page)

    # A burst held by a paused queue (workers clear a burst faster than one 2 s refresh),
    # then released: the depth shown must rise to the burst, then fall back to 0.
    image = png_bytes(900, 900, smooth=True)
    fleet_redis.sadd(settings.PAUSED_QUEUES_KEY, QUEUE)
    try:
        time.sleep(2.0)                   # workers re-read the paused set at most once a second
        ids = [submit(fleet_redis, [{"filter": "blur", "params": {"radius": 12.0}}], image) for _ in range(24)]
        seen: list[int] = []
        wait_until(lambda: seen.append(depth_shown(page)) or seen[-1] == len(ids), 30,
                   what="the overview showing the held burst")
        shoot(page, "overview")           # mid-burst: a queue with depth
    finally:
        fleet_redis.srem(settings.PAUSED_QUEUES_KEY, QUEUE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen.append(depth_shown(page))
        if seen[-1] == 0:
            break
        time.sleep(0.25)
    assert max(seen) > 0, f"the overview never showed {QUEUE} with tasks: {seen}"
    assert seen[-1] == 0, f"the depth shown never fell back to 0: {seen[-20:]}"
    for task_id in ids:
        assert wait_for_status(fleet_redis, task_id, timeout=60) == "finished"
    # The charts and the success rate follow the completions.
    page.wait_for_function("document.querySelector('#chart-throughput polyline') !== null"
                           " && document.querySelector('#chart-latency .s2') !== null")   # processing p50 drawn
    wait_until(lambda: page.locator("#stat-success .sub").inner_text().startswith("24 done")
               or int(page.locator("#stat-success .sub").inner_text().split()[0]) >= 24, 20, what="done count")
    assert page.locator("#advice-fleet").inner_text().strip()
    storage = page.locator("#stat-storage").inner_text()               # storage against its budget
    assert "% of budget" in storage and "MB of" in storage and "submits stop at" in storage


def test_failed_task_page_shows_reason_and_retry_requeues_it(dash_fleet, fleet_redis, page, shoot):
    # A real job failure: an image the engine refuses to resize (output above the pixel limit).
    task_id = submit(fleet_redis, [{"filter": "resize", "params": {"scale": 16.0}}], png_bytes(600, 600, smooth=True))
    assert wait_for_status(fleet_redis, task_id, timeout=60) == "failed"

    sign_in(page, dash_fleet, "/dashboard/tasks/?status=failed")
    page.locator(f'#tasks tr[data-task="{task_id}"]').wait_for()
    accessibility_basics(page)
    shoot(page, "tasks")
    page.get_by_role("link", name=task_id).click()
    page.wait_for_url(re.compile(rf".*/dashboard/tasks/{task_id}/$"))
    reason = page.locator('[data-fact="failure_reason"]')
    reason.wait_for()
    assert page.locator('[data-fact="failure_type"]').inner_text() == "job_failure"
    assert "pixel" in reason.inner_text().lower() or "limit" in reason.inner_text().lower(), reason.inner_text()
    page.wait_for_function("document.getElementById('input-img').naturalWidth > 0")
    shoot(page, "task-failed")

    page.get_by_role("button", name="Retry").click()
    page.get_by_text("Retried: the task is queued again.").wait_for()
    assert fleet_redis.hget("pixelfleet:counters", "retried") is not None
    # Retried for real: a worker ran it again, it failed again, and the page keeps the history.
    page.locator("#history li").first.wait_for(timeout=60_000)
    page.locator('[data-fact="failure_reason"]').wait_for(timeout=60_000)
    assert "failed" in page.locator("#history").inner_text()


def test_finished_task_page_shows_images_and_step_timings_on_a_phone(dash_fleet, fleet_redis, browser, shoot):
    task_id = submit(fleet_redis, [{"filter": "grayscale", "params": {}}, {"filter": "blur", "params": {"radius": 1.5}}],
                     png_bytes(200, 120, smooth=True))
    assert wait_for_status(fleet_redis, task_id, timeout=60) == "finished"
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        page.goto(f"{dash_fleet.url}/dashboard/tasks/{task_id}/")
        page.locator("#timings tbody tr").nth(1).wait_for()
        rows = page.locator("#timings tbody tr").all_inner_texts()
        assert rows[0].split()[1] == "grayscale" and rows[1].split()[1] == "blur", rows
        page.wait_for_function("document.getElementById('output-img').naturalWidth > 0")
        assert page.locator('[data-fact="worker"]').inner_text() in WORKERS
        # Phone width: nothing wider than the screen but the scrollable tables.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"page is {overflow}px wider than a phone screen"
        shoot(page, "task-phone")
        for path in ("/dashboard/", "/dashboard/queues/", "/dashboard/tasks/"):   # wide tables scroll in their card
            page.goto(f"{dash_fleet.url}{path}")
            page.locator("tbody tr").first.wait_for()
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{path} is {overflow}px wider than a phone screen"
    finally:
        context.close()
