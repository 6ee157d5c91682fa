"""A short supervised stage on the task, so that GRPO groups start with mixed rewards.

The paper starts from instruction-tuned policies; a freshly initialised ``tiny``
Llama earns reward 0 everywhere, and an all-zero group has advantage 0 (1).
Maximum likelihood of ``answer <eos>`` after the prompt for ``steps`` AdamW steps
gives a policy that is right part of the time; with a ``target`` accuracy the stage
stops at the first check (every :data:`CHECK_EVERY` steps) where greedy accuracy on
:data:`CHECK_PROBLEMS` fixed training problems reaches it, so seeds whose supervised
learning runs fast or slow all start GRPO near the same accuracy. The weights are cached as
safetensors under a key of (model, task, warm-start config, seed), so a rerun
with the same seed loads bit-identical weights.
"""

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from llm.decoder import positions
from llm.rollout import accuracy
from results.store import config_json

CHECK_EVERY = 5
"""Supervised steps between accuracy checks of a warm start with a target."""
CHECK_PROBLEMS = 64
"""Training problems (fixed per seed) the target accuracy is measured on."""


def _encode(tokenizer, problems, device):
    """Left-padded ``prompt answer <eos>`` ids, attention mask and a mask on the answer tokens."""
    rows, targets = [], []
    for p in problems:
        prompt = tokenizer(p.prompt, add_special_tokens=False).input_ids
        answer = tokenizer(p.answer, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        rows.append(prompt + answer)
        targets.append([0] * len(prompt) + [1] * len(answer))
    width = max(map(len, rows))
    pad = [[0] * (width - len(r)) for r in rows]
    ids = torch.tensor([[tokenizer.pad_token_id] * len(z) + r for z, r in zip(pad, rows)], device=device)
    mask = torch.tensor([z + [1] * len(r) for z, r in zip(pad, rows)], device=device)
    target = torch.tensor([z + t for z, t in zip(pad, targets)], device=device)
    return ids, mask, target


def supervised_step(model, optimizer, tokenizer, problems):
    """One maximum-likelihood step on the answers of ``problems``; returns the loss."""
    ids, mask, target = _encode(tokenizer, problems, next(model.parameters()).device)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).logits[:, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    loss = (nll * target[:, 1:]).sum() / target[:, 1:].sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def cache_path(model_config, task_config, warm_config, seed):
    """The cache file of one warm start; the key omits the cache directory and the device."""
    # device and allow_pickle change how a model is loaded, not which weights the warm start gives
    key = config_json({"model": {k: v for k, v in dataclasses.asdict(model_config).items()
                                 if k not in ("device", "allow_pickle")}, "task": task_config,
                       "warmstart": dataclasses.replace(warm_config, cache_dir=""), "seed": seed})
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return Path(warm_config.cache_dir) / f"warmstart-{model_config.name.replace('/', '_')}-{digest}.safetensors"


def warmstart(model, tokenizer, task, model_config, task_config, warm_config, seed):
    """Warm-start ``model`` in place (or load it from the cache) and return it."""
    if warm_config.steps == 0:
        return model
    path = cache_path(model_config, task_config, warm_config, seed)
    if path.exists():
        load_model(model, path, device=str(next(model.parameters()).device))
        return model
    rng = np.random.default_rng([seed, 1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=warm_config.lr)
    reached = _target_reached(model, tokenizer, task, warm_config.target, seed)
    for step in range(warm_config.steps):
        if step % CHECK_EVERY == 0 and reached():
            break
        model.train()
        supervised_step(model, optimizer, tokenizer, task.train(rng, warm_config.batch))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_model(model, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return model


def _target_reached(model, tokenizer, task, target, seed):
    """A check ``() → bool``: greedy accuracy on the seed's fixed training problems is at least ``target``."""
    if target == 0:
        return lambda: False
    problems = task.train(np.random.default_rng([seed, 4]), CHECK_PROBLEMS)
    longest = max(len(tokenizer(p.answer, add_special_tokens=False).input_ids) for p in problems) + 1  # and <eos>

    def reached():
        model.eval()
        return accuracy(model, tokenizer, problems, longest) >= target

    return reached
