"""Phase search over the ``graded`` substrate family (docs/substrate.md): which members collapse, and how.

A *member* is a :class:`synthetic.sweep.SweepConfig` (task knobs, optimiser, clip,
reuse) swept over the same coarse (τ, η, seed) grid. :func:`run_members` writes
one store per member into a folder (finished stores are reused, interrupted ones
resume), so the search can be refined member by member. The collapse census and
the Theorem 2 checks on those stores are the analysis layer's
(:mod:`analysis.events`); ``benchmarks/phase_search.py`` prints the table.
"""

import dataclasses
from pathlib import Path

from synthetic.sweep import SweepConfig, run_sweep
from synthetic.tasks import Family

COARSE = dict(taus=(1, 2, 4, 8), etas=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0), seeds=8, steps=1000,
              exact_every=50, lemma1=False, learner_dtype="float32")
"""The coarse grid every member is swept on."""

VERIFIABLE = Family(p_right=1.0, p_wrong=0.0)
"""Deterministic verifiable rewards (the search's base); the default :class:`Family` adds reward noise."""

BASE = SweepConfig(task="graded", optimizer="sgd", update_clip=1.0, reuse="slices", family=VERIFIABLE, **COARSE)
"""The family's base member: SGD, applied-update clip U = 1, τ disjoint slices, deterministic rewards."""

MEMBERS = {
    "base": {},
    "adam": dict(optimizer="adam"),
    "whole": dict(reuse="whole"),
    "dual_clip": dict(dual_clip=3.0),
    "no_update_clip": dict(update_clip=None),
    "noisy": dict(family=Family(p_right=0.9, p_wrong=0.1)),
    "exact_match": dict(family=Family(initial_success=0.15, accept_max=1, p_right=1.0, p_wrong=0.0)),
    "binding_clip": dict(update_clip=0.05),
    "noisy_whole": dict(reuse="whole", family=Family(p_right=0.9, p_wrong=0.1)),
    "trunc_0.3": dict(family=dataclasses.replace(VERIFIABLE, initial_success=0.2, initial_truncation=0.3)),
    "trunc_0.6": dict(family=dataclasses.replace(VERIFIABLE, initial_success=0.05, initial_truncation=0.6)),
    "trunc_0.9": dict(family=dataclasses.replace(VERIFIABLE, initial_success=0.02, initial_truncation=0.9)),
    "adam_trunc_0.6": dict(optimizer="adam",
                           family=dataclasses.replace(VERIFIABLE, initial_success=0.05, initial_truncation=0.6)),
    "large_eta": dict(etas=(128.0, 256.0, 512.0, 1024.0)),
    "noisy_large_eta": dict(etas=(128.0, 256.0, 512.0, 1024.0), family=Family(p_right=0.9, p_wrong=0.1)),
    "kl_noisy": dict(kappa=0.1, family=Family(p_right=0.9, p_wrong=0.1)),
    "control_autoregressive": dict(task="autoregressive", update_clip=None, reuse="whole",
                                   etas=(2.0, 8.0, 32.0, 128.0, 512.0)),
    "control_clipped": dict(task="autoregressive", etas=(2.0, 8.0, 32.0, 128.0, 512.0)),
    "default": dict(vars(SweepConfig.preset("graded")), seeds=8, lemma1=False),
}
"""Members: one or two knobs changed from :data:`BASE` each; ``trunc_*`` move θ_0 towards the absorbing state
(the stated truncation probability at θ_0, at the highest success the teacher's targets allow there);
``control_*`` are the earlier end-token toy, as it ran and under the base's clip and slices; ``default`` is
``repro figures``' preset with 8 seeds."""


def member_config(name, **overrides):
    """The sweep config of member ``name`` (grid fields can be overridden, e.g. more seeds)."""
    if name not in MEMBERS:
        raise ValueError(f"unknown member {name!r}; choose from {', '.join(MEMBERS)}")
    return dataclasses.replace(BASE, **{**MEMBERS[name], **overrides})


def run_members(out_dir, names=tuple(MEMBERS), progress=True, **overrides):
    """Run (or reuse) every member's sweep into ``out_dir/{name}.nc``; returns ``{name: path}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        paths[name] = out_dir / f"{name}.nc"
        run_sweep(member_config(name, **overrides), paths[name], progress=progress)
    return paths
