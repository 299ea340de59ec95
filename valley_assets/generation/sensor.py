"""A sensor that notices new LiveCodeBench releases: it registers each one and fetches its problems.

Each tick that is due (every tick, or with `cron` once a cron time has passed since the last listing: the daily
schedule that drives discovery in production):
1. lists the releases the configured source holds (`discover_releases`);
2. for each release it has not seen: registers the `lcb_release` partition and requests `lcb_problems[release]`.
   A hub repo whose commit changed with no new file counts as a new release too: the newest one at that commit,
   `release_vN-rev<sha12>` (`releases.revision_release`).

Evaluation is not requested here. Once a release's problems are written, it is the newest `lcb_problems` partition
that the generations assets read (`LastPartitionMapping`), and their automation condition
(`defs.common.on_new_inputs`, evaluated by the `valley_automation` sensor) requests every checkpoint's generations
and then scores on it, main and ablation alike, once. The same condition evaluates a checkpoint trained later.

The cursor (JSON) holds `pending` (problems requested, not yet written), `done` and `checked_at` (the last listing,
for the cron), so nothing is requested twice; a release whose problems are already materialized is not fetched
again (a fresh cursor on a home the demo built redoes nothing), and every run request carries a `run_key`, which
Dagster de-duplicates per sensor as a second guard. On the very first tick, with `backfill_existing=False`
(default), only the newest release is fetched: the older ones are marked done (not registered, so that the newest
stays the last registered release), so that switching the sensor on does not evaluate the whole history on the GPUs.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import dagster as dg

from valley_assets.generation.releases import discover_releases, revision_release, source_revision
from valley_assets.partitions import lcb_release_partitions, validate_release_key

RELEASE_TAG = "valley/lcb_release"


@dataclass
class ReleaseCursor:
    pending: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    checked_at: float | None = None  # when the source was last listed (seconds since the epoch)
    revision: str | None = None  # the hub commit the source was at then (None: a folder)

    @classmethod
    def parse(cls, raw: str | None) -> ReleaseCursor:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(pending=list(data["pending"]), done=list(data["done"]), checked_at=data.get("checked_at"),
                       revision=data.get("revision"))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"release sensor cursor is not {{'pending': [...], 'done': [...]}}: {raw!r}") from exc

    def serialize(self) -> str:
        return json.dumps({"pending": self.pending, "done": self.done, "checked_at": self.checked_at,
                           "revision": self.revision})

    @property
    def seen(self) -> set[str]:
        return set(self.pending) | set(self.done)


@dataclass
class TickPlan:
    """What one tick does; computed by `plan_tick` from plain values, so it is testable without an instance."""

    problems_requests: list[str]  # releases whose lcb_problems run is requested now
    skipped: list[str]  # releases seen on the first tick and left alone (backfill_existing=False)
    cursor: ReleaseCursor


def plan_tick(
    discovered: Sequence[str],
    cursor: ReleaseCursor,
    *,
    problems_materialized: Iterable[str],
    backfill_existing: bool,
    now: float | None = None,
    revision: str | None = None,
) -> TickPlan:
    """`revision`: the hub commit the source is at now. When it differs from the last listing's and no new file
    came with it, the newest release is a new release at that commit (`revision_release`)."""
    first_tick = not cursor.seen
    materialized = set(problems_materialized)
    discovered = list(dict.fromkeys(discovered))
    if (revision is not None and cursor.revision is not None and revision != cursor.revision and discovered
            and discovered[-1] in cursor.seen):
        discovered.append(revision_release(discovered[-1], revision))
    new = [r for r in discovered if r not in cursor.seen]
    skipped = new[:-1] if first_tick and not backfill_existing else []
    accepted = [r for r in new if r not in skipped]
    to_request = [r for r in accepted if r not in materialized]  # problems already written are not fetched again
    pending = cursor.pending + accepted
    written = [r for r in pending if r in materialized]
    new_cursor = ReleaseCursor(
        pending=[r for r in pending if r not in written],
        done=cursor.done + skipped + written,
        checked_at=cursor.checked_at if now is None else now,
        revision=cursor.revision if revision is None else revision,
    )
    return TickPlan(problems_requests=to_request, skipped=skipped, cursor=new_cursor)


def next_check(cron: str | None, checked_at: float | None, *, timezone: str = "UTC") -> float | None:
    """When the source is next due to be listed: the first cron time after the last listing; None: now (no cron,
    or never listed)."""
    if cron is None or checked_at is None:
        return None
    # Dagster's own cron iterator (what its schedules use): DST and day-of-week handling as in a ScheduleDefinition.
    from dagster._utils.schedules import get_next_cron_tick

    start = datetime.datetime.fromtimestamp(checked_at, tz=datetime.UTC)
    return get_next_cron_tick(cron, start, timezone).timestamp()


def _job_name(job) -> str:
    name = getattr(job, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"expected a job definition (JobDefinition or define_asset_job result), got {job!r}")
    return name


def build_release_sensor(
    *,
    source: str,
    problems_job,
    problems_asset: dg.AssetKey | str,
    release_partitions: dg.DynamicPartitionsDefinition = lcb_release_partitions,
    release_prefix: str = "release_v",
    backfill_existing: bool = False,
    name: str = "lcb_release_sensor",
    minimum_interval_seconds: int = 3600,
    cron: str | None = None,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    discover: Callable[[str], list[str]] | None = None,
    revision_of: Callable[[str], str | None] | None = None,
) -> dg.SensorDefinition:
    """The release sensor (see the module docstring).

    `problems_job`: the job that materializes `problems_asset` (`lcb_problems`), partitioned by `release_partitions`.
    `cron`: list the source only once a cron time (UTC) has passed since the last listing (None: every tick).
    `discover(source)`: release lister; defaults to `discover_releases(source, prefix=release_prefix)`.
    `revision_of(source)`: the hub commit the source is at (None for a folder); defaults to `source_revision`.
    """
    problems_key = dg.AssetKey.from_coercible(problems_asset)
    discover = discover or (lambda src: discover_releases(src, prefix=release_prefix))
    revision_of = revision_of or source_revision
    problems_job_name = _job_name(problems_job)
    schedule = f" on cron '{cron}' (UTC)" if cron else ""

    @dg.sensor(
        name=name,
        jobs=[problems_job],
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"New LiveCodeBench releases in {source}{schedule}: register them and fetch their problems "
                    "(the evaluation assets' automation conditions then score every checkpoint on them).",
    )
    def _release_sensor(context: dg.SensorEvaluationContext):
        cursor = ReleaseCursor.parse(context.cursor)
        now = datetime.datetime.now(datetime.UTC).timestamp()
        instance = context.instance
        materialized = instance.get_materialized_partitions(problems_key)
        due = next_check(cron, cursor.checked_at)
        if due is not None and now < due:
            # Between cron times only the problems runs already requested are followed (pending -> done).
            plan = plan_tick([], cursor, problems_materialized=materialized, backfill_existing=backfill_existing)
            if plan.cursor == cursor:
                when = datetime.datetime.fromtimestamp(due, tz=datetime.UTC).isoformat()
                return dg.SkipReason(f"next listing of {source} at {when} (cron '{cron}')")
            return dg.SensorResult(cursor=plan.cursor.serialize())
        discovered = [validate_release_key(r) for r in discover(source)]
        plan = plan_tick(discovered, cursor, problems_materialized=materialized,
                         backfill_existing=backfill_existing, now=now, revision=revision_of(source))
        discovered = list(dict.fromkeys([*discovered, *plan.problems_requests, *plan.skipped]))
        registered = set(instance.get_dynamic_partitions(release_partitions.name))
        # Skipped (older) releases are not registered: the generations read the *last* registered release
        # (`LastPartitionMapping`), and a profile's release_v6 registered before release_v1..v5 would make release_v5
        # the "newest". Register one by hand (UI: add partition) to evaluate it with `evaluate_checkpoints`.
        to_register = [r for r in dict.fromkeys(discovered) if r in plan.problems_requests and r not in registered]
        run_requests = [
            dg.RunRequest(
                run_key=f"lcb_problems:{release}",
                job_name=problems_job_name,
                partition_key=release,
                tags={RELEASE_TAG: release},
            )
            for release in plan.problems_requests
        ]
        if plan.skipped:
            context.log.info(f"first tick: left {plan.skipped} alone, only the newest is fetched "
                             "(backfill_existing=False)")
        if not run_requests and not to_register and (plan.cursor.pending, plan.cursor.done, plan.cursor.revision) == (
                cursor.pending, cursor.done, cursor.revision):
            # The listing time is still recorded (the cron counts from it), without a run or a partition to add.
            return dg.SensorResult(cursor=plan.cursor.serialize()) if cron else dg.SkipReason(
                f"no new releases in {source} (known: {sorted(cursor.seen)}); waiting on problems for "
                f"{cursor.pending or 'none'}")
        return dg.SensorResult(
            run_requests=run_requests,
            dynamic_partitions_requests=[release_partitions.build_add_request(to_register)] if to_register else [],
            cursor=plan.cursor.serialize(),
        )

    return _release_sensor
