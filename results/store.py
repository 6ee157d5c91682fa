"""Results store: one xarray Dataset per sweep, netCDF on disk.

Layout: sweep values are coords (``tau``, ``eta``, ``seed``,
``step``, ...), never attrs; attrs hold the config as JSON, the package version,
the git commit, the seed and the creation time. A sweep in progress keeps one
file per finished grid point in ``STORE.parts/``; :meth:`SweepStore.finish`
combines them into ``STORE``. Every file is written to a temporary name and
renamed, so a crash never leaves a half-written result under a real name; a file
damaged some other way is reported on stderr (logger ``results.store``) and
recomputed, never read.
"""

import dataclasses
import datetime
import hashlib
import json
import logging
import os
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import xarray as xr

PACKAGE = "staleness-repro"

log = logging.getLogger(__name__)


class StoreError(ValueError):
    """A results file that is missing, unreadable or not of the expected shape."""


def package_version():
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def _git_commit():
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def config_json(config):
    """A dataclass (or mapping) config as canonical JSON, the form stored in attrs."""
    as_dict = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return json.dumps(as_dict, sort_keys=True, default=str)


def make_attrs(config, seed):
    """Provenance attrs of every result file: config, version, commit, seed, time."""
    return {
        "config": config_json(config),
        "package_version": package_version(),
        "git_commit": _git_commit(),
        "seed": int(seed),
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def to_dataset(variables, coords, config, seed):
    """Build a store Dataset from ``{name: (dims, array)}`` and ``{dim: values}``.

    >>> ds = to_dataset({"reward": (("seed", "step"), np.zeros((2, 3)))},
    ...                 {"seed": [0, 1], "step": [0, 1, 2]}, {"task": "bandit"}, seed=0)
    >>> ds.reward.dims
    ('seed', 'step')
    """
    data_vars = {name: (tuple(dims), np.asarray(values)) for name, (dims, values) in variables.items()}
    return xr.Dataset(data_vars, coords={k: np.asarray(v) for k, v in coords.items()}, attrs=make_attrs(config, seed))


def write_atomic(ds, path):
    """Write ``ds`` to ``path`` as netCDF through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        ds.to_netcdf(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def open_store(path, required=(), dims=()):
    """Load a store fully into memory and check it has ``required`` variables and ``dims``.

    Raises :class:`StoreError` with a one-line message naming what is wrong.
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no results store at {path}")
    try:
        with xr.open_dataset(path) as ds:
            ds = ds.load()
    except Exception as exc:  # netCDF4/HDF5 raise many types for a damaged file
        raise StoreError(f"cannot read results store {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    missing = [name for name in required if name not in ds.data_vars]
    if missing:
        raise StoreError(f"results store {path} lacks variable(s) {', '.join(missing)}")
    missing_dims = [d for d in dims if d not in ds.dims]
    if missing_dims:
        raise StoreError(f"results store {path} lacks dim(s) {', '.join(missing_dims)} (has {', '.join(ds.dims)})")
    if any(size == 0 for size in ds.sizes.values()):
        raise StoreError(f"results store {path} is empty (sizes {dict(ds.sizes)})")
    return ds


class SweepStore:
    """A sweep's store under construction: one netCDF part per finished grid point.

    ``STORE.parts/`` holds the parts and ``config.json``; a restarted sweep with
    the same config skips the points whose part reads back intact, and one with
    another config is refused (mixing them would silently corrupt the store).
    """

    def __init__(self, path, config):
        self.path = Path(path)
        self.parts = self.path.with_name(self.path.name + ".parts")
        self.config = config_json(config)
        self.parts.mkdir(parents=True, exist_ok=True)
        stamp = self.parts / "config.json"
        if stamp.exists() and stamp.read_text() != self.config:
            raise StoreError(
                f"{self.parts} holds a sweep with another config; remove it or choose another --out"
            )
        if not stamp.exists():
            tmp = stamp.with_name(".config.json.tmp")
            tmp.write_text(self.config)
            os.replace(tmp, stamp)

    def _part(self, point):
        key = json.dumps({k: point[k] for k in sorted(point)}, default=float)
        name = "_".join(f"{k}={point[k]:g}" if isinstance(point[k], float) else f"{k}={point[k]}"
                        for k in sorted(point))
        return self.parts / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:8]}.nc"

    def load(self, **point):
        """The finished part at ``point``, or ``None`` if absent or damaged (then it is reported and removed)."""
        part = self._part(point)
        if not part.exists():
            return None
        try:
            ds = open_store(part)
            wrong = [k for k, v in point.items() if k in ds.coords and ds[k].values.tolist() != [v]]
            if wrong:
                raise StoreError(f"part {part} holds {', '.join(f'{k}={ds[k].values.tolist()}' for k in wrong)}")
        except StoreError as error:
            log.warning("damaged part, recomputing it: %s", error)
            part.unlink(missing_ok=True)
            return None
        return ds

    def save(self, ds, **point):
        """Write the finished part at ``point`` atomically."""
        write_atomic(ds, self._part(point))

    def finish(self, datasets):
        """Combine the parts into one Dataset, write it atomically at ``path`` and return it."""
        combined = xr.combine_by_coords(list(datasets), combine_attrs="drop_conflicts")
        write_atomic(combined, self.path)
        return combined


def finished_store(path, config):
    """The store at ``path`` if it is finished with ``config``; ``None`` if absent, of another config or damaged.

    A damaged store is reported on stderr, then left to be rebuilt from its parts.
    """
    if not Path(path).exists():
        return None
    try:
        ds = open_store(path)
    except StoreError as error:
        log.warning("damaged results store, rebuilding it: %s", error)
        return None
    return ds if ds.attrs.get("config") == config_json(config) else None
