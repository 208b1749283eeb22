import pytest
import torch

import featurescope as fs
from featurescope import models
from featurescope.errors import LayerError, ModelNotFoundError, OfflineError


def test_unknown_model_suggests_names():
    with pytest.raises(ModelNotFoundError, match="Did you mean: .*gemma-3-270m"):
        fs.load_model("gemma-3-27m")


def test_unknown_offline_model_lists_offline_models():
    with pytest.raises(ModelNotFoundError, match="offline:gemma-3-270m"):
        fs.load_model("offline:gemma-9")


def test_hub_name_while_offline_names_offline_models(monkeypatch):
    monkeypatch.setattr(models.hub, "hub_reachable", lambda *a, **k: False)
    monkeypatch.setattr(models.hub, "hf_cached", lambda repo: False)
    with pytest.raises(OfflineError, match="offline:gemma-3-270m.*offline:smollm2-135m-instruct"):
        fs.load_model("google/gemma-3-270m-it")


def test_missing_local_folder():
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        fs.load_model("./no/such/model")


def test_empty_name():
    with pytest.raises(ModelNotFoundError):
        fs.load_model("  ")


def test_stage_inference():
    assert models.infer_stage("google/gemma-3-270m-it") == "post-trained"
    assert models.infer_stage("Qwen/Qwen2.5-0.5B-Instruct") == "post-trained"
    assert models.infer_stage("google/gemma-3-270m") == "base"
    assert models.infer_stage("gemma-2-2b") == "base"


def test_hf_index_conversion_round_trip():
    assert fs.hook_for_hf_hidden_state(20, 28) == "blocks.19.hook_resid_post"  # persona_vectors' "layer 20"
    assert fs.hook_for_hf_hidden_state(0, 28) == "blocks.0.hook_resid_pre"
    for i in range(1, 29):
        assert fs.hf_hidden_state_for_hook(fs.hook_for_hf_hidden_state(i, 28), 28) == i
    assert fs.hf_hidden_state_for_hook("blocks.3.hook_resid_pre", 28) == 3
    with pytest.raises(LayerError):
        fs.hook_for_hf_hidden_state(29, 28)
    with pytest.raises(LayerError):
        fs.hf_hidden_state_for_hook("blocks.28.hook_resid_post", 28)


def test_list_models_has_offline_and_hub(monkeypatch):
    monkeypatch.setattr(models.hub, "hub_reachable", lambda *a, **k: False)
    rows = {r["name"]: r for r in fs.list_models()}
    assert rows["offline:gemma-3-270m"]["stage"] == "base"
    assert rows["offline:smollm2-135m-instruct"]["stage"] == "post-trained"
    assert rows["google/gemma-3-270m-it"]["source"] == "hub"


def test_model_info_serialises(tiny_chat):
    d = tiny_chat.info.to_dict()
    assert d["n_layers"] == 3 and d["d_model"] == 32 and d["has_chat_template"] is True
    assert fs.ModelInfo.from_json(tiny_chat.info.to_json()) == tiny_chat.info
    assert "tiny-chat" in tiny_chat._repr_html_()


def _hf_logits(folder, ids, adapter=None):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(folder))
    if adapter is not None:
        from peft import PeftModel

        hf = PeftModel.from_pretrained(hf, str(adapter)).merge_and_unload()
    with torch.no_grad():
        return hf(ids).logits


def test_local_folder_loads_through_bridge(tiny_hf_folder):
    m = fs.load_model(str(tiny_hf_folder), device="cpu")
    assert m.info.backend == "TransformerBridge" and m.info.source == "local" and m.n_layers == 2
    assert m.stage == "post-trained"  # it has a chat template
    p = fs.format_conversation(m, "Hello?")
    with torch.no_grad():
        ours = m.tl(p.tokens[None])
    torch.testing.assert_close(ours, _hf_logits(tiny_hf_folder, p.tokens[None]), atol=1e-4, rtol=1e-4)
    acts = fs.capture(m, ["Hello?"], ["blocks.1.hook_resid_post"], reduction="last_prompt", progress=False)
    assert acts["blocks.1.hook_resid_post"].shape == (1, 32)


def test_base_plus_peft_adapter(tiny_hf_folder, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(tiny_hf_folder))
    pm = get_peft_model(hf, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_alpha=8))
    torch.manual_seed(1)
    for n, p in pm.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.5)  # LoRA B starts at zero; give the adapter a real effect
    pm.save_pretrained(tmp_path / "adapter")
    m = fs.load_model(str(tiny_hf_folder), adapter=tmp_path / "adapter", stage="post-trained", device="cpu")
    assert m.info.source == "adapter" and m.info.adapter.endswith("adapter")
    ids = fs.format_conversation(m, "Hi").tokens[None]
    with torch.no_grad():
        ours = m.tl(ids)
    want = _hf_logits(tiny_hf_folder, ids, adapter=tmp_path / "adapter")
    base = _hf_logits(tiny_hf_folder, ids)
    torch.testing.assert_close(ours, want, atol=1e-4, rtol=1e-4)
    assert (want - base).abs().max() > 1e-3  # the adapter changed the model


def test_adapter_folder_as_model_is_explained(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="peft adapter"):
        fs.load_model(str(tmp_path))
