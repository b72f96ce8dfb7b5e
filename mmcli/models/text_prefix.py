"""The text tower run on the tokens up to the end of the text only, for export (torch inside).

CLIP's text transformer is causal (each position attends to itself and those before it) and pools
the features at the end-of-text token (the highest id, so ``argmax`` of the ids). Positions after
that token change nothing in the result; a query of 6 tokens need not pay for 77. ``prefix_module``
builds a module with a sequence axis of any length: position embeddings and the causal mask are
cut to the input's length, and attention is written with shapes taken from its input (torch's
``multi_head_attention_forward`` traces the length as a constant). Only models of the shape this
knows (open_clip's ``CLIP`` or a ``TextTransformer``, a causal mask, ``argmax`` pooling, no class
token, no padding mask, ``nn.MultiheadAttention`` blocks) qualify; the exporter also checks the
result against ``encode_text`` on full-length input and keeps the full length when they differ.
"""

from __future__ import annotations

import copy
from typing import Any


def _text_parts(model: Any) -> Any | None:
    """What holds the text tower's parts (token_embedding, positional_embedding, transformer, ln_final,
    attn_mask, text_projection), if this is a causal, argmax-pooled open_clip text tower; else None."""
    import torch

    owner = model
    pool = getattr(model, "text_pool_type", None)
    text = getattr(model, "text", None)
    if text is not None and type(text).__name__ == "TextTransformer":
        owner, pool = text, getattr(text, "pool_type", None)
        if getattr(text, "cls_emb", None) is not None or getattr(text, "use_pad_mask", False):
            return None
        if getattr(text, "output_tokens", False):
            return None
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "attn_mask")
    if pool != "argmax" or any(getattr(owner, name, None) is None for name in needed):
        return None
    mask = owner.attn_mask
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        return None
    above = torch.ones(mask.shape, dtype=torch.bool).triu(1)
    if not (bool(torch.isneginf(mask[above]).all()) and bool((mask[~above] == 0).all())):
        return None  # not open_clip's causal mask: -inf above the diagonal, 0 on and below
    blocks = getattr(owner.transformer, "resblocks", None)
    if blocks is None or not all(isinstance(getattr(b, "attn", None), torch.nn.MultiheadAttention) for b in blocks):
        return None
    for block in blocks:
        attn = block.attn
        if attn.in_proj_weight is None or attn.bias_k is not None or attn.add_zero_attn:
            return None
    return owner


def prefix_module(model: Any) -> Any | None:
    """A module ``ids (n, L) -> features (n, D)`` for any L up to the context length, or None when
    ``model``'s text tower is not one this knows to be causal with end-of-text pooling."""
    import torch

    owner = _text_parts(model)
    if owner is None:
        return None

    class Attention(torch.nn.Module):
        """``nn.MultiheadAttention`` (packed input projection, no extra keys) with traced shapes."""

        def __init__(self, mha: torch.nn.MultiheadAttention) -> None:
            super().__init__()
            self.mha = mha

        def forward(self, q_x: Any, *_: Any, need_weights: bool = False, attn_mask: Any = None) -> Any:
            mha = self.mha
            x = q_x if mha.batch_first else q_x.transpose(0, 1)
            heads, width = mha.num_heads, mha.embed_dim
            q, k, v = torch.nn.functional.linear(x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
            shape = (x.shape[0], x.shape[1], heads, width // heads)
            q, k, v = (t.reshape(shape).transpose(1, 2) for t in (q, k, v))
            weights = (q * (width // heads) ** -0.5) @ k.transpose(-1, -2)
            if attn_mask is not None:
                weights = weights + attn_mask
            out = (weights.softmax(-1) @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], width)
            out = mha.out_proj(out)
            return (out if mha.batch_first else out.transpose(0, 1)), None

    def twin(module: torch.nn.Module, **children: torch.nn.Module) -> torch.nn.Module:
        """A shallow copy of ``module`` with some children replaced (the weights are shared, not copied)."""
        copied = copy.copy(module)
        copied._modules = {**module._modules, **children}
        return copied

    blocks = torch.nn.ModuleList(twin(b, attn=Attention(b.attn)) for b in owner.transformer.resblocks)
    transformer = twin(owner.transformer, resblocks=blocks)

    class Prefix(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.owner = owner
            self.transformer = transformer

        def forward(self, ids: Any) -> Any:
            o = self.owner
            length = ids.shape[1]
            cast = o.transformer.get_cast_dtype() if hasattr(o.transformer, "get_cast_dtype") else torch.float32
            x = o.token_embedding(ids).to(cast) + o.positional_embedding[:length].to(cast)
            x = self.transformer(x, attn_mask=o.attn_mask[:length, :length])
            x = o.ln_final(x)
            x = x[torch.arange(x.shape[0]), ids.argmax(dim=-1)]
            projection = o.text_projection
            if projection is None:
                return x
            return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection

    return Prefix().eval()
