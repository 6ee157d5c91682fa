"""Where SmolLM2-135M-Instruct starts on one-digit addition: sampled reward at temperature 1 per prompt format.

GRPO learns only from groups whose rewards differ, so a pretrained model is a usable substrate when its sampled
reward (temperature 1, the learner's distribution) is well inside (0, 1). For each number of worked examples
(``--shots``; 0 is the bare ``a+b=`` prompt, k > 0 puts k ``a + b = c`` lines before ``a + b =``) this prints,
on ``--prompts`` training problems × ``--group`` completions drawn from ``--seed``:

* the mean sampled training reward (the number issue 12 asks to be above 0.3),
* the share of groups with mixed rewards (those that carry a learning signal),
* greedy accuracy on the task's held-out problems (``val_reward`` at step 0),
* seconds spent, on the threads given.

Run: ``python benchmarks/smollm2_start.py [--shots 0 2 4 8 16] [--prompts 64] [--group 8] [--seed 0]``.
"""

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from llm.config import ModelConfig  # noqa: E402
from llm.model import load  # noqa: E402
from llm.rollout import accuracy, rollout  # noqa: E402
from llm.tasks import Arithmetic  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 2, 4, 8, 16])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--heldout", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer, model = load(ModelConfig("smollm2"))
    model.eval()
    print(f"SmolLM2-135M-Instruct, one-digit addition, {args.prompts} prompts × {args.group} completions at T = 1, "
          f"seed {args.seed}, {args.threads} threads")
    print(f"{'shots':>5}  {'sampled reward':>14}  {'mixed groups':>12}  {'greedy held-out':>15}  {'seconds':>7}")
    for shots in args.shots:
        task = Arithmetic(1, "+", args.heldout, shots)
        start = time.perf_counter()
        problems = task.train(np.random.default_rng(args.seed), args.prompts)
        batch = rollout(model, tokenizer, problems, args.group, args.max_new_tokens, 1.0,
                        torch.Generator().manual_seed(args.seed), version=0, score=False)
        rewards = batch.rewards.numpy()
        mixed = np.mean(rewards.min(1) != rewards.max(1))
        greedy = accuracy(model, tokenizer, task.heldout(), args.max_new_tokens)
        print(f"{shots:>5}  {rewards.mean():>14.3f}  {mixed:>12.2f}  {greedy:>15.3f}  "
              f"{time.perf_counter() - start:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
