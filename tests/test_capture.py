import pytest
import torch

import featurescope as fs
from featurescope.capture import stop_layer
from featurescope.errors import HookNameError, LayerError, PromptError

CONVS = [
    [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello there, friend."}],
    [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "How are you doing today?"},
        {"role": "assistant", "content": "Fine."},
    ],
    [{"role": "user", "content": "Count: one two three four five six."}, {"role": "assistant", "content": "Seven!"}],
]


def _reference(model, prompts, hooks):
    """Unbatched run_with_cache on each prompt alone: the ground truth every reduction must match."""
    out = {}
    for p in prompts:
        _, cache = model.tl.run_with_cache(p.tokens[None], names_filter=hooks)
        for h in hooks:
            out.setdefault(h, []).append(cache[h][0])
    return out


@pytest.mark.parametrize("reduction", ["response_mean", "prompt_mean", "last_prompt", "all"])
def test_capture_equals_run_with_cache(tiny_chat, reduction):
    hooks = ["blocks.0.hook_resid_post", "blocks.2.hook_resid_post", "blocks.1.attn.hook_z"]
    prompts = [fs.format_conversation(tiny_chat, c) for c in CONVS]
    acts = fs.capture(tiny_chat, prompts, hooks, reduction=reduction, batch_size=2, progress=False)
    ref = _reference(tiny_chat, prompts, hooks)
    for h in hooks:
        for i, p in enumerate(prompts):
            full = ref[h][i].reshape(len(p), -1)
            if reduction == "response_mean":
                want = full[p.response_mask].mean(0)
            elif reduction == "prompt_mean":
                m = p.prompt_mask.clone()
                m[0] = False  # BOS excluded
                want = full[m].mean(0)
            elif reduction == "last_prompt":
                want = full[p.last_prompt_index]
            else:
                want = full
            torch.testing.assert_close(acts.per_prompt(h, i), want, atol=1e-5, rtol=1e-5)
    if reduction == "all":
        assert acts.role_ids is not None and acts.offsets.tolist()[-1] == sum(len(p) for p in prompts)


def test_capture_stops_early_and_never_unembeds(tiny_chat):
    fired = []
    spies = [
        (n, lambda a, hook: fired.append(hook.name))
        for n in (
            "blocks.0.hook_resid_post",
            "blocks.1.hook_resid_post",
            "blocks.2.hook_resid_post",
            "ln_final.hook_normalized",
        )
    ]
    fs.capture(tiny_chat, CONVS, ["blocks.0.hook_resid_post"], reduction="last_prompt", fwd_hooks=spies, progress=False)
    assert fired == ["blocks.0.hook_resid_post"]  # blocks 1-2 and the final norm / unembedding never ran
    fired.clear()
    fs.capture(tiny_chat, CONVS, ["blocks.2.hook_resid_post"], reduction="last_prompt", fwd_hooks=spies, progress=False)
    assert "ln_final.hook_normalized" not in fired


def test_stop_layer():
    assert stop_layer(["blocks.3.hook_resid_post", "blocks.1.attn.hook_z"], 6) == 4
    assert stop_layer(["hook_embed"], 6) == 0
    assert stop_layer(["ln_final.hook_normalized"], 6) is None


def test_strings_are_formatted_for_the_stage(tiny_chat, tiny_base):
    a = fs.capture(tiny_chat, ["Hello?", "Hi"], ["blocks.1.hook_resid_post"], reduction="last_prompt", progress=False)
    b = fs.capture(tiny_base, ["Hello?", "Hi"], ["blocks.1.hook_resid_post"], reduction="last_prompt", progress=False)
    assert a["blocks.1.hook_resid_post"].shape == (2, 32) and b["blocks.1.hook_resid_post"].shape == (2, 32)


def test_default_hooks_are_every_residual_layer(tiny_chat):
    acts = fs.capture(tiny_chat, CONVS, reduction="response_mean", progress=False)
    assert acts.hooks == [f"blocks.{i}.hook_resid_post" for i in range(3)]
    assert acts.stacked().shape == (3, 3, 32)


def test_bad_hook_lists_close_matches(tiny_chat):
    with pytest.raises(HookNameError, match=r"Did you mean: .*blocks\.1\.hook_resid_post"):
        fs.capture(tiny_chat, CONVS, ["blocks.1.hook_resid_pots"], progress=False)


def test_layer_out_of_range(tiny_chat):
    with pytest.raises(LayerError, match="out of range"):
        fs.capture(tiny_chat, CONVS, ["blocks.7.hook_resid_post"], progress=False)
    with pytest.raises(LayerError, match="3 layers"):
        tiny_chat.resid_hook(3)
    assert tiny_chat.resid_hook(-1) == "blocks.2.hook_resid_post"


def test_empty_prompt_set(tiny_chat):
    with pytest.raises(PromptError, match="empty"):
        fs.capture(tiny_chat, [], ["blocks.0.hook_resid_post"], progress=False)


def test_response_mean_needs_a_response(tiny_chat):
    with pytest.raises(PromptError, match="no response tokens"):
        fs.capture(
            tiny_chat, ["just a prompt"], ["blocks.0.hook_resid_post"], reduction="response_mean", progress=False
        )


def test_unknown_reduction(tiny_chat):
    with pytest.raises(ValueError, match="unknown reduction"):
        fs.capture(tiny_chat, CONVS, ["blocks.0.hook_resid_post"], reduction="median", progress=False)


def test_bfloat16_output(tiny_chat):
    acts = fs.capture(
        tiny_chat, CONVS, ["blocks.0.hook_resid_post"], reduction="last_prompt", dtype="bfloat16", progress=False
    )
    assert acts["blocks.0.hook_resid_post"].dtype == torch.bfloat16
