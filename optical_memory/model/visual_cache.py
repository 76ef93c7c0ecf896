"""Visual tokens of memory pages, encoded once per (page content, mode, encoder) and stored.

A memory page's pixels at a mode never change (its content is fixed when it is packed, and
the renderer's settings are part of the key), so neither do its visual tokens under one
encoder. :class:`VisualTokenCache` keeps them in a store's blobs (``Store.get_blob`` /
``put_blob``, namespace ``"visual-tokens"``) keyed by the page's content hash, its mode, the
renderer settings and :func:`encoder_identity` (encoder class, sizes, dtype and a SHA-256 of
every weight): another encoder, other weights, or the same weights in another dtype never read
a stale entry. Put it in front of the local model::

    model.page_encoder = VisualTokenCache(memory.store, model.encoder)
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from optical_memory.model.prompt import encode_by_mode
from optical_memory.modes import Mode
from optical_memory.store import Store
from optical_memory.views import PageImage

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


class VisualTokenCache:
    """Pages → visual tokens ``[n, hidden]`` from ``encoder``, encoded at most once per (page
    content, mode, renderer settings, encoder identity) and kept in ``store``'s blobs.

    ``store`` is a :class:`~optical_memory.store.Store` (``memory.store``); an object holding
    one as ``.store`` (an ``OpticalMemory``) is accepted too. Pages without a content hash (an
    image from a chat message) are encoded every time, uncached. ``encodes`` counts pages run
    through the encoder.
    """

    def __init__(self, store: Store | Any, encoder: nn.Module | None) -> None:
        blobs = store if isinstance(store, Store) else getattr(store, "store", None)
        if not isinstance(blobs, Store):
            raise TypeError(
                f"VisualTokenCache keeps tokens in a Store, not in a {type(store).__name__}: "
                "pass memory.store (or the OpticalMemory itself)"
            )
        if encoder is None or not callable(getattr(encoder, "encode", None)):
            raise TypeError(
                f"VisualTokenCache needs an encoder with .encode(images, mode), not a "
                f"{type(encoder).__name__}: pass model.encoder or a DeepEncoder"
            )
        self.store: Store = blobs
        self.encoder: nn.Module = encoder
        self.encodes = 0

    def __call__(self, pages: Sequence[PageImage]) -> list[torch.Tensor]:
        identity = encoder_identity(self.encoder)
        found: dict[int, torch.Tensor] = {}
        for index, page in enumerate(pages):
            key = _key(page, identity)
            data = None if key is None else self.store.get_blob(NAMESPACE, *key)
            if data is not None:
                found[index] = load_tensors(data)["tokens"]
        missing = [i for i in range(len(pages)) if i not in found]
        if missing:
            encode = self.encoder.encode
            encoded = encode_by_mode(encode, [pages[i] for i in missing])  # type: ignore[arg-type]
            self.encodes += len(missing)
            for index, tokens in zip(missing, encoded, strict=True):
                key = _key(pages[index], identity)
                if key is not None:
                    data = save_tensors({"tokens": tokens.detach().cpu().contiguous()})
                    self.store.put_blob(NAMESPACE, *key, data)
                found[index] = tokens
        device = getattr(self.encoder, "device", None)
        return [found[i].to(device=device) for i in range(len(pages))]


def _key(page: PageImage, identity: str) -> tuple[str, str, str] | None:
    """``(content hash, mode, renderer settings | encoder identity)`` of a memory page (it has
    ``content_hash`` and ``renderer_key``), or ``None`` for any other page: not cached."""
    content_hash = getattr(page, "content_hash", None)
    renderer_key = getattr(page, "renderer_key", None)
    if not isinstance(content_hash, str) or not isinstance(renderer_key, str):
        return None
    return content_hash, Mode.parse(page.mode).value, f"{renderer_key}|{identity}"
