"""The Dagster instance the Helm chart configures (run, event-log and schedule storage on PostgreSQL) opens with the
project's pinned packages and records a run: a real server, not SQLite."""

import dagster as dg
import pytest
import yaml

from tests.rehearsal.deployment import PostgresServer, postgres_available


@pytest.fixture(scope="module")
def postgres():
    ok, why = postgres_available()
    if not ok:
        pytest.skip(why)
    with PostgresServer() as server:
        yield server


def test_instance_on_postgres_records_a_materialization(postgres, tmp_path):
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({"storage": {"postgres": postgres.storage_config}}))
    instance = dg.DagsterInstance.from_config(str(tmp_path))

    @dg.asset
    def probe() -> int:
        return 1

    result = dg.materialize([probe], instance=instance)
    assert result.success
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert instance.get_latest_materialization_event(dg.AssetKey("probe")) is not None
    assert len(instance.get_runs()) == 1
