"""The official DeepSeek-OCR checkpoint: finding it, reading it, and its parameter names.

A checkpoint is a local directory (nothing here downloads): ``config.json``,
``model.safetensors.index.json`` with its shards when present, else every ``*.safetensors`` file
in it. The official release is one bf16 file, ``model-00001-of-000001.safetensors``, holding the
whole model; the encoder reads only the names under :data:`ENCODER_PREFIXES` and leaves the
decoder's alone.

Every official name enters the modules here and nowhere else: :func:`official_to_encoder` for
DeepEncoder, :func:`map_decoder_state_dict` for the decoder, :func:`map_official_state_dict` for
the whole :class:`~optical_memory.model.decoder.DeepSeekOCR`; :func:`encoder_official_name` and
:func:`official_name` go back, for error messages. Loading is strict: :func:`load_state_strict`
raises :class:`CheckpointError` naming every missing, unexpected or mis-shaped tensor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

#: Where users get the weights (the error messages say so; nothing downloads them here).
OFFICIAL_REPO = "deepseek-ai/DeepSeek-OCR"
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


# --- the decoder's names ---------------------------------------------------------------------

_EXPERT = re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight")
_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)")
_DECODER_TOP = {
    "model.embed_tokens.weight": "language_model.embed_tokens.weight",
    "model.norm.weight": "language_model.norm.weight",
    "lm_head.weight": "lm_head.weight",
}


def map_decoder_state_dict(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official decoder names → the decoder module's (``language_model.*``, ``lm_head.*``).

    ``model.layers.N.mlp.experts.E.{gate,up,down}_proj.weight [896, 1280]`` / ``[1280, 896]``
    are stacked into transformers' ``language_model.layers.N.mlp.experts.gate_up_proj
    [E, 2*896, 1280]`` (each expert's gate rows, then its up rows) and ``down_proj
    [E, 1280, 896]``; every other name keeps its tail. Encoder names must not be passed here.

    Raises :class:`CheckpointError` naming an unknown tensor or a missing expert tensor.
    """
    mapped: dict[str, torch.Tensor] = {}
    experts: dict[int, dict[int, dict[str, torch.Tensor]]] = {}
    unknown: list[str] = []
    for name, tensor in tensors.items():
        if name in _DECODER_TOP:
            mapped[_DECODER_TOP[name]] = tensor
        elif match := _EXPERT.fullmatch(name):
            layer, expert, kind = int(match[1]), int(match[2]), match[3]
            experts.setdefault(layer, {}).setdefault(expert, {})[kind] = tensor
        elif match := _LAYER.fullmatch(name):
            mapped[f"language_model.layers.{match[1]}.{match[2]}"] = tensor
        else:
            unknown.append(name)
    if unknown:
        raise CheckpointError(
            f"{_listing('unexpected decoder', sorted(unknown))}: this is not a DeepSeek-OCR "
            "checkpoint, or a newer layout than this version of optical-memory reads"
        )
    for layer, by_expert in sorted(experts.items()):
        count = max(by_expert) + 1
        gate_up, down = [], []
        for expert in range(count):
            parts = by_expert.get(expert, {})
            for kind in ("gate", "up", "down"):
                if kind not in parts:
                    raise CheckpointError(
                        f"missing tensor model.layers.{layer}.mlp.experts.{expert}.{kind}_proj"
                        ".weight: the checkpoint is incomplete; download it again"
                    )
            gate_up.append(torch.cat([parts["gate"], parts["up"]], dim=0))
            down.append(parts["down"])
        prefix = f"language_model.layers.{layer}.mlp.experts"
        mapped[f"{prefix}.gate_up_proj"] = torch.stack(gate_up)
        mapped[f"{prefix}.down_proj"] = torch.stack(down)
    return mapped


def map_official_state_dict(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The whole official checkpoint → ``DeepSeekOCR``'s state dict.

    Encoder names (under :data:`ENCODER_PREFIXES`) go through :func:`official_to_encoder` and
    land under ``encoder.``; the decoder's through :func:`map_decoder_state_dict`.
    """
    mapped = {f"encoder.{name}": t for name, t in official_to_encoder(tensors).items()}
    decoder = {name: t for name, t in tensors.items() if not name.startswith(ENCODER_PREFIXES)}
    mapped.update(map_decoder_state_dict(decoder))
    return mapped


def official_name(module_name: str) -> str:
    """The official checkpoint name of one ``DeepSeekOCR`` state-dict entry.

    Stacked experts name their layer's per-expert tensors with ``E``
    (``model.layers.N.mlp.experts.E.{gate,up}_proj.weight``); used by error messages.
    """
    if module_name.startswith("encoder."):
        return encoder_official_name(module_name.removeprefix("encoder."))
    for official, ours in _DECODER_TOP.items():
        if module_name == ours:
            return official
    name = module_name.removeprefix("language_model.")
    name = name.replace("mlp.experts.gate_up_proj", "mlp.experts.E.{gate,up}_proj.weight")
    name = name.replace("mlp.experts.down_proj", "mlp.experts.E.down_proj.weight")
    return f"model.{name}"


def read_language_config(directory: Path) -> dict[str, Any]:
    """The decoder's settings from ``directory/config.json`` (its ``language_config``)."""
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise CheckpointError(
            f"no config.json in {directory}: pass the directory that holds the DeepSeek-OCR "
            f"checkpoint ({OFFICIAL_REPO} on the Hugging Face Hub)"
        )
    config = json.loads(config_file.read_text(encoding="utf-8"))
    language = config.get("language_config")
    if not isinstance(language, dict):
        # Older exports put the decoder's keys at the top level only.
        language = config
    return dict(language)


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
