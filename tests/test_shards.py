"""The shared build layer: shard commit/merge, counters, resume guards, format readers."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.format import CorpusDataset, MRCDataset, MRCExample, manifest_hash, read_manifest
from data_prep.shards import BuildError, ShardedBuild, add_counts, write_shard


def _example(seed: int, answers: int) -> MRCExample:
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, 100, size=20).astype(np.int32)
    spans = np.array([[8 + a, 9 + a] for a in range(answers)], np.int32).reshape(-1, 2)
    return MRCExample(ids, 6, 19, spans)


def test_merge_keeps_unit_order_and_sums_counters(tmp_path):
    build = ShardedBuild(tmp_path, "mrc", {"seed": 1}, resume=False)
    examples = [[_example(10 * u + i, i % 3) for i in range(u)] for u in range(4)]  # unit 0 empty
    for unit in (2, 0, 3, 1):  # commit order must not matter
        write_shard(build.work_dir, unit, [e.to_arrays() for e in examples[unit]],
                    {"counts": {"examples": unit}, "skipped": {"odd": unit % 2}})
    manifest = build.merge(4, {"lang": "en", "skipped": {"odd": 10, "reader": 2}})
    assert manifest["counts"] == {"examples": 6}
    assert manifest["skipped"] == {"odd": 12, "reader": 2}
    assert not (tmp_path / ".work").exists()
    ds = MRCDataset(tmp_path)
    flat = [e for unit in examples for e in unit]
    assert len(ds) == len(flat) == 6
    for got, want in zip((ds[i] for i in range(len(ds))), flat):
        np.testing.assert_array_equal(got.input_ids, want.input_ids)
        np.testing.assert_array_equal(got.answer_spans, want.answer_spans)
        assert got.answerable == want.answerable
    assert len(manifest_hash(tmp_path)) == 64


def test_resume_guards(tmp_path):
    ShardedBuild(tmp_path, "mrc", {"seed": 1}, resume=False)
    with pytest.raises(BuildError, match="--resume"):
        ShardedBuild(tmp_path, "mrc", {"seed": 1}, resume=False)
    with pytest.raises(BuildError, match="seed: 1 -> 2"):
        ShardedBuild(tmp_path, "mrc", {"seed": 2}, resume=True)
    build = ShardedBuild(tmp_path, "mrc", {"seed": 1}, resume=True)
    with pytest.raises(BuildError, match="not built"):
        build.merge(1, {})
    write_shard(build.work_dir, 0, [], {})
    build.merge(1, {"lang": "en"})
    assert ShardedBuild(tmp_path, "mrc", {"seed": 1}, resume=True).complete
    with pytest.raises(BuildError, match="finished"):
        ShardedBuild(tmp_path, "mrc", {"seed": 1}, resume=False)


def test_resume_of_a_finished_build_removes_leftover_work(tmp_path):
    """A kill between writing the manifest and removing .work/ (the last two steps of merge)
    leaves the shards behind; --resume finds the build finished and removes them."""
    build = ShardedBuild(tmp_path, "mrc", {"seed": 1}, resume=False)
    write_shard(build.work_dir, 0, [_example(1, 1).to_arrays()], {})
    build.merge(1, {"lang": "en"})
    before = (tmp_path / "mrc.bin").read_bytes()
    leftover = tmp_path / ".work" / "shards"
    leftover.mkdir(parents=True)
    (leftover / "00000.json").write_text("{}")
    assert ShardedBuild(tmp_path, "mrc", {"seed": 1}, resume=True).complete
    assert not (tmp_path / ".work").exists()
    assert (tmp_path / "mrc.bin").read_bytes() == before


def test_readers_explain_unfinished_or_wrong_folders(tmp_path):
    (tmp_path / ".work").mkdir()
    with pytest.raises(FileNotFoundError, match="interrupted.*--resume"):
        read_manifest(tmp_path)
    build = ShardedBuild(tmp_path / "c", "mrc", {}, resume=False)
    write_shard(build.work_dir, 0, [], {})
    build.merge(1, {"lang": "en"})
    with pytest.raises(ValueError, match="holds 'mrc' data, expected 'corpus'"):
        CorpusDataset(tmp_path / "c")


def test_add_counts_nested():
    assert add_counts({"a": 1, "b": {"c": 2}}, {"a": 2, "b": {"c": 1, "d": 4}}) == \
        {"a": 3, "b": {"c": 3, "d": 4}}


def test_group_sizes_merge_into_offsets(tmp_path):
    build = ShardedBuild(tmp_path / "g", "mrc", {"seed": 1}, resume=False)
    units = [[2, 1], [], [3]]  # examples per group (entity), per unit
    for unit, sizes in enumerate(units):
        docs = [_example(unit * 10 + i, 1).to_arrays() for i in range(sum(sizes))]
        write_shard(build.work_dir, unit, docs, {"counts": {}}, groups=sizes)
    manifest = build.merge(len(units), {"lang": "en"})
    assert manifest["files"]["group_count"] == 3
    np.testing.assert_array_equal(MRCDataset(tmp_path / "g").group_offsets(), [0, 2, 3, 6])
    # sizes must cover the unit's documents exactly; a mix with and without groups is refused
    (tmp_path / "x" / "shards").mkdir(parents=True)
    with pytest.raises(ValueError, match="sum to the 2 documents"):
        write_shard(tmp_path / "x", 0, [_example(1, 0).to_arrays()] * 2, {}, groups=[1])
    mixed = ShardedBuild(tmp_path / "m", "mrc", {}, resume=False)
    write_shard(mixed.work_dir, 0, [_example(1, 0).to_arrays()], {}, groups=[1])
    write_shard(mixed.work_dir, 1, [_example(2, 0).to_arrays()], {})
    with pytest.raises(BuildError, match="unit 1 has no group sizes"):
        mixed.merge(2, {"lang": "en"})
    plain = ShardedBuild(tmp_path / "p", "mrc", {}, resume=False)
    write_shard(plain.work_dir, 0, [_example(1, 0).to_arrays()], {})
    plain.merge(1, {"lang": "en"})
    assert MRCDataset(tmp_path / "p").group_offsets() is None


def test_items_outlive_their_dataset(tmp_path):
    build = ShardedBuild(tmp_path / "d", "mrc", {}, resume=False)
    write_shard(build.work_dir, 0, [_example(3, 1).to_arrays()], {})
    build.merge(1, {"lang": "en"})
    example = MRCDataset(tmp_path / "d")[0]  # the dataset (and its memory map) is gone now
    import gc

    gc.collect()
    np.testing.assert_array_equal(example.input_ids, _example(3, 1).input_ids)
