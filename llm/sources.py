"""Where the learner's batches come from: the ``reuse`` and ``async`` pipelines of docs/theory.md §3.

Both hand learner step t a batch and the flat weights β that generated it; staleness is measured by the
learner as t − ``batch.version``.

* :class:`Reuse` (11): the batch of θ_{kτ} serves steps kτ … kτ+τ−1, then the sampler syncs, so
  τ_t = t mod τ.
* :class:`Async`: a rollout worker thread runs ahead of the learner through a queue of depth τ − 1. It draws
  batch s with the weights θ_{max(0, s−τ+1)}, which the learner hands it right after step s − τ, so while the
  learner takes step t the worker samples batch t + τ − 1 from θ_t: every consumed batch has lag
  τ_t = min(t, τ − 1), exactly τ − 1 once the queue is full (enforced by the hand-over, not a cap that drops
  batches). Sampling overlaps learning; the numbers do not depend on thread timing.
"""

import copy
import queue
import threading

import torch

from llm.probes import flat_params
from llm.rollout import rollout


class Reuse:
    """One batch per τ learner steps, drawn by the learner's own weights (12: β_t = θ_{t − t mod τ})."""

    def __init__(self, model, tokenizer, draw, grpo, tau, generator):
        self.model, self.tokenizer, self.draw, self.grpo, self.tau, self.generator = (
            model, tokenizer, draw, grpo, tau, generator)
        # a whole batch is first consumed at lag 0, where the learner's forward is the behaviour score
        self.score = grpo.reuse == "slices" and tau > 1
        self.current = None

    def batch(self, t):
        if t % self.tau == 0:
            g = self.grpo
            self.current = (rollout(self.model, self.tokenizer, self.draw(), g.group, g.max_new_tokens,
                                    g.temperature, self.generator, version=t, score=self.score),
                            flat_params(self.model))
        return self.current

    def sync(self, version):
        """Nothing to copy: the reuse sampler reads the learner's weights at the next k τ."""

    def close(self):
        """No worker to stop."""


class Async:
    """A rollout worker with its own copy of the weights, τ − 1 batches ahead of the learner."""

    def __init__(self, model, tokenizer, draw, grpo, tau, generator):
        self.model, self.depth = model, tau - 1
        self.sampler = copy.deepcopy(model).eval()  # sampling runs without autograd; flat_params reads these
        self.ready = queue.Queue()
        self.state = threading.Condition()
        self.loaded, self.generated, self.stop, self.failed = 0, 0, False, False
        self.worker = threading.Thread(target=self._sample, args=(tokenizer, draw, grpo, generator), daemon=True)
        self.worker.start()

    def _sample(self, tokenizer, draw, grpo, generator):
        s = 0
        while True:
            version = max(0, s - self.depth)
            with self.state:
                self.state.wait_for(lambda: self.stop or self.loaded >= version)
                if self.stop:
                    return
            try:
                item = (rollout(self.sampler, tokenizer, draw(), grpo.group, grpo.max_new_tokens, grpo.temperature,
                                generator, version=version), flat_params(self.sampler))
            except Exception as error:  # handed to the learner, which re-raises it: a dead worker must not hang it
                item = error
            self.ready.put(item)
            with self.state:
                self.generated, self.failed = s + 1, isinstance(item, Exception)
                self.state.notify_all()
            if isinstance(item, Exception):
                return
            s += 1

    def batch(self, t):
        item = self.ready.get()
        if isinstance(item, Exception):
            raise item
        return item

    def sync(self, version):
        """Hand θ_version to the worker once it has finished the batch it draws from θ_{version−1}."""
        with self.state:
            # a failed worker draws nothing more: the learner meets its error at the batch where it failed
            self.state.wait_for(lambda: self.failed or self.generated >= version + self.depth)
        with torch.no_grad():
            for mine, theirs in zip(self.sampler.parameters(), self.model.parameters()):
                mine.copy_(theirs)
        with self.state:
            self.loaded = version
            self.state.notify_all()

    def close(self):
        with self.state:
            self.stop = True
            self.state.notify_all()
        self.worker.join()


SOURCES = {"reuse": Reuse, "async": Async}
"""Pipeline name → batch source."""
