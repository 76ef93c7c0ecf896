"""Schedules on the development conversations: memory per token, the default's choice, batches.

    .venv/bin/python benchmarks/schedules.py --data locomo10.json [--batch 8]

Prints three markdown tables (see :mod:`optical_memory.experiments.schedules` for every
definition):

1. candidate tiers without a budget: tokens in context at each conversation's end,
   compression (history text tokens / tokens in context, all conversations; and the worst
   one), expected legibility of category 1-4 evidence turns; the first row that meets 6x is
   the one the default should be;
2. the curve: the earlier planning (oldest page demoted first), the knapsack over the earlier
   tiers, and the default, under budgets of history / 1.5 ... / 12, beside full text and the
   last-40-turns window;
3. batches: cache-breaking calls and tokens re-written per page event against the tokens and
   legibility they cost.

Pages are laid out, never drawn: the run takes seconds.
"""

from __future__ import annotations

import argparse
import time

from optical_memory.experiments.schedules import (
    batch_table,
    choose_tiers,
    curve,
    curve_table,
    default_schedules,
    load,
    tiers_name,
)
from optical_memory.schedule import DecaySchedule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a LoCoMo file (the development split)")
    parser.add_argument("--batch", type=int, default=DecaySchedule().batch)
    args = parser.parse_args()
    started = time.perf_counter()
    replays = load(args.data)
    history = sum(r.history_tokens for r in replays)
    print(f"{len(replays)} conversations, {history:,} text tokens, batch {args.batch}\n")

    print("| tiers | tokens in context | compression | worst conversation | legibility | >= 6x |")
    print("|---|---|---|---|---|---|")
    for tiers, row, meets in choose_tiers(replays, args.batch):
        print(
            f"| {tiers_name(tiers)} | {row['tokens']:,.0f} | {row['compression']:.2f}x "
            f"| {row['worst_compression']:.2f}x | {row['legibility']:.2%} "
            f"| {'yes' if meets else 'no'} |"
        )
    print(f"\ndefault: {tiers_name(DecaySchedule().tiers)}, batch {DecaySchedule().batch}\n")
    print("\n".join(curve_table(curve(replays, default_schedules()))))
    print()
    print("\n".join(batch_table(replays)))
    print(f"\n{time.perf_counter() - started:.0f} s")
    for r in replays:
        r.memory.close()


if __name__ == "__main__":
    main()
