"""Can the fleet take work now? One answer for /api/health/ and the `make run` banner.

Why one place: "up" must mean the same thing to an operator reading the banner and to a
load balancer reading /api/health/. A worker in state `warming` is alive (it beats) but
takes nothing until its kernels are compiled; a queue whose capability set no live
worker has will wait forever, however many other workers are idle.

Pure functions over data already read from Redis (heartbeat records, queue depths).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from workers import settings
from workers.routing import capabilities_of_queue

READY_STATES = ("idle", "busy")          # a worker in one of these takes (or runs) tasks
OK, WARMING, DEGRADED = "ok", "warming", "degraded"


def capability_set(record: dict[str, Any]) -> frozenset[str]:
    """A heartbeat's capabilities ("all" expanded); untrusted input, so tolerant."""
    raw = record.get("capabilities") or ()
    if isinstance(raw, str):
        raw = raw.replace("+", ",").split(",")
    caps = {str(c).strip() for c in raw if str(c).strip()} if isinstance(raw, (list, tuple, set)) else set()
    return frozenset(settings.CAPABILITIES) if "all" in caps else frozenset(caps)


@dataclass
class Readiness:
    """The fleet's state: ok | warming | degraded, with a reason per problem."""

    status: str
    reasons: list[str] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)      # names of workers taking tasks
    warming: list[str] = field(default_factory=list)    # names still compiling kernels


def starving_queues(workers: Iterable[dict[str, Any]], queue_depths: dict[str, int]) -> list[str]:
    """One sentence per non-empty queue that no live (not stopping) worker can serve."""
    live = [capability_set(w) for w in workers if w.get("state") != "stopping"]
    reasons = []
    for queue, depth in sorted(queue_depths.items()):
        if int(depth or 0) <= 0:
            continue
        try:
            needed = capabilities_of_queue(queue)
        except ValueError:
            continue
        if not any(needed <= caps for caps in live):
            label = "+".join(sorted(needed))
            reasons.append(f"{depth} task(s) wait on {queue} and no live worker has capabilities {label}: "
                           f"start one with --capabilities {label.replace('+', ',')}")
    return reasons


def assess(workers: list[dict[str, Any]], queue_depths: dict[str, int]) -> Readiness:
    """degraded (no worker, or queued work nobody can take) > warming (nobody ready yet) > ok."""
    ready = [str(w.get("name")) for w in workers if w.get("state") in READY_STATES]
    warming = [str(w.get("name")) for w in workers if w.get("state") == "warming"]
    result = Readiness(OK, ready=ready, warming=warming)
    if not workers:
        result.status = DEGRADED
        result.reasons.append("no live worker: tasks are accepted but wait until one starts")
        return result
    starving = starving_queues(workers, queue_depths)
    if starving:
        result.status = DEGRADED
        result.reasons += starving
    if not ready and warming:
        result.status = DEGRADED if result.status == DEGRADED else WARMING
        result.reasons.append(f"no worker takes tasks yet: {len(warming)} of {len(workers)} live worker(s) "
                              f"warming (compiling kernels: tens of seconds on a first start, a few "
                              f"seconds from numba's cache)")
    elif not ready and any(w.get("state") == "paused" for w in workers):
        result.status = DEGRADED
        result.reasons.append("no worker takes tasks: every queue the live workers serve is paused "
                              "(resume one: POST /api/queues/<name>/resume/ or /dashboard/queues/)")
    elif not ready:
        result.status = DEGRADED
        result.reasons.append(f"no worker takes tasks: all {len(workers)} live worker(s) are stopping")
    return result
