"""GRPO on Llama-architecture models (PyTorch + transformers), docs/theory.md §3, §6 and §7.

Layout (nanoGPT style, one idea per file): :mod:`llm.config` (frozen configs that validate themselves),
:mod:`llm.model` (one loader), :mod:`llm.tasks` (verifiable-reward tasks), :mod:`llm.warmstart` (supervised
start), :mod:`llm.rollout` (sampling with behaviour log-probs and version tags), :mod:`llm.loss` (the GRPO
loss), :mod:`llm.sources` (the ``reuse`` and ``async`` pipelines of §3), :mod:`llm.pipeline` (the learner
loop), :mod:`llm.bias` (streamed §7 estimators in O(m·d) memory), :mod:`llm.probes` (§6 metrics, the
staleness probe and each run's constants), :mod:`llm.constants` (``repro constants --model``) and
:mod:`llm.sweep` (τ × η × seed sweeps into a results store).
"""
