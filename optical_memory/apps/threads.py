"""``optical-memory threads list|export|import|delete``: a store's threads from the shell.

    optical-memory threads list [--db PATH|postgresql://...]
    optical-memory threads export THREAD [--out FILE]      # JSON on stdout without --out
    optical-memory threads import FILE --thread THREAD   # creates a new SQLite --db file
    optical-memory threads delete THREAD --yes [--vacuum-full]

Export writes :meth:`~optical_memory.memory.OpticalMemory.export`'s JSON; import restores it
into an empty thread (all or nothing); delete removes the thread's turns, pages, private renders
and every blob it owns for good.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from optical_memory.apps import CommandError

#: The memory file ``chat``, ``serve`` and ``threads`` share unless ``--db`` or
#: ``$OPTICAL_MEMORY_DB`` says.
DEFAULT_DB = "optical-memory.db"
#: Largest export file ``threads import`` reads (a thread's images travel inside it).
MAX_EXPORT_BYTES = 2**30


def store_location(value: str) -> str | Path:
    """A ``--db`` value: a ``postgresql://`` address as given, anything else a file path."""
    from optical_memory.store import is_postgres_address

    if is_postgres_address(value):
        return value
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", value)
    if scheme:
        raise argparse.ArgumentTypeError(
            f"unsupported store address {value!r}: {scheme.group(1)}:// is not a memory store; "
            "give an SQLite file path or a postgresql:// address"
        )
    return Path(value)


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    """``--db``: the memory store every command that opens one takes."""
    parser.add_argument(
        "--db",
        type=store_location,
        default=os.environ.get("OPTICAL_MEMORY_DB") or DEFAULT_DB,  # argparse applies `type`
        help=f"SQLite memory file or postgresql:// address (default: $OPTICAL_MEMORY_DB or "
        f"./{DEFAULT_DB})",
    )


def add_store_command(
    commands: Any, name: str, help: str, description: str, actions: dict[str, str]
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """Add a command that acts on a memory store: one subcommand per ``actions`` entry (name →
    help), each taking ``--db``. Returns the command's parser and its subcommands' parsers."""
    command = commands.add_parser(name, help=help, description=description)
    subparsers = command.add_subparsers(dest="action", required=True, metavar="ACTION")
    parsers = {action: subparsers.add_parser(action, help=text) for action, text in actions.items()}
    for sub in parsers.values():
        add_db_argument(sub)
    return command, parsers


def add_parser(commands: Any) -> None:
    """Add ``threads`` and its four subcommands to the CLI's subparsers."""
    threads, parsers = add_store_command(
        commands,
        "threads",
        help="list, export, import or delete the threads of a memory store",
        description="The threads of a memory store (an SQLite file or a PostgreSQL database).",
        actions={
            "list": "every thread with its turn count",
            "export": "a thread as JSON (turns, timestamps, pages)",
            "import": "restore an export into a new thread",
            "delete": "delete a thread and its page images",
        },
    )
    parsers["export"].add_argument("thread")
    parsers["export"].add_argument("--out", type=Path, help="write here instead of stdout")
    parsers["import"].add_argument("file", type=Path, help="a file written by threads export")
    parsers["import"].add_argument("--thread", required=True, help="the new thread's id")
    parsers["delete"].add_argument("thread")
    parsers["delete"].add_argument(
        "--yes", action="store_true", help="confirm: deleting cannot be undone"
    )
    parsers["delete"].add_argument(
        "--vacuum-full",
        action="store_true",
        help="PostgreSQL: then rewrite the store's tables (VACUUM FULL, locks them meanwhile) so "
        "the deleted bytes leave the table files now (an SQLite file is always rewritten)",
    )
    threads.set_defaults(run=threads_command)


def threads_command(args: argparse.Namespace) -> int:
    """Run one ``threads`` action; store problems become one-line errors."""
    from optical_memory.memory import OpticalMemory
    from optical_memory.store import StoreError

    creates = args.action == "import"  # an import may start a new store file
    if isinstance(args.db, Path) and not args.db.exists() and not creates:
        raise CommandError(f"no memory store at {args.db}: pass --db PATH or postgresql://...")
    if creates:
        args.data = read_export(args.file)  # before the store: a bad file creates no store
    thread = getattr(args, "thread", None) or "default"
    try:
        with OpticalMemory(args.db, thread_id=thread) as memory:
            return _ACTIONS[args.action](memory, args)
    except (StoreError, ValueError) as error:
        raise CommandError(str(error)) from error


def _list(memory: Any, args: argparse.Namespace) -> int:
    for thread in memory.threads():
        print(f"{thread}\t{memory.store.count_turns(thread)} turns")
    return 0


def _export(memory: Any, args: argparse.Namespace) -> int:
    if args.thread not in memory.threads():
        raise CommandError(f"no thread {args.thread!r} in {args.db}: see `threads list`")
    text = json.dumps(memory.export(), ensure_ascii=False, indent=1)
    if args.out is None:
        sys.stdout.write(text + "\n")
    else:
        args.out.write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.thread!r} to {args.out}", file=sys.stderr)
    return 0


def _import(memory: Any, args: argparse.Namespace) -> int:
    turns = memory.import_thread(args.data)
    print(f"imported {len(turns)} turns into thread {args.thread!r}")
    return 0


def read_export(file: Path) -> object:
    """The parsed JSON of an exported thread file, or a one-line :class:`CommandError`."""
    try:
        size = file.stat().st_size
        if size > MAX_EXPORT_BYTES:
            raise CommandError(
                f"{file} holds {size:,} bytes, over the {MAX_EXPORT_BYTES:,} an import reads: "
                "it is not a thread export"
            )
        return json.loads(file.read_bytes().decode("utf-8"))
    except OSError as error:
        raise CommandError(f"cannot read {file}: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CommandError(f"{file} is not an exported thread (not JSON: {error})") from None
    except RecursionError:
        raise CommandError(
            f"{file} is not an exported thread (its JSON nests too deeply to be one)"
        ) from None


def _delete(memory: Any, args: argparse.Namespace) -> int:
    if not args.yes:
        raise CommandError(f"deleting thread {args.thread!r} cannot be undone: add --yes")
    if args.thread not in memory.threads():
        raise CommandError(f"no thread {args.thread!r} in {args.db}: see `threads list`")
    deleted = memory.delete_thread()
    print(f"deleted thread {args.thread!r} ({deleted} turns)")
    vacuum_full = getattr(memory.store, "vacuum_full", None)
    if args.vacuum_full and callable(vacuum_full):
        vacuum_full()
        print("rewrote the store's tables (VACUUM FULL): the deleted rows left the table files")
    return 0


_ACTIONS = {"list": _list, "export": _export, "import": _import, "delete": _delete}
