import json

import pytest
import torch

import featurescope as fs
from featurescope.capture import as_prompts
from featurescope.errors import CorruptStoreError, StoreMismatchError

PROMPTS = [
    [
        {"role": "user", "content": f"Question {i}: {'why ' * (i % 4)}?"},
        {"role": "assistant", "content": f"Answer number {i}."},
    ]
    for i in range(10)
]
HOOKS = ["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"]


@pytest.mark.parametrize("reduction", ["response_mean", "all"])
def test_store_round_trip_equals_memory(tiny_chat, tmp_path, reduction):
    mem = fs.capture(tiny_chat, PROMPTS, HOOKS, reduction=reduction, batch_size=3, progress=False)
    st = fs.ActivationStore(tmp_path / "s", shard_size=4)
    disk = fs.capture(tiny_chat, PROMPTS, HOOKS, reduction=reduction, batch_size=3, progress=False, store=st)
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert m["complete"] and len(m["shards"]) == 3 and m["request"]["hooks"] == HOOKS
    again = st.load()
    for h in HOOKS:
        torch.testing.assert_close(disk[h], mem[h])
        torch.testing.assert_close(again[h], mem[h])
    if reduction == "all":
        assert torch.equal(again.offsets, mem.offsets) and torch.equal(again.role_ids, mem.role_ids)


def test_resume_after_interruption(tiny_chat, tmp_path):
    prompts = as_prompts(tiny_chat, PROMPTS)
    st = fs.ActivationStore(tmp_path / "s", shard_size=3)
    assert st.capture(tiny_chat, prompts, HOOKS, reduction="last_prompt", stop_after_shards=2, progress=False) is None
    m = st.manifest()
    assert not m["complete"] and [s["index"] for s in m["shards"]] == [0, 1]
    with pytest.raises(CorruptStoreError, match="incomplete"):
        st.load()
    first = (tmp_path / "s" / "shard-00000.safetensors").stat().st_mtime_ns
    acts = st.capture(tiny_chat, prompts, HOOKS, reduction="last_prompt", progress=False)
    assert (tmp_path / "s" / "shard-00000.safetensors").stat().st_mtime_ns == first  # not recomputed
    full = fs.capture(tiny_chat, prompts, HOOKS, reduction="last_prompt", progress=False)
    torch.testing.assert_close(acts[HOOKS[1]], full[HOOKS[1]])
    assert not list((tmp_path / "s").glob(".*"))  # no temporary files left behind


def test_mismatched_request_is_refused(tiny_chat, tmp_path):
    st = fs.ActivationStore(tmp_path / "s", shard_size=4)
    fs.capture(tiny_chat, PROMPTS, HOOKS, reduction="last_prompt", store=st, progress=False)
    with pytest.raises(StoreMismatchError, match="hooks"):
        fs.capture(tiny_chat, PROMPTS, HOOKS[:1], reduction="last_prompt", store=st, progress=False)
    with pytest.raises(StoreMismatchError, match="prompts_hash"):
        fs.capture(tiny_chat, PROMPTS[:5], HOOKS, reduction="last_prompt", store=st, progress=False)
    with pytest.raises(StoreMismatchError, match="reduction"):
        fs.capture(tiny_chat, PROMPTS, HOOKS, reduction="response_mean", store=st, progress=False)


def test_truncated_shard_is_detected(tiny_chat, tmp_path):
    st = fs.ActivationStore(tmp_path / "s", shard_size=4)
    fs.capture(tiny_chat, PROMPTS, HOOKS, reduction="last_prompt", store=st, progress=False)
    shard = tmp_path / "s" / "shard-00001.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptStoreError, match="truncated"):
        st.load()
    with pytest.raises(CorruptStoreError, match="truncated"):
        fs.capture(tiny_chat, PROMPTS, HOOKS, reduction="last_prompt", store=st, progress=False)


def test_deleted_shard_is_recomputed(tiny_chat, tmp_path):
    st = fs.ActivationStore(tmp_path / "s", shard_size=4)
    ref = fs.capture(tiny_chat, PROMPTS, HOOKS, reduction="last_prompt", store=st, progress=False)
    (tmp_path / "s" / "shard-00001.safetensors").unlink()
    with pytest.raises(CorruptStoreError, match="missing"):
        st.load()  # reading stays strict
    with pytest.warns(UserWarning, match="missing"):
        again = fs.capture(tiny_chat, PROMPTS, HOOKS, reduction="last_prompt", store=st, progress=False)
    for h in HOOKS:
        assert torch.allclose(again[h], ref[h])
    assert st.complete and (tmp_path / "s" / "shard-00001.safetensors").exists()


def test_altered_shard_is_detected(tiny_chat, tmp_path):
    st = fs.ActivationStore(tmp_path / "s", shard_size=4)
    fs.capture(tiny_chat, PROMPTS, HOOKS, reduction="last_prompt", store=st, progress=False)
    shard = tmp_path / "s" / "shard-00000.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptStoreError, match="SHA-256"):
        st.verify()


def test_non_store_folder_is_refused(tiny_chat, tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("mine")
    with pytest.raises(StoreMismatchError, match="not an activation store"):
        fs.capture(tiny_chat, PROMPTS, HOOKS, reduction="last_prompt", store=tmp_path / "s", progress=False)


def test_atomic_writes_get_the_usual_file_mode_not_mkstemps(tmp_path):
    import os

    from featurescope.store import atomic_save_tensors, write_json

    mask = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        atomic_save_tensors(tmp_path / "t.safetensors", {"x": torch.zeros(2)})
    finally:
        os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "t.safetensors").stat().st_mode & 0o777 == 0o644
