"""The official DeepSeek-OCR checkpoint: finding it, reading it, and its parameter names.

A checkpoint is a local directory (nothing here downloads): ``model.safetensors.index.json``
with its shards when present, else every ``*.safetensors`` file in it. The official release is
one bf16 file, ``model-00001-of-000001.safetensors``, with 2,710 tensors for the whole model;
the encoder reads only the names under :data:`ENCODER_PREFIXES` and leaves the decoder's alone.

Official names enter the modules through :func:`official_to_encoder` only (and leave through
its inverse :func:`encoder_to_official`, which tests use to write checkpoints). Loading is
strict: :func:`load_state_strict` raises :class:`CheckpointError` naming every missing,
unexpected or mis-shaped tensor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

#: Where users get the weights (the error messages say so; nothing downloads them here).
OFFICIAL_REPO = "deepseek-ai/DeepSeek-OCR"
#: The file name of the official single-file release, used by :func:`save_official`.
OFFICIAL_WEIGHTS = "model-00001-of-000001.safetensors"
INDEX_FILE = "model.safetensors.index.json"
#: Official name prefixes of DeepEncoder's tensors; everything else is the decoder's.
ENCODER_PREFIXES: tuple[str, ...] = (
    "model.sam_model.",
    "model.vision_model.",
    "model.projector.",
    "model.image_newline",
    "model.view_seperator",
)


class CheckpointError(RuntimeError):
    """The checkpoint directory is missing, unreadable, or does not fit the model."""


def download_hint(directory: Path | str) -> str:
    """What to do when ``directory`` holds no weights."""
    return (
        f"download {OFFICIAL_REPO} into that directory "
        f"(e.g. `hf download {OFFICIAL_REPO} --local-dir {directory}`) and pass it"
    )


# --- finding and reading the weights ---------------------------------------------------------


def find_weight_files(path: Path | str) -> list[Path]:
    """The safetensors files of the checkpoint in directory ``path``.

    Through ``model.safetensors.index.json`` when present (its ``weight_map`` names the shards,
    each of which must exist), else every ``*.safetensors`` file, sorted by name.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is not a directory: {download_hint(directory)}")
    index = directory / INDEX_FILE
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(
                f"{index} is not a safetensors index (no readable weight_map: {error}): "
                f"restore it from {OFFICIAL_REPO} or delete it to read every *.safetensors file"
            ) from error
        files = [directory / name for name in sorted(set(weight_map.values()))]
        absent = [file.name for file in files if not file.exists()]
        if absent:
            raise CheckpointError(
                f"{index} names shards that are not in {directory}: {', '.join(absent)}; "
                f"download them from {OFFICIAL_REPO}"
            )
        return files
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        hint = download_hint(directory)
        raise CheckpointError(f"no *.safetensors weights in {directory}: {hint}")
    return files


def load_official_state_dict(
    path: Path | str, prefixes: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """Tensors of the checkpoint in directory ``path`` under their official names, on the CPU.

    Only names starting with one of ``prefixes`` are read (all when ``None``), so the encoder
    never materializes the decoder's 3 billion parameters. A damaged file or a name stored
    twice raises :class:`CheckpointError`.
    """
    tensors: dict[str, torch.Tensor] = {}
    origin: dict[str, Path] = {}
    for file in find_weight_files(path):
        try:
            with safe_open(str(file), framework="pt", device="cpu") as reader:
                for name in reader.keys():  # noqa: SIM118 (safe_open is not a Mapping)
                    if prefixes is not None and not name.startswith(tuple(prefixes)):
                        continue
                    if name in tensors:
                        raise CheckpointError(
                            f"tensor {name} is stored in both {origin[name]} and {file}: "
                            f"keep one copy of the weights in {Path(path)}"
                        )
                    tensors[name] = reader.get_tensor(name)
                    origin[name] = file
        except (SafetensorError, OSError) as error:
            raise CheckpointError(
                f"cannot read {file}: {error}; the file is damaged or incomplete, "
                f"download it again from {OFFICIAL_REPO}"
            ) from error
    return tensors


def save_official(
    directory: Path | str, tensors: Mapping[str, torch.Tensor], shards: int = 1
) -> list[Path]:
    """Write ``tensors`` (official names) as a checkpoint directory; returns the files written.

    One shard gives the official ``model-00001-of-000001.safetensors``; more give
    ``model-0000i-of-0000n.safetensors`` plus ``model.safetensors.index.json``. Tensors keep
    their dtype. Tests build checkpoints this way, from ``encoder_to_official(...)`` and the
    decoder's equivalent.
    """
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = sorted(tensors)
    file_names = (
        [OFFICIAL_WEIGHTS]
        if shards == 1
        else [f"model-{i:05d}-of-{shards:05d}.safetensors" for i in range(1, shards + 1)]
    )
    files, weight_map = [], {}
    for shard, file_name in enumerate(file_names):
        file = directory / file_name
        part = {n: tensors[n].detach().to("cpu").contiguous() for n in names[shard::shards]}
        save_file(part, str(file), metadata={"format": "pt"})
        files.append(file)
        weight_map.update(dict.fromkeys(part, file_name))
    if shards > 1:
        index = {"metadata": {}, "weight_map": weight_map}
        (directory / INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True))
    return files


# --- official names <-> module names ---------------------------------------------------------

#: (official prefix, module prefix); ``{n}`` is a layer number. First match wins, both ways.
_ENCODER_RENAMES: tuple[tuple[str, str], ...] = (
    # SAM-base: transformers' DeepseekOcr2SamVisionEncoder names.
    ("model.sam_model.blocks.{n}.norm1.", "sam.layers.{n}.layer_norm1."),
    ("model.sam_model.blocks.{n}.norm2.", "sam.layers.{n}.layer_norm2."),
    ("model.sam_model.blocks.{n}.", "sam.layers.{n}."),
    ("model.sam_model.patch_embed.proj.", "sam.patch_embed.projection."),
    ("model.sam_model.neck.0.", "sam.neck.conv1."),
    ("model.sam_model.neck.1.", "sam.neck.layer_norm1."),
    ("model.sam_model.neck.2.", "sam.neck.conv2."),
    ("model.sam_model.neck.3.", "sam.neck.layer_norm2."),
    ("model.sam_model.net_2.", "sam.proj.conv1."),
    ("model.sam_model.net_3.", "sam.proj.conv2."),
    ("model.sam_model.", "sam."),
    # CLIP-L: transformers' CLIPEncoder layers; embeddings and pre_layrnorm keep their names.
    ("model.vision_model.transformer.layers.{n}.", "clip.encoder.layers.{n}."),
    ("model.vision_model.", "clip."),
    ("model.projector.layers.", "projector."),
    ("model.image_newline", "image_newline"),
    ("model.view_seperator", "view_seperator"),
)


def _compile(prefix: str) -> re.Pattern[str]:
    return re.compile(re.escape(prefix).replace(r"\{n\}", r"(\d+)"))


_TO_MODULE = [(_compile(official), module) for official, module in _ENCODER_RENAMES]
_TO_OFFICIAL = [(_compile(module), official) for official, module in _ENCODER_RENAMES]
#: The official CLIP attention keeps q, k and v stacked in one projection (3·1024 rows, q
#: first, as ``qkv.view(..., 3, heads, head_dim)`` splits them); transformers keeps three.
_FUSED_QKV = re.compile(r"^(clip\.encoder\.layers\.\d+\.self_attn\.)qkv_proj\.(weight|bias)$")
_SPLIT_QKV = re.compile(r"^(clip\.encoder\.layers\.\d+\.self_attn\.)([qkv])_proj\.(weight|bias)$")


def _rename(name: str, rules: Iterable[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, replacement in rules:
        match = pattern.match(name)
        if match:
            for number in match.groups():
                replacement = replacement.replace("{n}", number, 1)
            return replacement + name[match.end() :]
    return None


def encoder_official_name(module_name: str) -> str:
    """The official name of one DeepEncoder parameter (q/k/v name their fused ``qkv_proj``)."""
    split = _SPLIT_QKV.match(module_name)
    if split:
        module_name = f"{split.group(1)}qkv_proj.{split.group(3)}"
    official = _rename(module_name, _TO_OFFICIAL)
    return module_name if official is None else official


def official_to_encoder(official: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map official encoder tensors onto DeepEncoder's parameter names.

    The one conversion from the checkpoint's names (``model.sam_model.*``,
    ``model.vision_model.*`` including the unused ``embeddings.patch_embedding``,
    ``model.projector.layers.*``, ``model.image_newline``, ``model.view_seperator``) to the
    modules; CLIP's fused ``qkv_proj`` is split in three along its rows. Names outside
    :data:`ENCODER_PREFIXES` are ignored (the decoder's); names inside that the encoder does not
    know pass through renamed, for :func:`load_state_strict` to report as unexpected.
    """
    state: dict[str, torch.Tensor] = {}
    for name, tensor in official.items():
        if not name.startswith(ENCODER_PREFIXES):
            continue
        module_name = _rename(name, _TO_MODULE)
        assert module_name is not None  # every encoder prefix has a catch-all rule
        fused = _FUSED_QKV.match(module_name)
        if fused:
            # Rows not divisible by 3 cannot be split: each part gets the whole tensor, so that
            # the strict check reports it as mis-shaped under its official name.
            rows = tensor.shape[0]
            chunks = tensor.chunk(3, dim=0) if rows % 3 == 0 else (tensor,) * 3
            for part, chunk in zip("qkv", chunks, strict=True):
                state[f"{fused.group(1)}{part}_proj.{fused.group(2)}"] = chunk
        else:
            state[module_name] = tensor
    return state


def encoder_to_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`official_to_encoder`: DeepEncoder's state under official names."""
    official: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        split = _SPLIT_QKV.match(name)
        if split is None:
            official[encoder_official_name(name)] = tensor
        elif split.group(2) == "q":
            prefix, kind = split.group(1), split.group(3)
            parts = [state[f"{prefix}{part}_proj.{kind}"] for part in "qkv"]
            official[encoder_official_name(name)] = torch.cat(parts, dim=0)
    return official


# --- strict loading --------------------------------------------------------------------------


def load_state_strict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: Path | str,
    official_name: Callable[[str], str] = encoder_official_name,
) -> None:
    """Load ``state`` into ``module`` (which may live on the meta device) or raise.

    Every parameter and persistent buffer must be present with its exact shape, and nothing
    else may be; otherwise :class:`CheckpointError` lists the offenders under their official
    names (through ``official_name``) and says where they came from. Tensors are assigned as
    given (dtype and device included): convert them before calling.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        name
        for name in set(expected) & set(state)
        if tuple(expected[name].shape) != tuple(state[name].shape)
    )
    if missing or unexpected or misshaped:
        problems = []
        if missing:
            problems.append(_listing("missing", [official_name(n) for n in missing]))
        if unexpected:
            problems.append(_listing("unexpected", [official_name(n) for n in unexpected]))
        if misshaped:
            shapes = [
                f"{official_name(n)} (checkpoint {tuple(state[n].shape)}, "
                f"model {tuple(expected[n].shape)})"
                for n in misshaped
            ]
            problems.append(_listing("mis-shaped", shapes))
        raise CheckpointError(
            f"the checkpoint in {source} does not fit {type(module).__name__}: "
            + "; ".join(problems)
            + f". Pass a directory holding an unmodified {OFFICIAL_REPO} checkpoint."
        )
    module.load_state_dict(dict(state), strict=True, assign=True)


def _listing(kind: str, names: list[str], limit: int = 8) -> str:
    names = list(dict.fromkeys(names))  # q, k and v share one official name
    shown = ", ".join(names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{len(names)} {kind} tensor(s): {shown}{more}"
