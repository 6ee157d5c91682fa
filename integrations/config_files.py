"""Reading the config files of other RL frameworks into one nested dict.

Frameworks keep their configs as YAML (TRL, AReaL, verl's Hydra, NeMo RL),
TOML (PRIME-RL) or as a launch command (OpenRLHF's dotted flags). All become a
nested dict in which ``a.b: 1``, ``--a.b 1`` and ``a: {b: 1}`` read alike.
"""

import json
import shlex
import tomllib
from pathlib import Path

import yaml


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


def _parse_args(text):
    """A launch command or an args file (``--key value``, ``--key=value``, ``--flag``, ``key=value``)."""
    flat = {}
    tokens = shlex.split(text.replace("\\\n", " "), comments=True)
    for i, token in enumerate(tokens):
        if token.startswith("--"):
            key, eq, value = token[2:].partition("=")
            if eq:
                flat[key] = _scalar(value)
            elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                flat[key] = _scalar(tokens[i + 1])
            else:
                flat[key] = True
        elif "=" in token and not token.startswith("-"):
            key, _, value = token.partition("=")
            flat[key.lstrip("+")] = _scalar(value)
    return flat


def read_config(path):
    """Load a framework config as a nested dict: YAML, JSON, TOML (PRIME-RL) or a launch command.

    Dotted keys are nested, so ``train.async_queue_size: 2``, ``--train.async_queue_size 2``
    and ``train: {async_queue_size: 2}`` read alike.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no config file at {path}")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            loaded = json.loads(text)
        elif suffix == ".toml":
            loaded = tomllib.loads(text)
        elif suffix in (".sh", ".args", ".txt"):
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


def _flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= _flatten(value, name + ".")
        else:
            flat[name] = value
    return flat
