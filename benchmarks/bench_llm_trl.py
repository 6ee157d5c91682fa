"""GRPO throughput of ``llm/`` against TRL's ``GRPOTrainer`` on the tiny Llama, side by side in one run.

Both engines train the same weights (the tiny Llama of one seed, no warm
start) on the same arithmetic prompts with the same shapes: B prompts × n
completions per rollout batch, at most ``L`` new tokens, sampled at
temperature 1, consumed in τ learner steps of B·n/τ completions each (our
``reuse = slices``; TRL's ``steps_per_generation = τ``), clip ε = 0.2, no KL,
AdamW at the same η. Reported per engine, from the wall time of the whole run
(rollouts + learner steps, model loading excluded), fastest of ``--repeats``
interleaved runs:

* learner steps per second;
* generated completion tokens per second (tokens up to and including EOS).

Run: ``python benchmarks/bench_llm_trl.py [--steps 32] [--tau 4] [--threads 1]``.
TRL runs offline on CPU (``HF_HUB_OFFLINE=1``, ``use_cpu=True``, no vLLM).
"""

import argparse
import copy
import dataclasses
import os
import tempfile
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import llm.pipeline  # noqa: E402
import llm.sources  # noqa: E402
from llm.config import GRPOConfig, ModelConfig, RunConfig, WarmstartConfig  # noqa: E402
from llm.model import load  # noqa: E402
from llm.tasks import Arithmetic, reward  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Shapes:
    steps: int
    """Learner steps per engine."""
    tau: int
    """Learner steps per rollout batch (τ = TRL's steps_per_generation)."""
    prompts: int
    """B: prompts per rollout batch."""
    group: int
    """n: completions per prompt."""
    max_new_tokens: int
    """L: completion length limit."""
    eta: float
    """AdamW learning rate."""
    seed: int
    """Seed of the weights, the prompts and the sampling."""


def ours(shapes, model_and_tokenizer):
    """``(seconds, learner steps, generated tokens)`` of :func:`llm.pipeline.train` on the given weights."""
    config = RunConfig(tau=shapes.tau, eta=shapes.eta, seed=shapes.seed, steps=shapes.steps,
                       warmstart=WarmstartConfig(steps=0),
                       grpo=GRPOConfig(prompts=shapes.prompts, group=shapes.group,
                                       max_new_tokens=shapes.max_new_tokens, reuse="slices",
                                       val_every=shapes.steps + 1))
    tokens = []
    sample = llm.sources.rollout

    def counting_rollout(*args, **kwargs):  # count what the sampler generated, without touching the engine
        batch = sample(*args, **kwargs)
        tokens.append(int(batch.completion_mask.sum()))
        return batch

    llm.sources.rollout = counting_rollout
    try:
        start = time.perf_counter()
        series, nan_step = llm.pipeline.train(config, model_and_tokenizer)
        seconds = time.perf_counter() - start
    finally:
        llm.sources.rollout = sample
    assert nan_step == -1, "the benchmark run went NaN"
    return seconds, shapes.steps, sum(tokens)


def trl(shapes, model_and_tokenizer, problems):
    """``(seconds, learner steps, generated tokens)`` of TRL's GRPOTrainer on the given weights."""
    from datasets import Dataset
    from trl import GRPOConfig as TRLConfig
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    tokenizer, model = model_and_tokenizer
    dataset = Dataset.from_list([{"prompt": p.prompt, "answer": p.answer} for p in problems])

    def arithmetic_reward(prompts, completions, answer, **kwargs):
        return [reward(c, a) for c, a in zip(completions, answer)]

    completions = shapes.prompts * shapes.group
    with tempfile.TemporaryDirectory() as out:
        args = TRLConfig(output_dir=out, use_cpu=True, bf16=False, report_to="none", save_strategy="no",
                         logging_steps=1, disable_tqdm=True, seed=shapes.seed, learning_rate=shapes.eta,
                         max_steps=shapes.steps, per_device_train_batch_size=completions // shapes.tau,
                         gradient_accumulation_steps=1, steps_per_generation=shapes.tau,
                         num_generations=shapes.group, max_completion_length=shapes.max_new_tokens,
                         temperature=1.0, epsilon=0.2, beta=0.0, loss_type="grpo", num_iterations=1,
                         lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.01,
                         dataloader_num_workers=0)
        trainer = GRPOTrainer(model=model, reward_funcs=arithmetic_reward, args=args, train_dataset=dataset,
                              processing_class=tokenizer)
        trainer.remove_callback(PrinterCallback)  # its per-step log dicts would bury the comparison
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        # logged once per rollout batch: the mean completion length (EOS included, as in our completion mask)
        lengths = [entry["completions/mean_length"] for entry in trainer.state.log_history
                   if "completions/mean_length" in entry]
    return seconds, trainer.state.global_step, sum(lengths) * completions


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--tau", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per engine; the fastest counts")
    a = parser.parse_args()
    if a.steps % a.tau or (a.prompts * a.group) % a.tau:
        parser.error("--steps and prompts × group must be multiples of --tau")
    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore")
    shapes = Shapes(a.steps, a.tau, a.prompts, a.group, a.max_new_tokens, 1e-4, a.seed)
    weights = load(ModelConfig("tiny"), a.seed)
    problems = Arithmetic().train(np.random.default_rng(a.seed), a.steps // a.tau * a.prompts)
    engines = {"llm/": lambda w: ours(shapes, w), "TRL GRPOTrainer": lambda w: trl(shapes, w, problems)}
    runs = {name: [] for name in engines}
    for _ in range(a.repeats):  # interleaved, so load from other processes hits both engines alike
        for name, run in engines.items():
            runs[name].append(run((weights[0], copy.deepcopy(weights[1]))))
    results = {name: min(found, key=lambda r: r[0]) for name, found in runs.items()}  # fastest of the repeats
    print(f"tiny Llama, {sum(p.numel() for p in weights[1].parameters()):,} parameters; B = {a.prompts}, "
          f"n = {a.group}, L ≤ {a.max_new_tokens}, τ = {a.tau}, {a.steps} learner steps, {a.threads} thread(s), "
          f"fastest of {a.repeats}")
    rates = {}
    for name, (seconds, steps, tokens) in results.items():
        rates[name] = (steps / seconds, tokens / seconds)
        print(f"{name:>16}: {seconds:7.2f} s, {steps / seconds:7.2f} learner steps/s, "
              f"{tokens / seconds:8.1f} generated tokens/s ({tokens:.0f} tokens)")
    ours_rate, trl_rate = rates["llm/"], rates["TRL GRPOTrainer"]
    print(f"ratio llm/ ÷ TRL: {ours_rate[0] / trl_rate[0]:.2f}× learner steps/s, "
          f"{ours_rate[1] / trl_rate[1]:.2f}× generated tokens/s (target ≥ 1.5×)")


if __name__ == "__main__":
    main()
