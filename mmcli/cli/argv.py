"""Reading arguments without Click: what every command does to its arguments before Click reads them
(multi-value options, a bare ``--preview``), and the strict reader of the fast path (``mmcli.cli.fast``),
whose grammar is derived from a command's declaration (``mmcli.cli.declare``), as Typer's parameters are.

Nothing here imports Typer: the fast path runs before it is imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmcli.cli.declare import Command

MULTI_VALUE_OPTIONS = ("--labels", "-l", "--text", "-t")


def expand_multi_values(args: Sequence[str], options: Sequence[str] = MULTI_VALUE_OPTIONS) -> list[str]:
    """``--labels cat dog -f csv`` -> ``--labels cat --labels dog -f csv``.

    The values of a multi-value option run up to the next argument that starts with "-" (an
    option, "--", or "-" for stdin). Put inputs before the option, or after "--".
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        out.append(arg)
        i += 1
        if arg == "--":
            out.extend(args[i:])
            break
        if arg in options:
            first = True
            while i < len(args) and not args[i].startswith("-"):
                if not first:
                    out.append(arg)
                out.append(args[i])
                first = False
                i += 1
    return out


def expand_bare_preview(args: Sequence[str]) -> list[str]:
    """``--preview`` not followed by a mode is ``--preview=auto`` (``mmcli search --preview 'a dog'``)."""
    from mmcli.cli.preview import MODES

    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + list(args[i:])
        bare = arg == "--preview" and (i + 1 == len(args) or args[i + 1] not in MODES)
        out.append("--preview=auto" if bare else arg)
    return out


def prepared(args: Sequence[str], multi_value: bool) -> list[str]:
    """The arguments as a command's parser reads them (``MmcliCommand.parse_args`` does the same)."""
    expanded = expand_multi_values(args) if multi_value else list(args)
    return expand_bare_preview(expanded) if "--preview" in expanded else expanded


@dataclass(frozen=True)
class Grammar:
    """The options a fast path understands: ``values`` take one value (``--opt v`` or ``--opt=v``),
    ``many`` of them collect every value given, ``flags`` take none. Each maps to an option's name."""

    values: Mapping[str, str]
    flags: Mapping[str, str]
    many: frozenset[str] = frozenset()

    @classmethod
    def of(cls, command: Command) -> Grammar:
        """The grammar of a declared command: every option it has (the positional words read apart)."""
        values = {f: o.name for o in command.options if o.kind in ("value", "many") for f in o.flags}
        flags = {f: o.name for o in command.options if o.kind == "flag" for f in o.flags}
        return cls(values, flags, frozenset(o.name for o in command.options if o.kind == "many"))


@dataclass(frozen=True)
class Reading:
    """What a strict reading found: option values by field (the last one given, or a list for
    ``many``), and the positional arguments in order."""

    options: Mapping[str, str | bool | list[str]]
    positional: tuple[str, ...]

    def text(self, field: str, default: str | None = None) -> str | None:
        value = self.options.get(field, default)
        return value if isinstance(value, str) else None

    def texts(self, field: str) -> list[str] | None:
        value = self.options.get(field)
        return list(value) if isinstance(value, list) else None

    def flag(self, field: str) -> bool:
        return self.options.get(field) is True


def read_strictly(args: Sequence[str], grammar: Grammar) -> Reading | None:
    """``args`` read as Click reads them, or None for anything this reader does not take on: an
    option it does not know (``--help`` included), a value or a positional argument starting with
    "-" (``-`` for stdin too), ``--flag=value``, short options run together (``-k5``, ``-0q``).
    None means: let the full command line read them."""
    options: dict[str, str | bool | list[str]] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional.extend(args[i:])
            break
        if not arg.startswith("-"):
            positional.append(arg)
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in grammar.flags and not eq:
            options[grammar.flags[name]] = True
            continue
        if name not in grammar.values:
            return None
        if not eq:
            if i >= len(args):
                return None
            value = args[i]
            i += 1
        if value.startswith("-"):
            return None
        field = grammar.values[name]
        if field in grammar.many:
            found = options.setdefault(field, [])
            assert isinstance(found, list)
            found.append(value)
        else:
            options[field] = value
    if any(p.startswith("-") for p in positional):
        return None
    return Reading(options, tuple(positional))
