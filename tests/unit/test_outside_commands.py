"""Every outside command that the tests, benchmarks and lab run is on lab/commands.txt.

lab/engine.sh installs the Debian package of each command on that list, so a
command that a test calls and the list lacks is an install step that only a
hand-made machine has (issue 24: prometheus-blackbox-exporter).
"""

import ast
import os
import shutil
import sys

import pytest

from .conftest import REPO

SCANNED = ("tests", "benchmarks", "molecule", "lab")
RUNNERS = {"run", "Popen", "check_output", "check_call", "call", "_run"}
# Commands that run another command: the one they run is the one to check.
WRAPPERS = {"unshare", "timeout", "nsenter", "env"}


def listed_commands():
    with open(os.path.join(REPO, "lab", "commands.txt")) as handle:
        rows = [line.split() for line in handle if line.strip() and not line.startswith("#")]
    return {row[0]: row[1] for row in rows}


def _strings(nodes):
    """The leading string constants of an argument vector."""
    out = []
    for node in nodes:
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            break
        out.append(node.value)
    return out


def _command(argv):
    """The command an argument vector runs, past any wrapper and its options."""
    for i, word in enumerate(argv):
        if word.startswith("-") and i:
            continue
        if word in WRAPPERS:
            continue
        return word
    return None


def _name(func):
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def called_commands(tree):
    """(command, line) for every literal command a module runs or looks up."""
    loops = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name) \
                and isinstance(node.iter, (ast.Tuple, ast.List)):
            loops[node.target.id] = _strings(node.iter.elts)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name, first = _name(node.func), node.args[0]
        if name == "which":
            names = _strings([first]) or (loops.get(first.id, []) if isinstance(first, ast.Name) else [])
            for command in names:
                yield command, node.lineno
        elif name in RUNNERS:
            argv = _strings(first.elts) if isinstance(first, (ast.List, ast.Tuple)) else _strings(node.args)
            command = _command(argv)
            if command and "/" not in command:
                yield command, node.lineno


def python_files():
    for top in SCANNED:
        for root, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
            for name in files:
                if name.endswith(".py"):
                    yield os.path.join(root, name)


def unlisted(paths, listed, venv_bin):
    missing = []
    for path in paths:
        with open(path) as handle:
            tree = ast.parse(handle.read(), path)
        for command, line in called_commands(tree):
            if command not in listed and not os.path.exists(os.path.join(venv_bin, command)):
                missing.append("%s:%d runs %s" % (os.path.relpath(path, REPO), line, command))
    return missing


def test_every_command_the_tests_run_is_listed_with_its_package():
    missing = unlisted(python_files(), listed_commands(), os.path.dirname(sys.executable))
    assert not missing, "add these commands and their Debian packages to lab/commands.txt:\n" + "\n".join(missing)


def test_the_scan_finds_what_a_test_would_run(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import shutil, subprocess\n"
        "subprocess.run(['iperf3', '--client', '127.0.0.1'])\n"
        "subprocess.run(['unshare', '-n', 'nft', '-f', '-'])\n"
        "for tool in ('nginx', 'ab'):\n"
        "    shutil.which(tool)\n"
        "_run('docker', 'ps')\n"
        "subprocess.run([sys.executable, 'x.py'])\n")
    found = sorted(called_commands(ast.parse(sample.read_text())))
    assert found == [("ab", 5), ("docker", 6), ("iperf3", 2), ("nft", 3), ("nginx", 5)]
    assert unlisted([str(sample)], listed_commands(), str(tmp_path)) == [
        "%s:2 runs iperf3" % os.path.relpath(str(sample), REPO), "%s:5 runs ab" % os.path.relpath(str(sample), REPO)]


@pytest.mark.parametrize("command", sorted(listed_commands()))
def test_every_listed_command_is_on_this_machine(command):
    found = os.path.exists(command) if command.startswith("/") else shutil.which(command)
    assert found, "%s is listed in lab/commands.txt but missing: run lab/engine.sh" % command
