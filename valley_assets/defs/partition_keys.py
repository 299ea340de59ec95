"""The dynamic partition keys of a deployed instance, kept by the daemon itself.

A deployed Dagster instance (the Helm chart's daemon, `dagster dev`) starts with no dynamic partitions: only
`valley demo` / the study runner used to register the profile's `data_sizes` and `benchmark.releases`. And Dagster
does not validate dynamic keys: a `bad|key` or `3K` added in the UI's partition picker is accepted and only fails
once a run has started on it. `partition_keys_sensor` (running by default) closes both gaps on every tick:

- it adds the profile's data sizes and releases that the instance lacks;
- it reports every registered key that the study cannot interpret (`partitions.validate_*`) and deletes it, so the
  partition disappears from the UI before a backfill is launched on it (a run already started on one still fails in
  `checkpoint_key` with the same message).

Both go through `SensorResult.dynamic_partitions_requests`, which the daemon applies (and records on the tick).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import dagster as dg

from valley_assets import partitions as P
from valley_assets.config import StudyConfig

SENSOR_NAME = "partition_keys_sensor"
CHECK_INTERVAL_S = 30  # the daemon's own sensor loop; a UI-added key lives at most this long


def key_requests(
    partitions_def: dg.DynamicPartitionsDefinition, registered: Iterable[str], wanted: Iterable[str],
    validate: Callable[[str], str],
) -> tuple[list, list[str]]:
    """(requests, messages) that register `wanted` keys missing from `registered` and delete invalid ones."""
    registered = list(registered)
    requests, messages = [], []
    invalid = {}
    for key in registered:
        try:
            validate(key)
        except P.PartitionKeyError as exc:
            invalid[key] = str(exc)
    if invalid:
        requests.append(partitions_def.build_delete_request(list(invalid)))
        messages += [f"deleting {partitions_def.name} partition {key!r}: {why}" for key, why in invalid.items()]
    missing = [key for key in dict.fromkeys(wanted) if key not in registered]
    if missing:
        requests.append(partitions_def.build_add_request(missing))
        messages.append(f"registering the profile's {partitions_def.name} partitions {missing}")
    return requests, messages


def build(cfg: StudyConfig) -> dg.Definitions:
    @dg.sensor(name=SENSOR_NAME, minimum_interval_seconds=CHECK_INTERVAL_S,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Registers the profile's data_size and lcb_release partitions and deletes keys the study "
                           "cannot interpret (Dagster does not validate dynamic partition keys).")
    def partition_keys_sensor(context: dg.SensorEvaluationContext):
        requests, messages = [], []
        for partitions_def, wanted, validate in (
            (P.data_size_partitions, cfg.data_sizes, P.validate_data_size_key),
            (P.lcb_release_partitions, cfg.benchmark.releases, P.validate_release_key),
        ):
            registered = context.instance.get_dynamic_partitions(partitions_def.name)
            more_requests, more_messages = key_requests(partitions_def, registered, wanted, validate)
            requests += more_requests
            messages += more_messages
        if not requests:
            return dg.SkipReason("every profile key is registered and every registered key is valid")
        for message in messages:
            (context.log.error if message.startswith("deleting") else context.log.info)(message)
        return dg.SensorResult(dynamic_partitions_requests=requests)

    return dg.Definitions(sensors=[partition_keys_sensor])
