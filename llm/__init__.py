"""Asynchronous GRPO on Llama-architecture models (PyTorch + transformers), THEORY.md §3 and §6.

Layout (nanoGPT style, one idea per file): :mod:`llm.config` (frozen configs),
:mod:`llm.model` (one loader), :mod:`llm.tasks` (verifiable-reward tasks),
:mod:`llm.warmstart` (supervised start), :mod:`llm.rollout` (sampling with
behaviour log-probs and version tags), :mod:`llm.loss` (the GRPO loss),
:mod:`llm.pipeline` (the ``reuse`` pipeline of §3), :mod:`llm.probes` (§6
metrics) and :mod:`llm.sweep` (τ × η × seed sweeps into a results store).
"""
