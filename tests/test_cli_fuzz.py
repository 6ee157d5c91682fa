"""Every `repro` command, fuzzed over malformed option values: one-line error, non-zero exit, no traceback.

Commands are discovered from the typer app at collection time, so commands added
later are fuzzed too. Only values that must be rejected are generated (letters,
empty, NaN, ±inf, overflow, wrong list separators, below an option's minimum, an
unknown choice, a missing file), with the fuzzed option first on the command line
and every other required option filled with a plain value; a command that accepts
the bad value and starts working is stopped by an alarm and reported.
"""

import enum
import signal
import string
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import paper_repro

NUMERIC_NAMES = {"tau", "taus", "eta", "etas", "seed", "seeds", "steps", "horizon"}
"""str options named like these carry numbers (or comma lists of them) whatever their default."""

ALARM_SECONDS = 20


def _commands(command, path=()):
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
    for name, sub in (subcommands or {}).items():
        yield from _commands(sub, (*path, name))


def _is_number_list(text):
    try:
        return all(float(item) == float(item) for item in str(text).split(","))
    except ValueError:
        return False


def _kind(param):
    """How a parameter is fuzzed: int, float, numbers (a str of numbers), choice, file; None = not fuzzed."""
    if getattr(param, "is_flag", False):
        return None
    annotation = param.type_descriptor.annotation
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "choice"
    if annotation is bool:
        return None
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if annotation is str and (param.name in NUMERIC_NAMES or (param.default and _is_number_list(param.default))):
        return "numbers"
    if annotation is Path and getattr(param.type_descriptor.parameter_info, "exists", False):
        return "file"
    return None


CASES = [
    (path, param.name)
    for path, command in _commands(typer.main.get_command(paper_repro.app))
    for param in command.params
    if path and _kind(param)
]

NOT_NUMBERS = st.one_of(
    st.sampled_from(["", " ", "nan", "NaN", "-nan", "inf", "-inf", "1e400", "-1e400", "1;2", "1 2", "1,,2",
                     "[1, 2]", "1,abc", "0x1g", "1.2.3", "nan,1", "1,inf", "½"]),
    st.text(string.ascii_letters, min_size=1, max_size=8),
    st.lists(st.integers(0, 99), min_size=2, max_size=4).flatmap(
        lambda items: st.sampled_from(";| :/").map(lambda sep: sep.join(map(str, items)))
    ),
)


def _bad_values(param, kind):
    if kind == "choice":
        choices = {str(member.value).lower() for member in param.type_descriptor.annotation}
        return st.text(string.ascii_letters + "-_", max_size=10).filter(lambda text: text.lower() not in choices)
    if kind == "file":
        return st.text(string.ascii_lowercase, min_size=1, max_size=8).map(lambda name: f"/nonexistent/{name}.cfg")
    bad = NOT_NUMBERS
    if kind == "int":
        bad = bad | st.sampled_from(["1.5", "2.0", "1,2", "1e3"])
    if getattr(param.type_descriptor.parameter_info, "clamp", False):
        return bad  # out-of-range values are clamped, not rejected
    if getattr(param, "min", None) is not None:
        bad = bad | st.just(str(param.min - 1))
    if getattr(param, "max", None) is not None:
        bad = bad | st.just(str(param.max + 1))
    return bad


def _fill(param, kind, tmp_path):
    """A plain value for a required option other than the fuzzed one."""
    if kind == "choice":
        return next(iter(param.type_descriptor.annotation)).value
    if kind in ("int", "float", "numbers"):
        return "1"
    info = param.type_descriptor.parameter_info
    if kind == "file" and getattr(info, "file_okay", True) is False:
        return str(tmp_path)
    if kind == "file":
        filler = tmp_path / "filler.json"
        filler.write_text("{}")
        return str(filler)
    return str(tmp_path / f"fuzz-{param.name}")


class Overran(BaseException):
    """The command accepted a malformed value and kept running (BaseException: no handler swallows it)."""


def _alarm(signum, frame):
    raise Overran(f"still running after {ALARM_SECONDS} s: a malformed value was accepted")


@pytest.mark.parametrize("path, name", CASES, ids=[f"{' '.join(p)}--{n}" for p, n in CASES])
def test_malformed_option_values_give_one_line_errors(repro, tmp_path, path, name):
    command = dict(_commands(typer.main.get_command(paper_repro.app)))[path]
    params = {param.name: param for param in command.params}
    fuzzed = params[name]

    @settings(max_examples=8, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(_bad_values(fuzzed, _kind(fuzzed)))
    def check(value):
        options, positional = [], []
        for param in command.params:
            is_argument = param.param_type_name == "argument"
            if param is fuzzed:
                text = value
            elif getattr(param, "required", False):
                text = _fill(param, _kind(param), tmp_path)
            else:
                continue
            if is_argument:
                positional.append(text)
            elif param is fuzzed:
                options.insert(0, f"{param.opts[0]}={text}")  # first, so it is the value click checks first
            else:
                options += [param.opts[0], text]
        args = [*path, *options, "--", *positional] if positional else [*path, *options]
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(ALARM_SECONDS)
        try:
            code, out, err = repro(*args)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        message = f"repro {' '.join(map(repr, args))} → exit {code}, stderr {err!r}"
        assert code != 0, message
        assert "Traceback" not in out + err, message
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:"), message

    check()


def test_every_command_is_discovered():
    names = {" ".join(path) for path, _ in CASES}
    assert {"tau", "import"} <= names
