"""``optical-memory image-costs show|reset``: the image costs learnt from a model's bills.

    optical-memory image-costs show [--db PATH|postgresql://...]
    optical-memory image-costs reset [--model NAME] [--target TARGET] [--db ...]

``show`` prints each (model, target) table: bills in its window and the learnt cost per image
size; ``reset`` forgets them (all, or those of ``--model``/``--target``), so requests are
priced by the published formulas again until new bills come in
(:mod:`optical_memory.agents.calibration`).
"""

from __future__ import annotations

import argparse
from typing import Any

from optical_memory.apps.threads import add_store_command

HELP = "show or reset the image costs learnt from model bills"
DESCRIPTION = "Image costs learnt from each model's bills (kept in the memory store)."
#: The subcommands, with their help.
ACTIONS = {
    "show": "learnt costs per model, target and image size",
    "reset": "forget learnt costs: back to the formulas",
}


def add_parser(commands: Any) -> None:
    """Add ``image-costs show|reset`` to the CLI's subparsers."""
    _, actions = add_store_command(commands, "image-costs", HELP, DESCRIPTION, ACTIONS)
    actions["reset"].add_argument("--model", help="only this model (as named in the usage records)")
    actions["reset"].add_argument("--target", help="only this target")
    actions["show"].set_defaults(run=show_command)
    actions["reset"].set_defaults(run=reset_command)


def show_command(args: argparse.Namespace) -> int:
    from optical_memory.agents.calibration import ImageCostTable, learnt_tables
    from optical_memory.store import open_store

    with open_store(args.db) as store:
        tables = learnt_tables(store)
        if not tables:
            print("no learnt costs: images are priced by the published formulas")
        for model, target in tables:
            table = ImageCostTable(store, target, model)
            fit = table.fit
            print(f"{model} ({target}): {table.bills} bills")
            for key, cost in sorted(fit.costs.items()):
                print(f"  {key}: {cost:.0f} tokens")
    return 0


def reset_command(args: argparse.Namespace) -> int:
    from optical_memory.agents.calibration import reset_costs
    from optical_memory.store import open_store

    with open_store(args.db) as store:
        count = reset_costs(store, args.model, args.target)
    print(f"reset {count} learnt cost table{'s' if count != 1 else ''}")
    return 0
