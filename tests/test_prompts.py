"""A1111 prompt syntax: the parser, 75-token chunks, weighted conditioning against a hand
computation, long prompts end to end, and plain prompts still going to diffusers as text."""

import numpy as np
import pytest
import torch

from app.core.prompt_syntax import BREAK_WEIGHT, extract_loras, is_plain, lora_tag, parse_prompt_attention
from app.inference.diffusers.pipeline_inputs import prompt_kwargs
from app.inference.registry import LoadOptions, load_backend
from app.inference.diffusers.prompts import CHUNK_TOKENS, encode_prompt_pair, tokenize_chunks
from test_diffusion import make_request, run


# -- the parser (no torch) -------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("a (red:1.5) car", [("a ", 1.0), ("red", 1.5), (" car", 1.0)]),
    ("(word)", [("word", 1.1)]),
    ("((word))", [("word", 1.1 * 1.1)]),
    ("[word]", [("word", 1 / 1.1)]),
    ("[[word]]", [("word", 1 / 1.1 / 1.1)]),
    ("(a [b] c:2)", [("a ", 2.0), ("b", 2 / 1.1), (" c", 2.0)]),
    (r"\(not\) \[either\]", [("(not) [either]", 1.0)]),
    ("(open", [("open", 1.1)]),
    ("close) ]", [("close) ]", 1.0)]),
    ("time: 12:30", [("time: 12:30", 1.0)]),
    ("a BREAK b", [("a", 1.0), ("BREAK", BREAK_WEIGHT), ("b", 1.0)]),
    ("", [("", 1.0)]),
])
def test_parse_prompt_attention(text, expected):
    got = parse_prompt_attention(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected])


def test_plain_and_lora_tags():
    assert is_plain("a stone wall, photo") and not is_plain("a (stone) wall") and not is_plain("a BREAK b")
    text, tags = extract_loras("a car <lora:film:0.7>, <lora:grain> <hypernet:x:1>")
    assert text == "a car ,  <hypernet:x:1>"  # tags removed, other extra networks left alone
    assert [(t.name, t.weight) for t in tags] == [("film", 0.7), ("grain", 1.0)]
    assert lora_tag("film", 0.7) == "<lora:film:0.7>"
    with pytest.raises(ValueError, match="must be a number"):
        extract_loras("<lora:film:strong>")


# -- chunks ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipe(tiny_inpaint_model):
    return load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu")).pipeline_for("inpaint")


def test_chunks_are_77_tokens_split_at_75_break_and_late_commas(pipe):
    tok = pipe.tokenizer
    one = tokenize_chunks(tok, "a b")
    assert len(one) == 1 and len(one[0].tokens) == 77
    assert one[0].tokens[0] == tok.bos_token_id and one[0].tokens[-1] == tok.eos_token_id
    assert len(tokenize_chunks(tok, "a BREAK b")) == 2
    # 150 one-token words without commas: exactly two full chunks
    long = tokenize_chunks(tok, " ".join(["x"] * 150))
    assert [len(c.tokens) for c in long] == [77, 77]
    assert long[1].tokens[1:76] == [tok.convert_tokens_to_ids("x</w>")] * 75
    # a comma 10 tokens before the end of chunk 1: the chunk ends after the comma
    words = ["x"] * 65 + [","] + ["y"] * 20
    chunks = tokenize_chunks(tok, " ".join(words))
    comma = tok.convert_tokens_to_ids(",</w>")
    assert chunks[0].tokens[66] == comma and chunks[0].tokens[67] == tok.pad_token_id
    assert chunks[1].tokens[1:21] == [tok.convert_tokens_to_ids("y</w>")] * 20


def test_weighted_conditioning_equals_hand_computation(pipe):
    tok, te = pipe.tokenizer, pipe.text_encoder
    ids = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    body = ids("a") + ids("red") + ids("car")
    weights = [1.0] * len(ids("a")) + [1.5] * len(ids("red")) + [1.0] * len(ids("car"))
    full = [tok.bos_token_id] + body + [tok.eos_token_id] * (CHUNK_TOKENS + 1 - len(body))
    w = torch.tensor([1.0] + weights + [1.0] * (CHUNK_TOKENS + 1 - len(body))).reshape(1, -1, 1)
    with torch.no_grad():
        z = te(torch.tensor([full]))[0]
    expected = z * w * (z.mean() / (z * w).mean())

    cond, uncond = encode_prompt_pair(pipe, "a (red:1.5) car", "")
    assert cond.shape == (1, 77, 32) and uncond.shape == cond.shape
    assert torch.allclose(cond, expected, atol=1e-6)
    assert abs(float(cond.mean() - z.mean())) < 1e-6  # the mean is restored
    with torch.no_grad():  # unweighted text gives the encoder's own output
        plain = te(tok("a red car", padding="max_length", max_length=77, return_tensors="pt").input_ids)[0]
    assert torch.allclose(encode_prompt_pair(pipe, "(a red car:1)", "")[0], plain, atol=1e-6)


def test_prompt_and_negative_padded_to_the_same_length(pipe):
    cond, uncond = encode_prompt_pair(pipe, " ".join(["x"] * 100), "blurry")
    assert cond.shape == uncond.shape == (1, 154, 32)
    _, empty = encode_prompt_pair(pipe, "x", "")
    assert torch.equal(uncond[:, 77:], empty)  # the padding chunk is the empty prompt


def test_plain_prompts_stay_text_others_become_embeddings(pipe):
    assert prompt_kwargs(pipe, "a stone wall", "blurry") == {"prompt": "a stone wall", "negative_prompt": "blurry"}
    assert prompt_kwargs(pipe, "a wall <lora:x:1>", "") == {"prompt": "a wall ", "negative_prompt": None}
    for prompt, negative in (("a (stone) wall", ""), ("wall", "[blurry]"), (" ".join(["x"] * 76), "")):
        kw = prompt_kwargs(pipe, prompt, negative)
        assert set(kw) == {"prompt_embeds", "negative_prompt_embeds"}


# -- end to end ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inpaint(tiny_inpaint_model):
    return load_backend(str(tiny_inpaint_model), LoadOptions(device="cpu"))


def test_long_prompt_uses_tokens_past_75(inpaint):
    words = [chr(ord("a") + i % 26) for i in range(200)]  # 200 one-token words
    long_text, first_75 = " ".join(words), " ".join(words[:75])
    kw = dict(steps=2, guidance=5.0, scheduler="DDIM")
    full = run(inpaint, make_request(prompt=long_text, **kw))[0]
    cut = run(inpaint, make_request(prompt=first_75, **kw))[0]
    assert not np.array_equal(full, cut)
    assert np.array_equal(full, run(inpaint, make_request(prompt=long_text, **kw))[0])  # reproducible


def test_emphasis_changes_the_picture_and_weight_one_does_not(inpaint):
    kw = dict(steps=2, guidance=5.0, scheduler="DDIM")
    plain = run(inpaint, make_request(prompt="a stone wall", **kw))[0]
    same = run(inpaint, make_request(prompt="(a stone wall:1.0)", **kw))[0]
    strong = run(inpaint, make_request(prompt="a (stone:1.8) wall", **kw))[0]
    assert np.abs(plain.astype(int) - same.astype(int)).max() <= 1  # same conditioning, other code path
    assert not np.array_equal(plain, strong)


def test_a_long_prompt_stops_encoding_between_chunks_when_cancelled(pipe):
    """A client that goes away while a long prompt is encoded frees the worker at the next chunk
    (a 1 MB prompt once held it for minutes)."""
    from app.inference.engine import Cancelled

    calls = []
    encoder = pipe.text_encoder
    real_forward = encoder.forward

    def counting_forward(*args, **kwargs):
        calls.append(1)
        return real_forward(*args, **kwargs)

    asked = []
    encoder.forward = counting_forward
    try:
        with pytest.raises(Cancelled):
            encode_prompt_pair(pipe, " ".join(["x"] * 600), "", cancelled=lambda: asked.append(1) or len(asked) > 2)
    finally:
        del encoder.forward
    assert len(calls) == 2, "encoding went on past the cancel"  # 9 chunks; stopped before the third
