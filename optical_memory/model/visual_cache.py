"""Visual tokens of memory pages, encoded once per (page content, mode, encoder) and stored.

A memory page's pixels at a mode never change (its content is fixed when it is packed, and
the renderer's settings are part of the key), so neither do its visual tokens under one
encoder. :class:`VisualTokenCache` keeps them in the memory's store through
``OpticalMemory.page_blob`` under the namespace ``"visual-tokens"``, keyed by the page's content
hash, its mode, the renderer settings and :func:`encoder_identity` (encoder class, sizes, dtype
and a SHA-256 of every weight): another encoder, other weights, or the same weights in another
dtype never read a stale entry.

``OpticalMemory(..., encoder=DeepEncoder(...))`` builds one; ``memory.visual_tokens(pages)``
uses it, and ``DeepSeekOCR.page_encoder = memory.visual_tokens`` puts it in front of the model.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from optical_memory.model.decoder import encode_by_mode

if TYPE_CHECKING:
    from optical_memory.memory import MemoryPage, OpticalMemory

#: Store namespace of the cached tokens.
NAMESPACE = "visual-tokens"

# Per encoder instance: (parameter versions and addresses) -> identity, so that weights changed
# in place or replaced are hashed again, and unchanged ones are hashed once.
_IDENTITIES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], str]] = (
    weakref.WeakKeyDictionary()
)


def encoder_identity(encoder: nn.Module) -> str:
    """A name for exactly this encoder: class, config, dtype and a hash of all its tensors."""
    tensors = list(encoder.state_dict().values())
    state = tuple((t._version, t.data_ptr(), t.dtype, t.device) for t in tensors)
    known = _IDENTITIES.get(encoder)
    if known is not None and known[0] == state:
        return known[1]
    digest = hashlib.sha256()
    digest.update(f"{type(encoder).__module__}.{type(encoder).__qualname__}".encode())
    digest.update(repr(getattr(encoder, "config", None)).encode())
    for name, tensor in encoder.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        digest.update(raw.numpy().tobytes())
    identity = f"{type(encoder).__qualname__}-{digest.hexdigest()[:32]}"
    _IDENTITIES[encoder] = (state, identity)
    return identity


class _NotCached(Exception):
    pass


class VisualTokenCache:
    """``memory``'s pages → visual tokens ``[n, hidden]`` from ``encoder``, encoded at most once
    per (page content, mode, renderer settings, encoder identity), in the memory's store.

    ``encodes`` counts pages actually run through the encoder (misses).
    """

    def __init__(self, memory: OpticalMemory, encoder: nn.Module) -> None:
        self.memory = memory
        self.encoder = encoder
        self.encodes = 0

    def __call__(self, pages: Sequence[MemoryPage]) -> list[torch.Tensor]:
        identity = encoder_identity(self.encoder)
        found: dict[int, torch.Tensor] = {}
        for index, page in enumerate(pages):
            try:
                found[index] = _tokens(self.memory.page_blob(page, NAMESPACE, identity, _miss))
            except _NotCached:
                continue
        missing = [i for i in range(len(pages)) if i not in found]
        if missing:
            encoded = encode_by_mode(self.encoder.encode, [pages[i] for i in missing])  # type: ignore[arg-type]
            self.encodes += len(missing)
            for index, tokens in zip(missing, encoded, strict=True):
                data = save_tensors({"tokens": tokens.detach().cpu().contiguous()})
                self.memory.page_blob(pages[index], NAMESPACE, identity, _Stored(data))
                found[index] = tokens
        device = getattr(self.encoder, "device", None)
        return [found[i].to(device=device) for i in range(len(pages))]


class _Stored:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def __call__(self, page: MemoryPage) -> bytes:
        return self.data


def _miss(page: MemoryPage) -> bytes:
    raise _NotCached


def _tokens(data: bytes) -> torch.Tensor:
    return load_tensors(data)["tokens"]
