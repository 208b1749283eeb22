import pytest
import torch

import featurescope as fs
from featurescope.errors import ChatTemplateError, PromptError
from featurescope.formatting import ROLE_IDS, pad_batch


def _decode(tok, p, mask):
    return tok.decode(p.tokens[mask])


def test_chat_masks_point_at_each_role(tiny_chat, conv):
    p = fs.format_conversation(tiny_chat, conv)
    tok = tiny_chat.tokenizer
    assert p.kind == "chat"
    assert _decode(tok, p, p.system_mask) == "You are terse."
    assert _decode(tok, p, p.user_mask) == "Hi there?Name a color."
    assert _decode(tok, p, p.assistant_mask) == "Hello.Blue, mostly."
    # the response is the final assistant turn only
    assert _decode(tok, p, p.response_mask) == "Blue, mostly."
    # the last prompt token ends the generation prompt "<start_of_turn>model\n" before the response
    assert tok.decode(p.tokens[: p.last_prompt_index + 1]).endswith("<start_of_turn>model\n")
    assert p.text.startswith("<bos>")
    assert int(p.tokens[0]) == tok.bos_token_id and int((p.tokens == tok.bos_token_id).sum()) == 1


def test_transcript_masks_for_base(tiny_base, conv):
    p = fs.format_conversation(tiny_base, conv)
    tok = tiny_base.tokenizer
    assert p.kind == "transcript"
    assert "User: Hi there?" in p.text and "Assistant: Blue, mostly." in p.text
    assert _decode(tok, p, p.system_mask) == "You are terse."
    assert _decode(tok, p, p.response_mask) == "Blue, mostly."
    assert tok.decode(p.tokens[: p.last_prompt_index + 1]).endswith("Assistant:")
    assert int(p.tokens[0]) == tok.bos_token_id  # the base tokenizer adds BOS, so the transcript starts with it


def test_generation_prompt_when_ending_with_user(tiny_chat, tiny_base):
    for m, end in ((tiny_chat, "<start_of_turn>model\n"), (tiny_base, "Assistant:")):
        p = fs.format_conversation(m, "What is 2+2?")
        assert p.last_prompt_index == len(p) - 1
        assert p.text.endswith(end)
        assert not p.response_mask.any()
        assert m.tokenizer.decode(p.tokens[p.user_mask]) == "What is 2+2?"


def test_explicit_kind_overrides_stage(tiny_chat, conv):
    p = fs.format_conversation(tiny_chat, conv, kind="transcript")
    assert p.kind == "transcript" and "Assistant:" in p.text


def test_chat_format_without_template_is_refused(tiny_base, conv):
    with pytest.raises(ChatTemplateError, match="without a chat template"):
        fs.format_conversation(tiny_base, conv, kind="chat")


@pytest.mark.parametrize(
    "bad, msg",
    [
        ([], "empty conversation"),
        ([{"role": "robot", "content": "x"}], "unknown role"),
        ([{"role": "user", "content": "  "}], "empty"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "alternate"),
        ([{"role": "assistant", "content": "a"}], "start"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "only come first"),
        ([{"content": "a"}], "not a Message"),
    ],
)
def test_bad_conversations(tiny_chat, bad, msg):
    with pytest.raises(PromptError, match=msg):
        fs.format_conversation(tiny_chat, bad)


def test_prompt_longer_than_context(tiny_chat):
    with pytest.raises(PromptError, match="longer than the context"):
        fs.format_conversation(tiny_chat, "x" * 600)


def test_pad_batch_right_pads():
    p1 = fs.FormattedPrompt(
        text="",
        tokens=torch.tensor([5, 6, 7]),
        role_ids=torch.tensor([0, 2, 3]),
        last_prompt_index=1,
        kind="chat",
        messages=[],
        has_response=True,
    )
    p2 = fs.FormattedPrompt(
        text="",
        tokens=torch.tensor([5]),
        role_ids=torch.tensor([0]),
        last_prompt_index=0,
        kind="chat",
        messages=[],
        has_response=False,
    )
    toks, roles, lens = pad_batch([p1, p2], pad_id=0)
    assert toks.tolist() == [[5, 6, 7], [5, 0, 0]]
    assert roles.tolist() == [[0, 2, 3], [0, -1, -1]]
    assert lens.tolist() == [3, 1]
    assert ROLE_IDS["assistant"] == 3
