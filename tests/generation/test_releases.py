from types import SimpleNamespace

import pytest

from valley_assets.generation.releases import (
    discover_releases,
    is_hub_source,
    release_file_number,
    releases_from_filenames,
    revision_release,
    source_revision,
    split_revision,
)


def test_file_numbers():
    assert release_file_number("test.jsonl") == 1
    assert release_file_number("some/dir/test6.jsonl") == 6
    assert release_file_number("test12.jsonl") == 12
    for name in ("test1.jsonl", "test0.jsonl", "train.jsonl", "test6.jsonl.lock", "test2.json"):
        assert release_file_number(name) is None


def test_release_needs_every_earlier_file():
    names = ["test.jsonl", "test2.jsonl", "test3.jsonl", "test5.jsonl", "README.md"]
    assert releases_from_filenames(names) == ["release_v1", "release_v2", "release_v3"]
    assert releases_from_filenames(["test2.jsonl"]) == []
    assert releases_from_filenames(["test.jsonl"], prefix="demo_v") == ["demo_v1"]


def test_folder_source_grows_as_files_appear(tmp_path):
    assert discover_releases(str(tmp_path)) == []
    for name in ("test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl", "test6.jsonl"):
        (tmp_path / name).write_text("{}\n")
    assert discover_releases(str(tmp_path))[-1] == "release_v6"
    (tmp_path / "test7.jsonl").write_text("{}\n")
    assert discover_releases(str(tmp_path))[-1] == "release_v7"
    assert discover_releases(f"file://{tmp_path}")[-1] == "release_v7"  # fsspec URLs, as for object stores
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover_releases(str(tmp_path / "missing"))


class FakeHfApi:
    """Stands in for huggingface_hub.HfApi (no network here): the two calls the release code makes."""

    def __init__(self, files, sha="0123456789abcdef0123456789abcdef01234567"):
        self.files, self.sha = files, sha
        self.calls = []

    def dataset_info(self, repo_id):
        self.calls.append(("dataset_info", repo_id))
        return SimpleNamespace(sha=self.sha)

    def list_repo_files(self, repo_id, *, repo_type=None, revision=None):
        self.calls.append((repo_id, repo_type, revision))
        return self.files


def test_hub_source_lists_repo_files():
    api = FakeHfApi([".gitattributes", "README.md", "code_generation_lite.py", "test.jsonl", "test2.jsonl",
                     "test3.jsonl", "sub/test4.jsonl"])
    assert discover_releases("livecodebench/code_generation_lite", hf_api=api) == ["release_v1", "release_v2",
                                                                                   "release_v3"]
    assert api.calls == [("livecodebench/code_generation_lite", "dataset", None)]
    assert discover_releases("hub:livecodebench/code_generation_lite", hf_api=api, revision="abc")[-1] == "release_v3"
    assert api.calls[-1] == ("livecodebench/code_generation_lite", "dataset", "abc")


def test_source_kind():
    assert is_hub_source("livecodebench/code_generation_lite")
    assert not is_hub_source("/data/lcb") and not is_hub_source("s3://bucket/lcb") and not is_hub_source("./lcb")
    with pytest.raises(ValueError, match="release source"):
        discover_releases("")


def test_hub_revision_keys():
    api = FakeHfApi(["test.jsonl"])
    assert source_revision("livecodebench/code_generation_lite", hf_api=api) == api.sha
    assert api.calls == [("dataset_info", "livecodebench/code_generation_lite")]
    assert source_revision("/data/lcb") is None  # a folder: new releases are new files only
    key = revision_release("release_v6", api.sha)
    assert key == "release_v6-rev0123456789ab" and split_revision(key) == ("release_v6", "0123456789ab")
    assert split_revision("release_v6") == ("release_v6", None)
    with pytest.raises(ValueError, match="not a commit sha"):
        revision_release("release_v6", "main")


def test_a_revision_key_on_a_folder_source_is_refused(tmp_path):
    from valley_assets.data.lcb import load_lcb

    (tmp_path / "test.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="names hub commit '0123456789ab', but the source .* is a folder"):
        load_lcb(str(tmp_path), release="release_v1-rev0123456789ab")
