"""`dagster dev -w workspace.yaml` serves the code location: /server_info answers and GraphQL lists the assets with
their partitions definitions."""

import pytest

QUERY = """{ assetNodes { assetKey { path } groupName partitionDefinition { type description
              dimensionTypes { name type } } } }"""


@pytest.fixture(scope="module")
def webserver(dagster_dev, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dev")
    env = {"VALLEY_PROJECT_DIR": str(tmp), "VALLEY_PROFILE": "demo", "VALLEY_CONFIG": ""}
    with dagster_dev(tmp / "home", tmp / "dev.log", env=env) as server:
        yield server


def test_server_info(webserver):
    info = webserver.get("/server_info")
    assert info["dagster_webserver_version"]


def test_graphql_lists_assets_with_partitions(webserver):
    nodes = webserver.graphql(QUERY)["assetNodes"]  # the location is loaded once the fixture has yielded
    by_name = {n["assetKey"]["path"][-1]: n for n in nodes}
    assert {"distill_subset", "sft_checkpoint", "lcb_scores", "valley_curve"} <= set(by_name)
    assert by_name["distill_subset"]["partitionDefinition"]["type"] == "DYNAMIC"
    dims = {d["name"]: d["type"] for d in by_name["sft_checkpoint"]["partitionDefinition"]["dimensionTypes"]}
    assert dims == {"data_size": "DYNAMIC", "student": "STATIC"}
    assert by_name["lcb_problems"]["partitionDefinition"]["type"] == "DYNAMIC"
    assert by_name["valley_curve"]["partitionDefinition"] is None
    assert by_name["sft_checkpoint"]["groupName"] == "training"
