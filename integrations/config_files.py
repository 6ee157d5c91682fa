"""Reading the config files of other RL frameworks into one nested dict.

Frameworks keep their configs as YAML (TRL, AReaL, verl's Hydra, NeMo RL, ROLL,
PipelineRL), TOML (PRIME-RL), or as a launch command: a shell script with
Hydra overrides (verl, SkyRL, Tinker's ``key=value``) or argparse flags
(OpenRLHF's ``--a.b 1``, slime/miles' ``--max-weight-staleness 2``). All become
a nested dict in which ``a.b: 1``, ``--a.b 1``, ``a.b=1`` and ``a: {b: 1}`` read
alike; flags spelled with dashes read as underscores. A launch script's
variables (``N=4``, ``${N}``, ``${N:-4}``, ``$((N * 2))``) are expanded as bash
would, from the script alone (never from this machine's environment); the
module or script it launches is kept under :data:`ENTRY`.
"""

import ast
import json
import operator
import re
import shlex
import tomllib
from pathlib import Path

import yaml

ENTRY = "__entry__"
"""Key of the launched module or script (``verl.experimental.one_step_off_policy.main_ppo``, ``train_async.py``)."""

SCRIPT_SUFFIXES = (".sh", ".bash", ".args", ".txt", ".cmd")
"""Files read as launch commands rather than as YAML."""

UNSET = "<unset>"
"""What an unset shell variable expands to; a rule that reads it names the variable."""


def _nest(flat):
    """``{"a.b": 1}`` → ``{"a": {"b": 1}}`` (dotted keys: OpenRLHF flags, Hydra overrides)."""
    nested = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = str(key).split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"config key {key!r} clashes with a value at {part!r}")
        node[leaf] = value
    return nested


def _scalar(text):
    """A command-line value as YAML reads it (``4`` → int, ``true`` → bool, ``0.1`` → float)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


# ---------------------------------------------------------------- launch scripts

_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
          ast.Div: operator.floordiv, ast.Mod: operator.mod, ast.USub: operator.neg, ast.UAdd: operator.pos}


def _arithmetic(expression, variables):
    """Bash ``$(( … ))`` on integers: + − * / % and parentheses; names read from ``variables``."""
    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return int(variables.get(node.id, 0) or 0)
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return _ARITH[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _ARITH:
            return _ARITH[type(node.op)](value(node.operand))
        raise ValueError
    try:
        return str(value(ast.parse(re.sub(r"\$\{?(\w+)\}?", r"\1", expression).strip().replace("/", "//"),
                                   mode="eval").body))
    except (ValueError, SyntaxError, ZeroDivisionError, TypeError):
        return UNSET


def _expand(text, variables):
    """Expand ``$((…))``, ``${V}``, ``${V:-default}``, ``${V-default}`` and ``$V`` as bash does."""
    def arith(match):
        return _arithmetic(match.group(1), variables)

    def braced(match):
        name, op, default = match.group(1), match.group(2), match.group(3)
        value = variables.get(name)
        if op and (value is None or (op.startswith(":") and value == "")):
            value = _expand(default.strip('"\''), variables)
            if op.endswith("="):  # ${V:=default} also assigns
                variables[name] = value
            return value
        return UNSET if value is None else value

    def plain(match):
        return variables.get(match.group(1), UNSET)

    text = re.sub(r'"?\$[@*]"?', "", text)  # the script's own arguments: none here
    previous = None
    while previous != text:  # defaults may themselves hold ${…}
        previous = text
        text = re.sub(r"\$\(\(([^()]*(?:\([^()]*\)[^()]*)*)\)\)", arith, text)
        text = re.sub(r"\$\{(\w+)(:?[-=])?([^{}]*)\}", braced, text)
        text = re.sub(r"\$(?![{(])(\w+)", plain, text)
    return text


_ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Za-z_]\w*)=(.*)$")


def _parse_args(text):
    """A launch script or args file: shell variables, ``--key value``, ``--key=value``, ``--flag``, ``key=value``."""
    flat, variables = {}, {}
    text = re.sub(r"\\\r?\n", " ", text)
    pending = ""
    for line in text.splitlines():
        line = pending + re.sub(r"^\s*export\s+", "", line).strip()
        if not line or line.startswith("#"):
            continue
        try:
            tokens = shlex.split(_expand(line, variables), comments=True)
        except ValueError:  # a quoted string that goes on over the next lines
            pending = line + "\n"
            continue
        pending = ""
        assigned = {}
        while tokens and _ASSIGNMENT.match(tokens[0]):  # NAME=value, alone or before a command (env prefix)
            name, value = _ASSIGNMENT.match(tokens.pop(0)).groups()
            variables[name] = assigned[name] = value
        if not tokens:  # a line of assignments only is also an args file's `key=value` (Tinker's chz CLI)
            flat |= {name: _scalar(value) for name, value in assigned.items()}
        _read_tokens(tokens, flat)
    if pending:
        raise ValueError(f"cannot split the launch command: a quote opened in {pending.splitlines()[0][:60]!r} "
                         "never closes")
    return flat


def _read_tokens(tokens, flat):
    for i, token in enumerate(tokens):
        if token == "-m" and i + 1 < len(tokens) and re.fullmatch(r"[A-Za-z_][\w.]*", tokens[i + 1]):
            flat[ENTRY] = tokens[i + 1]  # the last launch of the script wins: it is the training run
        elif token.endswith(".py") and not token.startswith("-") and "=" not in token:
            flat[ENTRY] = token
        elif token.startswith("--") and len(token) > 2:  # a bare `--` only separates commands
            key, eq, value = token[2:].partition("=")
            key = key.replace("-", "_")
            if eq:
                flat[key] = _scalar(value)
            elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                flat[key] = _scalar(tokens[i + 1])
            else:
                flat[key] = True
        elif "=" in token and not token.startswith("-") and not (i and tokens[i - 1].startswith("--")
                                                                 and "=" not in tokens[i - 1]):
            key, _, value = token.partition("=")
            flat[key.lstrip("+~")] = _scalar(value)


# ---------------------------------------------------------------- files


def _load(path):
    text = _text(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            loaded = json.loads(text)
        elif suffix == ".toml":
            loaded = tomllib.loads(text)
        elif suffix in SCRIPT_SUFFIXES or text.lstrip().startswith(("#!", "python", "torchrun", "uv run")):
            loaded = _parse_args(text)
        else:
            loaded = yaml.safe_load(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"cannot parse {path}: {str(error).splitlines()[0]}") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} holds a {type(loaded).__name__}, not a mapping of config keys")
    return _nest(_flatten(loaded))


def _text(path):
    data = path.read_bytes()
    if b"\0" in data[:4096]:
        raise ValueError(f"{path} is a binary file, not a config (YAML, JSON, TOML or a launch command)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text (a config is YAML, JSON, TOML or a launch command)") from None


def _merge(base, child):
    """NeMo RL's inheritance merge: child wins key by key; ``_override_: true`` replaces a section whole."""
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and value.get("_override_"):
            merged[key] = {k: v for k, v in value.items() if k != "_override_"}
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _inherit(path, config, seen):
    """Resolve NeMo RL's ``defaults:`` (a parent file or a list of them, relative to the child's folder)."""
    parents = config.pop("defaults", None)
    if parents is None:
        return config
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise ValueError(f"{path}: defaults = {parents!r} is not a parent file or a list of them")
    base = {}
    for parent in parents:
        parent_path = (path.parent / parent).resolve()
        if parent_path in seen:
            raise ValueError(f"{path}: defaults {parent} includes itself")
        if not parent_path.is_file():
            raise ValueError(f"{path}: its defaults file {parent} is not at {parent_path}; copy it beside the config")
        base = _merge(base, _inherit(parent_path, _load(parent_path), seen | {parent_path}))
    return _merge(base, config)


def read_config(path, inherit=False):
    """Load a framework config as a nested dict: YAML, JSON, TOML or a launch command.

    Dotted keys are nested, so ``train.async_queue_size: 2``, ``--train.async_queue_size 2``
    and ``train: {async_queue_size: 2}`` read alike. With ``inherit``, NeMo RL's ``defaults:``
    parent files are merged in first (``nemo_rl/utils/config.py`` ``load_config_with_inheritance``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no config file at {path}")
    config = _load(path)
    return _inherit(path.resolve(), config, {path.resolve()}) if inherit else config


def _flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= _flatten(value, name + ".")
        else:
            flat[name] = value
    return flat
