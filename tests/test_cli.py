"""The CLI entry point: each run builds only the parser of its subcommand, from a table kept true."""

from __future__ import annotations

import argparse
import importlib

import pytest

from neurotriage.cli import COMMANDS, build_parser, main


@pytest.mark.parametrize("module", list(COMMANDS))
def test_the_command_table_names_what_each_module_registers(module):
    sub = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module).register(sub)
    assert tuple(sub.choices) == COMMANDS[module]


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def test_a_run_builds_only_its_own_module_and_help_builds_all():
    assert _subcommands(build_parser("locate")) == {"locate"}
    assert _subcommands(build_parser("refer")) == set(COMMANDS["neurotriage.clinical.commands"])
    everything = {name for names in COMMANDS.values() for name in names}
    assert _subcommands(build_parser(None)) == _subcommands(build_parser("no-such-command")) == everything


def test_an_unknown_command_is_refused_with_the_full_list(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "diagnose" in capsys.readouterr().err  # argparse lists every choice
