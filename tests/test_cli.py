import subprocess
import sys

from fstmatch.cli import build_parser, main


def test_help_lists_commands(capsys):
    parser = build_parser()
    text = parser.format_help()
    assert "COMMAND" in text and "fstmatch" in text


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: fstmatch" in capsys.readouterr().out


def test_unknown_command_exits_2():
    r = subprocess.run([sys.executable, "-m", "fstmatch", "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr
