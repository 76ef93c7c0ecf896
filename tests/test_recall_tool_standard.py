"""LangChain's conformance suite for tools (``langchain-tests``' ``ToolsUnitTests``) against the
``recall_memory`` tool, over a memory with pages."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain_tests")

from langchain_core.tools import BaseTool
from langchain_tests.unit_tests import ToolsUnitTests

from optical_memory import OpticalMemory
from optical_memory.agents import recall_memory_tool


def _memory() -> OpticalMemory:
    memory = OpticalMemory(None)
    for n in range(40):
        memory.add("user", f"Note {n}: the lighthouse lamp was cleaned on day {n}. " * 4)
    return memory


class TestRecallMemoryTool(ToolsUnitTests):
    @property
    def tool_constructor(self) -> BaseTool:
        return recall_memory_tool(_memory())

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"page": 1}
