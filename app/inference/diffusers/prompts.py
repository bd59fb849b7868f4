"""Prompt conditioning as AUTOMATIC1111 computes it, for prompts CLIP cannot take as plain text.

A prompt is parsed (`app.core.prompt_syntax`), tokenized fragment by fragment, and cut into
chunks of 75 tokens: at a BREAK, or — when a chunk fills up — just after its last comma if that
lies within the last 20 tokens, so a phrase is not split across chunks. Each chunk becomes
BOS + 75 tokens (padded) + EOS, is encoded by the text encoder on its own, its output is
multiplied per token by the token's weight and rescaled to its original mean; the chunks'
outputs are concatenated. The prompt and the negative prompt are padded with empty-prompt
chunks to the same length, since diffusers runs both in one batch.

A prompt without syntax and within 75 tokens does not come here: the backend passes it to
diffusers as text, so those results stay bit-identical to a plain diffusers call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from app.core.prompt_syntax import BREAK_WEIGHT, is_plain, parse_prompt_attention
from app.inference.engine import Cancelled, CancelFn

CHUNK_TOKENS = 75
COMMA_BACKTRACK = 20


@dataclass
class Chunk:
    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


def token_count(tokenizer, text: str) -> int:
    return len(tokenizer(text, truncation=False, add_special_tokens=False)["input_ids"])


def needs_chunked_encoding(tokenizer, text: str) -> bool:
    """True when ``text`` has emphasis/BREAK or more than 75 tokens."""
    return not is_plain(text) or token_count(tokenizer, text) > CHUNK_TOKENS


def tokenize_chunks(tokenizer, text: str, convert=None) -> list[Chunk]:
    """``text`` as chunks of exactly 77 token ids (BOS, 75, EOS) with one weight per id.
    ``convert`` rewrites each fragment first (diffusers' ``maybe_convert_prompt``, which expands
    a multi-vector textual-inversion word into its numbered tokens)."""
    parsed = parse_prompt_attention(text)
    texts = [convert(t) if convert else t for t, _ in parsed]
    tokenized = tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]
    comma = tokenizer.get_vocab().get(",</w>")
    chunks: list[Chunk] = []
    chunk = Chunk()
    last_comma = -1

    def close() -> None:
        nonlocal chunk, last_comma
        pad = CHUNK_TOKENS - len(chunk.tokens)
        chunk.tokens = [tokenizer.bos_token_id] + chunk.tokens + [tokenizer.pad_token_id] * pad + [tokenizer.eos_token_id]
        chunk.weights = [1.0] + chunk.weights + [1.0] * (pad + 1)
        chunks.append(chunk)
        chunk, last_comma = Chunk(), -1

    for ids, (fragment, weight) in zip(tokenized, parsed):
        if weight == BREAK_WEIGHT and fragment == "BREAK":
            close()
            continue
        for token in ids:
            if token == comma:
                last_comma = len(chunk.tokens)
            elif len(chunk.tokens) == CHUNK_TOKENS and last_comma != -1 and CHUNK_TOKENS - last_comma <= COMMA_BACKTRACK:
                cut = last_comma + 1
                rest = Chunk(chunk.tokens[cut:], chunk.weights[cut:])
                chunk.tokens, chunk.weights = chunk.tokens[:cut], chunk.weights[:cut]
                close()
                chunk = rest
            if len(chunk.tokens) == CHUNK_TOKENS:
                close()
            chunk.tokens.append(token)
            chunk.weights.append(weight)
    if chunk.tokens or not chunks:
        close()
    return chunks


@torch.no_grad()
def encode_chunks(text_encoder, chunks: list[Chunk], device, cancelled: CancelFn | None = None) -> torch.Tensor:
    """(1, 77·n, dim): each chunk encoded, weighted per token, rescaled to its original mean.
    ``cancelled`` is asked before each chunk: a long prompt's encoding stops when its client goes."""
    outputs = []
    for chunk in chunks:
        if cancelled is not None and cancelled():
            raise Cancelled()
        ids = torch.tensor([chunk.tokens], device=device)
        z = text_encoder(ids)[0]
        weights = torch.tensor(chunk.weights, device=device, dtype=z.dtype).reshape(1, -1, 1)
        original_mean = z.mean()
        z = z * weights
        new_mean = z.mean()
        outputs.append(z * (original_mean / new_mean) if new_mean != 0 else z)
    return torch.cat(outputs, dim=1)


def encode_prompt_pair(pipe, prompt: str, negative: str,
                       cancelled: CancelFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt_embeds, negative_prompt_embeds) for ``pipe``, both the same length; ``cancelled``
    is asked between chunks (`Cancelled`)."""
    convert = (lambda t: pipe.maybe_convert_prompt(t, pipe.tokenizer)) if hasattr(pipe, "maybe_convert_prompt") else None
    device = pipe._execution_device
    pos = tokenize_chunks(pipe.tokenizer, prompt, convert)
    neg = tokenize_chunks(pipe.tokenizer, negative, convert)
    empty = tokenize_chunks(pipe.tokenizer, "")[0]
    n = max(len(pos), len(neg))
    pos += [empty] * (n - len(pos))
    neg += [empty] * (n - len(neg))
    return encode_chunks(pipe.text_encoder, pos, device, cancelled), encode_chunks(pipe.text_encoder, neg, device, cancelled)
