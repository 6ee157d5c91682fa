"""Where the learner's batches come from: the ``reuse`` and ``async`` pipelines of THEORY.md §3.

Both hand learner step t a batch and the flat weights β that generated it;
staleness is measured by the learner as t − ``batch.version``.

* :class:`Reuse` (11): the batch of θ_{kτ} serves steps kτ … kτ+τ−1, then the
  sampler syncs — deterministic, the paper's convention.
* :class:`Async`: a rollout thread samples continuously with its own copy of
  the weights, which the learner overwrites after every step (a weight sync);
  a batch older than τ − 1 versions is dropped, so staleness never exceeds
  τ − 1, and how stale each step really was depends on timing (measured, not
  set). Not bit-reproducible across runs: thread timing decides the lags.
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
        self.current, self.dropped = None, 0

    def batch(self, t):
        if t % self.tau == 0:
            g = self.grpo
            self.current = (rollout(self.model, self.tokenizer, self.draw(), g.group, g.max_new_tokens,
                                    g.temperature, self.generator, version=t), flat_params(self.model))
        return self.current

    def sync(self, version):
        """Nothing to copy: the reuse sampler reads the learner's weights at the next k τ."""

    def close(self):
        """No worker to stop."""


class Async:
    """A rollout thread with the weights of the last sync; batches carry the version they were sampled with."""

    def __init__(self, model, tokenizer, draw, grpo, tau, generator):
        self.model, self.tau = model, tau
        self.sampler = copy.deepcopy(model).eval()
        self.lock, self.version, self.dropped = threading.Lock(), 0, 0
        self.queue, self.stop = queue.Queue(maxsize=1), threading.Event()
        self.worker = threading.Thread(target=self._sample, args=(tokenizer, draw, grpo, generator), daemon=True)
        self.worker.start()

    def _sample(self, tokenizer, draw, grpo, generator):
        while not self.stop.is_set():
            try:
                with self.lock:  # the learner cannot overwrite the weights mid-generation
                    item = (rollout(self.sampler, tokenizer, draw(), grpo.group, grpo.max_new_tokens,
                                    grpo.temperature, generator, version=self.version), flat_params(self.sampler))
            except Exception as error:  # handed to the learner, which re-raises it: a dead worker must not hang it
                item = error
            while not self.stop.is_set():
                try:
                    self.queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue

    def batch(self, t):
        while True:
            item = self.queue.get()
            if isinstance(item, Exception):
                raise item
            if t - item[0].version <= self.tau - 1:
                return item
            self.dropped += 1

    def sync(self, version):
        """Copy the learner's weights into the sampler; batches sampled from now on carry ``version``."""
        with self.lock, torch.no_grad():
            for mine, theirs in zip(self.sampler.parameters(), self.model.parameters()):
                mine.copy_(theirs)
            self.version = version

    def close(self):
        self.stop.set()
        while self.worker.is_alive():
            try:
                self.queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self.worker.join()


SOURCES = {"reuse": Reuse, "async": Async}
"""Pipeline name → batch source."""
