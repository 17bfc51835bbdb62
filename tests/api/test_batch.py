"""POST /api/process-batch/<mode>/: every execution mode through the API, real Redis,
a real worker process for the distributed mode, and bad bodies answered with 400s."""
from __future__ import annotations

import threading

import pytest

from tests.api.conftest import error_of

ORIGINAL_BODY = {"filters": ["resize", "blur"],
                 "filter_params": {"resize": {"width": 800, "height": 600}, "blur": {"radius": 3.0}}}
SMALL_BODY = {**ORIGINAL_BODY, "image_count": 2}


def post(api, mode: str, body):
    return api.post(f"/api/process-batch/{mode}/", body, format="json")


def check_mode(entry: dict, images: int) -> None:
    assert entry["total_ms"] > 0 and len(entry["per_image_ms"]) == images
    assert all(ms > 0 for ms in entry["per_image_ms"])
    assert entry["output_size"] == {"width": 800, "height": 600}
    assert entry["images_per_second"] > 0


def test_sequential_accepts_the_original_body(api):
    response = post(api, "sequential", ORIGINAL_BODY)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["mode"] == "sequential" and list(body["results"]) == ["sequential"]
    assert body["images"]["count"] == 4 and body["images"]["width"] == 640
    assert body["pipeline"][0] == {"filter": "resize", "params": body["pipeline"][0]["params"]}
    assert body["pipeline"][1]["params"]["radius"] == 3.0
    check_mode(body["results"]["sequential"], 4)
    assert body["results"]["sequential"]["speedup_vs_sequential"] == 1.0


@pytest.mark.timeout(150)
def test_compare_times_three_modes_against_sequential(api):
    response = post(api, "compare", SMALL_BODY)
    assert response.status_code == 200, response.content
    body = response.json()
    results = body["results"]
    assert list(results) == ["sequential", "threading", "multiprocessing"]
    for entry in results.values():
        check_mode(entry, 2)
        assert entry["speedup_vs_sequential"] > 0
    assert results["sequential"]["speedup_vs_sequential"] == 1.0
    expected = results["sequential"]["total_ms"] / results["threading"]["total_ms"]
    assert results["threading"]["speedup_vs_sequential"] == pytest.approx(expected, rel=0.01)
    assert "pickled" in results["multiprocessing"]["note"]
    assert body["fastest"] in results

    again = post(api, "multiprocessing", SMALL_BODY).json()["results"]["multiprocessing"]
    assert "startup_ms" not in again          # the spawn pool is created once, then reused
    check_mode(again, 2)


@pytest.mark.timeout(150)
def test_compare_accepts_the_bare_original_body_a_resize_without_size_is_800x600(api):
    """The original scripts send {"filters": ["resize", "blur"]} and nothing else."""
    response = post(api, "compare", {"filters": ["resize", "blur"], "image_count": 1})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["pipeline"][0]["params"]["width"] == 800 and body["pipeline"][0]["params"]["height"] == 600
    for entry in body["results"].values():
        assert entry["output_size"] == {"width": 800, "height": 600}
    # The default fills in only what the original form left out; `steps` stays strict.
    sized = post(api, "sequential", {"filters": ["resize"], "filter_params": {"resize": {"scale": 0.5}}}).json()
    assert sized["results"]["sequential"]["output_size"] == {"width": 320, "height": 180}
    strict = post(api, "sequential", {"steps": [{"filter": "resize"}]})
    assert strict.status_code == 400 and "give width, height or scale" in error_of(strict)["message"]


def test_threading_single_mode(api):
    body = post(api, "threading", SMALL_BODY).json()
    assert list(body["results"]) == ["threading"]
    check_mode(body["results"]["threading"], 2)
    assert body["results"]["threading"]["speedup_vs_sequential"] is None   # no baseline measured


def test_stress_reports_latency_stats(api):
    response = post(api, "stress", {**ORIGINAL_BODY, "num_iterations": 5})
    assert response.status_code == 200, response.content
    stress = response.json()["stress"]
    assert stress["iterations"] == 5 and stress["mode"] == "sequential"
    assert len(stress["per_image_ms"]) == 5
    lat = stress["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]


def test_stress_in_threads(api):
    body = post(api, "stress", {**ORIGINAL_BODY, "num_iterations": 3, "execution_mode": "threading"}).json()
    assert body["stress"]["mode"] == "threading" and len(body["stress"]["per_image_ms"]) == 3


def test_compare_all_without_a_worker_says_so_and_enqueues_nothing(api, redis_conn):
    from workers import jobs

    response = post(api, "compare-all", {**SMALL_BODY, "image_count": 1})
    assert response.status_code == 200, response.content
    fleet = response.json()["results"]["distributed"]
    assert "no live worker has capabilities io" in fleet["error"]
    assert fleet["speedup_vs_sequential"] is None
    assert jobs.queue(redis_conn, "pixelfleet:io").count == 0


@pytest.mark.timeout(150)
def test_compare_all_runs_on_a_real_worker(api, redis_conn, start_worker):
    start_worker("batch-e2e", "io")
    response = post(api, "compare-all", {**SMALL_BODY, "wait": 60})
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert list(results) == ["sequential", "threading", "multiprocessing", "distributed"]
    fleet = results["distributed"]
    assert "error" not in fleet, fleet
    assert len(fleet["task_ids"]) == 2 and fleet["ran_on"] == ["batch-e2e"]
    assert len(fleet["per_image_ms"]) == 2 and fleet["speedup_vs_sequential"] > 0


@pytest.mark.parametrize("body, field", [
    ({}, "filters"),
    ({"filters": ["blur", "nope"]}, "nope"),
    ({"filters": ["blur"], "filter_params": {"blur": {"radius": 80}}}, "blur.radius"),
    ({**ORIGINAL_BODY, "image_count": 100}, "image_count"),
    ({**ORIGINAL_BODY, "image_count": "many"}, "image_count"),
    ({**ORIGINAL_BODY, "sample": "../../etc/passwd"}, "sample"),
    ({**ORIGINAL_BODY, "image": "not base64!"}, "image"),
])
def test_bad_bodies_are_400_naming_the_problem(api, body, field):
    response = post(api, "sequential", body)
    assert response.status_code == 400, response.content
    assert field in error_of(response)["message"]


@pytest.mark.parametrize("body, field", [
    ({**ORIGINAL_BODY, "num_iterations": 21}, "num_iterations"),
    ({**ORIGINAL_BODY, "num_iterations": 0}, "num_iterations"),
    ({**ORIGINAL_BODY, "num_iterations": True}, "num_iterations"),
    ({**ORIGINAL_BODY, "execution_mode": "fork"}, "execution_mode"),
])
def test_bad_stress_bodies(api, body, field):
    response = post(api, "stress", body)
    assert response.status_code == 400 and field in error_of(response)["message"]


def test_too_many_megapixels_is_413(api):
    response = post(api, "sequential", {**ORIGINAL_BODY, "sample": "4k", "image_count": 8})
    assert response.status_code == 413 and "megapixels" in error_of(response)["message"]


def test_malformed_json_and_wrong_method(api):
    response = api.post("/api/process-batch/compare/", "{not json", content_type="application/json")
    assert response.status_code == 400 and error_of(response)["code"] == "malformed_request"
    assert api.post("/api/process-batch/compare/", "[1, 2]", content_type="application/json").status_code == 400
    assert api.get("/api/process-batch/compare/").status_code == 405


def test_concurrent_requests_share_the_pool(api):
    """Two requests at once (gunicorn threads) both complete; nothing deadlocks."""
    from rest_framework.test import APIClient

    outcomes = []

    def call():
        outcomes.append(APIClient().post("/api/process-batch/multiprocessing/", SMALL_BODY,
                                         format="json").status_code)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert outcomes == [200, 200]


@pytest.fixture(autouse=True, scope="module")
def stop_the_spawn_pool_after_this_module():
    """The rest of the session should not carry this module's idle pool children."""
    yield
    from api.batch import shutdown_pool
    shutdown_pool()


def test_outputs_too_large_are_refused_after_one_run(api):
    """32 images each resized to 4000x3000 would make 384 megapixels: 413, nothing more run."""
    body = {"filters": ["resize"], "filter_params": {"resize": {"width": 4000, "height": 3000}},
            "image_count": 32}
    response = post(api, "compare", body)
    assert response.status_code == 413, response.content
    error = error_of(response)
    assert error["code"] == "batch_too_large" and "384.0 megapixels" in error["message"]
