import pytest
import torch

import featurescope as fs
from featurescope.errors import PromptError
from featurescope.generate import stop_token_ids


def _manual_greedy(model, prompt, n):
    toks = prompt.tokens[None]
    out = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model.tl(toks)[0, -1].argmax())
            out.append(nxt)
            toks = torch.cat([toks, torch.tensor([[nxt]])], 1)
    return out


def test_greedy_matches_a_manual_loop_and_masks_the_response(tiny_chat):
    convs = [[{"role": "user", "content": "Hi?"}], [{"role": "user", "content": "A much longer question here?"}]]
    gens = fs.generate(tiny_chat, convs, max_new_tokens=6, batch_size=2, progress=False)
    stops = set(stop_token_ids(tiny_chat))
    for c, g in zip(convs, gens):
        p = fs.format_conversation(tiny_chat, c)
        manual = _manual_greedy(tiny_chat, p, 6)
        cut = next((i for i, t in enumerate(manual) if t in stops), len(manual))
        assert g.response == tiny_chat.tokenizer.decode(manual[:cut], skip_special_tokens=True).strip()
        if g.formatted is not None:
            assert tiny_chat.tokenizer.decode(g.formatted.tokens[g.formatted.response_mask]) == g.response
            assert g.formatted.last_prompt_index == len(p) - 1


def test_batched_equals_unbatched(tiny_chat):
    convs = [[{"role": "user", "content": "x" * k}] for k in (1, 5, 9)]
    a = fs.generate(tiny_chat, convs, max_new_tokens=5, batch_size=3, progress=False)
    b = [fs.generate(tiny_chat, [c], max_new_tokens=5, batch_size=1, progress=False)[0] for c in convs]
    assert [g.response for g in a] == [g.response for g in b]


def test_sampling_is_seeded(tiny_chat):
    convs = [[{"role": "user", "content": "Tell me something."}]] * 3
    a = fs.generate(tiny_chat, convs, max_new_tokens=8, do_sample=True, seed=3, progress=False)
    b = fs.generate(tiny_chat, convs, max_new_tokens=8, do_sample=True, seed=3, progress=False)
    c = fs.generate(tiny_chat, convs, max_new_tokens=8, do_sample=True, seed=4, progress=False)
    assert [g.response for g in a] == [g.response for g in b]
    assert [g.response for g in a] != [g.response for g in c]


def test_base_model_transcript_generation(tiny_base):
    g = fs.generate(tiny_base, ["Hello?"], max_new_tokens=4, progress=False)[0]
    assert g.prompt.kind == "transcript" and g.prompt.text.endswith("Assistant:")


def test_generation_needs_a_final_user_turn(tiny_chat):
    with pytest.raises(PromptError, match="final user turn"):
        fs.generate(
            tiny_chat, [[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]], progress=False
        )
    with pytest.raises(PromptError, match="no prompts"):
        fs.generate(tiny_chat, [], progress=False)


def test_prompt_plus_new_tokens_over_context(tiny_chat):
    with pytest.raises(PromptError, match="exceeds the context"):
        fs.generate(tiny_chat, ["y" * 480], max_new_tokens=64, progress=False)


# --- the bridge path's KV cache (transformers 5.24 renamed the keyword; see featurescope.versions.KNOWN_BREAKS) ---


def _hf_greedy(hf, ids, n, stops):
    with torch.no_grad():
        out = hf.generate(
            ids[None],
            attention_mask=torch.ones_like(ids)[None],
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=stops,
            pad_token_id=stops[0],
        )
    new = out[0, len(ids) :].tolist()
    cut = next((i for i, t in enumerate(new) if t in stops), len(new))
    return new[:cut]


def test_bridge_cached_generation_equals_hugging_face_greedy(tiny_hf_folder):
    """Cached generation through TransformerBridge must reproduce Hugging Face greedy decoding token for token,
    batched (left-padded) and alone. With an unfilled KV cache (the transformers 5.24 break) this fails."""
    from transformers import AutoModelForCausalLM

    from featurescope.generate import generate_batch

    m = fs.load_model(str(tiny_hf_folder), progress=False)
    assert m.is_bridge
    hf = AutoModelForCausalLM.from_pretrained(str(tiny_hf_folder), dtype=torch.float32).eval()
    stops = stop_token_ids(m)
    convs = [[{"role": "user", "content": "Hi?"}], [{"role": "user", "content": "A much longer question, really?"}]]
    prompts = [fs.format_conversation(m, c) for c in convs]
    batched = generate_batch(
        m, prompts, max_new_tokens=16, do_sample=False, temperature=1.0, top_p=None, seed=0, stops=stops, fwd_hooks=()
    )
    for p, row in zip(prompts, batched):
        ref = _hf_greedy(hf, p.tokens, 16, stops)
        alone = generate_batch(
            m, [p], max_new_tokens=16, do_sample=False, temperature=1.0, top_p=None, seed=0, stops=stops, fwd_hooks=()
        )[0]
        cut = next((i for i, t in enumerate(row) if t in stops), len(row))
        assert row[:cut] == ref, "batched cached bridge generation differs from Hugging Face greedy"
        cut = next((i for i, t in enumerate(alone) if t in stops), len(alone))
        assert alone[:cut] == ref, "cached bridge generation differs from Hugging Face greedy"


def test_bridge_cache_keyword_compat():
    from transformers import DynamicCache

    from featurescope.models import cache_kwarg_compat

    c = DynamicCache()
    args, kw = cache_kwarg_compat(None, (1,), {"cache": c, "x": 2})
    assert kw["past_key_values"] is c and kw["cache"] is c and args == (1,)
    assert cache_kwarg_compat(None, (), {"past_key_values": c}) is None  # older transformers: untouched
    assert cache_kwarg_compat(None, (), {}) is None


def test_known_breaks_are_version_gated():
    from featurescope.versions import KNOWN_BREAKS, known_breaks

    tf = next(b for b in KNOWN_BREAKS if b.package == "transformers")
    assert tf.applies({"transformers": "5.24.0", "transformer-lens": "3.9.0"})
    assert not tf.applies({"transformers": "5.23.0", "transformer-lens": "3.9.0"})
    assert not tf.applies({"transformers": "5.24.0", "transformer-lens": "3.10.0"})
    assert known_breaks({"transformers": "5.23.0", "transformer_lens": "3.9.0"}) == []
    assert tf.workaround  # worked around in featurescope.models.bridge_kv_cache_compat


def test_config_and_keyword_overrides_do_not_mix(tiny_chat):
    from featurescope.errors import FeaturescopeError

    cfg = fs.GenerationConfig(max_new_tokens=3)
    g = fs.generate(tiny_chat, ["Hi?"], config=cfg, progress=False)
    assert g[0].new_tokens <= 3
    with pytest.raises(FeaturescopeError, match="max_new_tokens="):
        fs.generate(tiny_chat, ["Hi?"], config=cfg, max_new_tokens=5, progress=False)


def test_degenerate_warning_only_for_unsteered_decoding(tiny_chat, monkeypatch):
    import sys
    import warnings

    from featurescope.persona import steer

    gen_mod = sys.modules["featurescope.generate"]  # the module (the package re-exports the function by that name)

    monkeypatch.setattr(gen_mod, "degenerate_fraction", lambda texts: 1.0)  # every answer "looks broken"
    convs = [[{"role": "user", "content": f"Hi {i}?"}] for i in range(4)]
    with pytest.warns(RuntimeWarning, match="decoding is probably broken"):
        gen_mod.generate(tiny_chat, convs, max_new_tokens=2, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with steer(tiny_chat, torch.zeros(tiny_chat.d_model), 1.0, hook=0):  # a steering context: no warning
            gen_mod.generate(tiny_chat, convs, max_new_tokens=2, progress=False)
