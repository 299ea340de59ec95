"""A sensor that notices new LiveCodeBench releases and evaluates every trained checkpoint on them.

Each tick:
1. lists the releases the configured source holds (`discover_releases`);
2. for each release it has not seen: registers the `lcb_release` partition and requests `lcb_problems[release]`;
3. for each release whose `lcb_problems` partition is materialized and that it has not evaluated yet: requests the
   evaluation job (generations + scores) once per materialized checkpoint partition (`data_size|student`), with the
   release in the run config.

Step 3 waits for step 2's run to land, so generation never starts on a release whose problems are not written yet;
the two happen on different ticks (or the same tick, if the problems were already materialized).

The cursor (JSON) holds `pending` (problems requested, evaluation not yet) and `done` (evaluation requested, or
skipped), so nothing is requested twice. The instance is the truth besides the cursor: a release whose problems are
already materialized is not fetched again, and a (release, checkpoint) pair whose scores are materialized (the
evaluated assets' `release` metadata) is not evaluated again, so a fresh cursor (a new deployment, `dagster dev` on
a home the demo built) does not redo finished work; every run request also carries a `run_key`, which Dagster de-duplicates
per sensor as a second guard. On the very first tick, with `backfill_existing=False` (default), only the newest
release is evaluated: the older ones are registered as partitions (selectable in the UI) and marked done, so that
switching the sensor on does not launch the whole history on the GPUs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg

from valley_assets.generation.releases import discover_releases
from valley_assets.partitions import lcb_release_partitions, validate_release_key

RELEASE_TAG = "valley/lcb_release"


@dataclass
class ReleaseCursor:
    pending: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: str | None) -> ReleaseCursor:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(pending=list(data["pending"]), done=list(data["done"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"release sensor cursor is not {{'pending': [...], 'done': [...]}}: {raw!r}") from exc

    def serialize(self) -> str:
        return json.dumps({"pending": self.pending, "done": self.done})

    @property
    def seen(self) -> set[str]:
        return set(self.pending) | set(self.done)


@dataclass
class TickPlan:
    """What one tick does; computed by `plan_tick` from plain values, so it is testable without an instance."""

    problems_requests: list[str]  # releases whose lcb_problems run is requested now
    skipped: list[str]  # releases seen on the first tick and left alone (backfill_existing=False)
    evaluations: list[tuple[str, str]]  # (release, checkpoint partition key)
    cursor: ReleaseCursor


def plan_tick(
    discovered: Sequence[str],
    cursor: ReleaseCursor,
    *,
    problems_materialized: Iterable[str],
    checkpoint_partitions: Iterable[str],
    backfill_existing: bool,
    evaluated: Iterable[tuple[str, str]] = (),
) -> TickPlan:
    """`evaluated`: (release, checkpoint) pairs whose scores already exist; they are never requested again."""
    first_tick = not cursor.seen
    materialized = set(problems_materialized)
    new = [r for r in dict.fromkeys(discovered) if r not in cursor.seen]
    skipped = new[:-1] if first_tick and not backfill_existing else []
    accepted = [r for r in new if r not in skipped]
    to_request = [r for r in accepted if r not in materialized]  # problems already written are not fetched again
    pending = cursor.pending + accepted
    ready = [r for r in pending if r in materialized]
    checkpoints = sorted(set(checkpoint_partitions))
    done_pairs = set(evaluated)
    # A release is done once its evaluation runs are requested, even when no checkpoint exists yet: checkpoints
    # trained later are evaluated by the training side's own automation, on the newest release.
    evaluations = [(r, cp) for r in ready for cp in checkpoints if (r, cp) not in done_pairs]
    new_cursor = ReleaseCursor(
        pending=[r for r in pending if r not in ready],
        done=cursor.done + skipped + ready,
    )
    return TickPlan(problems_requests=to_request, skipped=skipped, evaluations=evaluations, cursor=new_cursor)


def evaluated_pairs(instance: dg.DagsterInstance, asset_keys: Sequence[dg.AssetKey], *,
                    field_name: str = "release", page: int = 1000) -> set[tuple[str, str]]:
    """(release, partition) of every materialization of `asset_keys` that names its release in metadata; a pair
    counts as evaluated only when every one of those assets has it (generations without scores are not done)."""
    per_asset = []
    for key in asset_keys:
        pairs, cursor = set(), None
        while True:
            result = instance.fetch_materializations(key, limit=page, cursor=cursor)
            for record in result.records:
                mat = record.asset_materialization
                release = mat.metadata.get(field_name) if mat else None
                if mat is not None and mat.partition and release is not None:
                    pairs.add((str(getattr(release, "value", release)), str(mat.partition)))
            if not result.has_more:
                break
            cursor = result.cursor
        per_asset.append(pairs)
    return set.intersection(*per_asset) if per_asset else set()


def release_run_config(op_names: Iterable[str], release: str, *, field_name: str = "release") -> dict:
    """Run config giving each named asset op `{field_name: release}` as its config."""
    return {"ops": {name: {"config": {field_name: release}} for name in op_names}}


def _job_name(job) -> str:
    name = getattr(job, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"expected a job definition (JobDefinition or define_asset_job result), got {job!r}")
    return name


def build_release_sensor(
    *,
    source: str,
    job,
    problems_job,
    problems_asset: dg.AssetKey | str,
    checkpoint_assets: Sequence[dg.AssetKey | str],
    run_config_for_release: Callable[[str], Mapping],
    release_partitions: dg.DynamicPartitionsDefinition = lcb_release_partitions,
    release_prefix: str = "release_v",
    backfill_existing: bool = False,
    name: str = "lcb_release_sensor",
    minimum_interval_seconds: int = 3600,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    discover: Callable[[str], list[str]] | None = None,
    evaluated_assets: Sequence[dg.AssetKey | str] = (),
) -> dg.SensorDefinition:
    """The release sensor (see the module docstring).

    `job`: the evaluation job (generations + scores), partitioned like checkpoints (`data_size × student`).
    `problems_job`: the job that materializes `problems_asset` (`lcb_problems`), partitioned by `release_partitions`.
    `checkpoint_assets`: assets whose materialized partitions are the checkpoints to evaluate (union over them).
    `run_config_for_release(release)`: the evaluation job's run config for a release (see `release_run_config`).
    `discover(source)`: release lister; defaults to `discover_releases(source, prefix=release_prefix)`.
    `evaluated_assets`: the evaluation job's assets whose materializations carry `release` metadata; pairs they
    already hold are not requested again (see `evaluated_pairs`).
    """
    evaluated_keys = [dg.AssetKey.from_coercible(k) for k in evaluated_assets]
    problems_key = dg.AssetKey.from_coercible(problems_asset)
    checkpoint_keys = [dg.AssetKey.from_coercible(k) for k in checkpoint_assets]
    if not checkpoint_keys:
        raise ValueError("build_release_sensor needs at least one checkpoint asset key")
    discover = discover or (lambda src: discover_releases(src, prefix=release_prefix))
    eval_job_name, problems_job_name = _job_name(job), _job_name(problems_job)

    @dg.sensor(
        name=name,
        jobs=[job, problems_job],
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"New LiveCodeBench releases in {source}: register, fetch problems, evaluate every checkpoint.",
    )
    def _release_sensor(context: dg.SensorEvaluationContext):
        discovered = [validate_release_key(r) for r in discover(source)]
        cursor = ReleaseCursor.parse(context.cursor)
        instance = context.instance
        checkpoints: set[str] = set()
        for key in checkpoint_keys:
            checkpoints |= instance.get_materialized_partitions(key)
        plan = plan_tick(
            discovered,
            cursor,
            problems_materialized=instance.get_materialized_partitions(problems_key),
            checkpoint_partitions=checkpoints,
            backfill_existing=backfill_existing,
            evaluated=evaluated_pairs(instance, evaluated_keys) if evaluated_keys else (),
        )
        registered = set(instance.get_dynamic_partitions(release_partitions.name))
        handled_now = set(plan.problems_requests) | set(plan.skipped)
        to_register = [r for r in dict.fromkeys(discovered) if r in handled_now and r not in registered]
        run_requests = [
            dg.RunRequest(
                run_key=f"lcb_problems:{release}",
                job_name=problems_job_name,
                partition_key=release,
                tags={RELEASE_TAG: release},
            )
            for release in plan.problems_requests
        ] + [
            dg.RunRequest(
                run_key=f"evaluate:{release}:{checkpoint}",
                job_name=eval_job_name,
                partition_key=checkpoint,
                run_config=dict(run_config_for_release(release)),
                tags={RELEASE_TAG: release},
            )
            for release, checkpoint in plan.evaluations
        ]
        if plan.skipped:
            context.log.info(f"first tick: registered {plan.skipped} without evaluating them (backfill_existing=False)")
        if not run_requests and not to_register and plan.cursor == cursor:
            return dg.SkipReason(
                f"no new releases in {source} (known: {sorted(cursor.seen)}); waiting on problems for "
                f"{cursor.pending or 'none'}"
            )
        return dg.SensorResult(
            run_requests=run_requests,
            dynamic_partitions_requests=[release_partitions.build_add_request(to_register)] if to_register else [],
            cursor=plan.cursor.serialize(),
        )

    return _release_sensor
