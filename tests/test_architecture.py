"""The layering users rely on: the core imports no heavy extra and nothing above it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "playwright", "langchain", "langchain_core", "langgraph")
ABOVE_THE_CORE = ("optical_memory.apps", "optical_memory.experiments", "optical_memory.agents")


def _loaded_after(statement: str) -> list[str]:
    probe = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "statement",
    [
        "import optical_memory",
        "import optical_memory.memory",
        "from optical_memory import OpticalMemory, DecaySchedule; OpticalMemory(None).close()",
    ],
)
def test_the_core_loads_no_heavy_extra_and_nothing_above_it(statement: str) -> None:
    loaded = _loaded_after(statement)
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY]
    above = [m for m in loaded if m.startswith(ABOVE_THE_CORE)]
    assert heavy == []
    assert above == []


def test_a_memory_adds_plain_dict_messages_without_the_langchain_extra() -> None:
    loaded = _loaded_after(
        "from optical_memory import OpticalMemory; m = OpticalMemory(None); "
        "m.add_messages([{'role': 'user', 'content': 'hi'}]); m.close()"
    )
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []


def test_the_public_names_users_import_keep_working() -> None:
    import optical_memory
    from optical_memory import agents, model, renderers

    for package, names in (
        (
            optical_memory,
            [
                "OpticalMemory",
                "DecaySchedule",
                "Mode",
                "Turn",
                "count_text_tokens",
                "vision_tokens",
            ],
        ),
        (agents, ["OpticalMemoryMiddleware", "wrap", "OpticalChatMessageHistory"]),
        (model, ["DeepSeekOCR", "DeepEncoder"]),
        (renderers, ["PillowRenderer", "HtmlRenderer", "create"]),
    ):
        for name in names:
            assert name in package.__all__
            assert getattr(package, name) is not None


def test_every_module_of_the_package_is_in_a_layer_of_the_import_contract() -> None:
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parent.parent
    contract = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [c["layers"] for c in contract["tool"]["importlinter"]["contracts"]]
    named = {name.strip() for layer in layers for name in layer.split(":")}
    package = root / "optical_memory"
    modules = {
        f"optical_memory.{path.stem}"
        for path in package.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert modules - named == set()  # a new module must take its place in the layers


def test_a_memory_adds_langchain_messages_without_loading_the_agents_layer() -> None:
    pytest.importorskip("langchain_core")
    loaded = _loaded_after(
        "from langchain_core.messages import AIMessage, HumanMessage; "
        "from optical_memory import OpticalMemory; m = OpticalMemory(None); "
        "m.add_messages([HumanMessage('hi'), AIMessage('', tool_calls=["
        "{'name': 'f', 'args': {}, 'id': 'c'}])]); m.close()"
    )
    assert [m for m in loaded if m.startswith(ABOVE_THE_CORE)] == []


def test_no_core_module_names_a_layer_above_it_in_a_string() -> None:
    # The import contract sees import statements; a string (import_module, import_extra,
    # a lazy export) would cross a layer unseen.
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parent.parent / "optical_memory"
    core = [p for p in package.glob("*.py")] + [
        p for d in ("memory", "store", "renderers", "model") for p in (package / d).rglob("*.py")
    ]
    crossing = []
    for path in core:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and node.value.startswith(ABOVE_THE_CORE)
            ):
                crossing.append(f"{path.relative_to(package)}:{node.lineno} {node.value}")
    assert core and crossing == []
