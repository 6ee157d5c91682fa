"""Tasks with a verifiable binary reward and a held-out split never used for rollouts.

A task hands out :class:`Problem` s (prompt text, answer text) for training,
a fixed held-out list for ``val_reward``, and scores a completion with
:func:`reward`: 1 if the first number in the completion equals the answer.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def is_heldout(key):
    """Whether the problem named ``key`` is in the held-out tenth: a cryptographic hash, so the held-out problems
    share no residue class or digit pattern the training split could teach."""
    return hashlib.blake2b(key.encode(), digest_size=2).digest()[0] % 10 == 0


@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: str


def _canonical(number):
    """``"1,234.50"`` → ``"1234.5"``: numbers compare by value, not by spelling."""
    value = float(number.replace(",", ""))
    return str(int(value)) if value.is_integer() else repr(value)


def reward(completion, answer):
    """Binary reward: 1.0 if the first number in ``completion`` equals ``answer``, else 0.0."""
    found = NUMBER.search(completion)
    return float(found is not None and _canonical(found.group()) == _canonical(answer))


SHOT_FORMATS = {"equation": ("{a} {op} {b} =", "\n"), "question": ("Q: What is {a} {word} {b}?\nA:", "\n\n")}
"""A few-shot arithmetic prompt's question template and the text after each worked example's answer."""


@dataclass(frozen=True)
class Arithmetic:
    """``a op b =`` with ``digits``-digit operands; a pair is held out by :func:`is_heldout`."""

    digits: int = 1
    ops: str = "+"
    heldout_size: int = 32
    shots: int = 0
    """Worked training examples (fixed for every seed) written before each prompt in :data:`SHOT_FORMATS`."""
    shot_format: str = "equation"
    """``equation``: ``a + b = c`` lines, then ``a + b =``; ``question``: ``Q: What is a plus b?`` / ``A: c``. Of
    the formats measured on SmolLM2 (docs/substrate.md) only ``equation`` starts its sampled reward above 0.3."""

    def __post_init__(self):
        if self.digits < 1:
            raise ValueError(f"arithmetic digits {self.digits} must be ≥ 1")
        if not self.ops or set(self.ops) - set("+-"):
            raise ValueError(f"arithmetic ops {self.ops!r} must be a non-empty subset of '+-'")
        if self.shot_format not in SHOT_FORMATS:
            raise ValueError(f"shot format {self.shot_format!r} is not one of {', '.join(SHOT_FORMATS)}")
        rng = np.random.default_rng(54321)
        examples = [self._draw(rng, heldout=False) for _ in range(self.shots)]
        end = SHOT_FORMATS[self.shot_format][1]
        object.__setattr__(self, "prefix", "".join(f"{self._shown(p).prompt} {p.answer}{end}" for p in examples))

    def _problem(self, a, b, op):
        return Problem(f"{a}{op}{b}=", str(a + b if op == "+" else a - b))

    def _draw(self, rng, heldout):
        while True:
            a, b = (int(v) for v in rng.integers(0, 10 ** self.digits, size=2))
            op = self.ops[int(rng.integers(len(self.ops)))]
            if is_heldout(f"{a}{op}{b}") == heldout:
                return self._problem(a, b, op)

    def _shown(self, problem):
        if not self.shots:
            return problem
        a, op, b = re.fullmatch(r"(\d+)([+-])(\d+)=", problem.prompt).groups()
        question = SHOT_FORMATS[self.shot_format][0].format(a=a, op=op, b=b, word="plus" if op == "+" else "minus")
        return Problem(getattr(self, "prefix", "") + question, problem.answer)

    def train(self, rng, count):
        """``count`` training problems drawn with ``rng`` (never from the held-out split)."""
        return [self._shown(self._draw(rng, heldout=False)) for _ in range(count)]

    def heldout(self):
        """The fixed held-out problems (the same for every seed)."""
        rng = np.random.default_rng(12345)
        return [self._shown(self._draw(rng, heldout=True)) for _ in range(self.heldout_size)]


@dataclass(frozen=True)
class Reverse:
    """``d₁…d_k =`` → ``d_k…d₁``: reverse a string of ``digits`` digits; a string is held out by :func:`is_heldout`.

    Each answer digit copies one prompt digit, so what the policy learns on training strings transfers to
    held-out ones (a one-digit addition table does not: its held-out cells are 14 facts never seen, learned or
    not by the luck of the seed). The last prompt digit is never 0, so no answer has a leading zero and the
    by-value :func:`reward` is the exact string match.
    """

    digits: int = 3
    heldout_size: int = 32

    def __post_init__(self):
        if self.digits < 2:  # one digit is its own reverse, and none of the nine strings is held out
            raise ValueError(f"reverse digits {self.digits} must be ≥ 2")

    def _draw(self, rng, heldout):
        while True:
            head = "".join(str(int(d)) for d in rng.integers(0, 10, size=self.digits - 1))
            text = head + str(int(rng.integers(1, 10)))
            if is_heldout(text) == heldout:
                return Problem(f"{text}=", text[::-1])

    def train(self, rng, count):
        """``count`` training problems drawn with ``rng`` (never from the held-out split)."""
        return [self._draw(rng, heldout=False) for _ in range(count)]

    def heldout(self):
        """The fixed held-out problems (the same for every seed)."""
        rng = np.random.default_rng(12345)
        return [self._draw(rng, heldout=True) for _ in range(self.heldout_size)]


def gsm8k_answer(text, where):
    """The number after ``####`` in a GSM8K answer; a missing one is an error naming ``where``."""
    _, sep, tail = text.rpartition("####")
    found = NUMBER.search(tail) if sep else None
    if found is None:
        raise ValueError(f"{where}: answer has no '#### N' final number")
    return _canonical(found.group())


@dataclass(frozen=True)
class JSONLTask:
    """GSM8K-format problems (``question``, ``answer`` ending ``#### N``); the last ``heldout_size`` rows are held
    out."""

    problems: tuple
    heldout_size: int

    def train(self, rng, count):
        pool = self.problems[: len(self.problems) - self.heldout_size]
        return [pool[int(i)] for i in rng.integers(0, len(pool), size=count)]

    def heldout(self):
        return list(self.problems[len(self.problems) - self.heldout_size:])


def load_gsm8k(path, heldout_size=32):
    """Read a GSM8K-format JSONL file; a bad row is a one-line error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no JSONL file at {path}")
    problems = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("question"), str):
            raise ValueError(f"{where}: row has no 'question' string")
        if not isinstance(row.get("answer"), str):
            raise ValueError(f"{where}: row has no 'answer' string")
        problems.append(Problem(f"Question: {row['question']}\nAnswer:", gsm8k_answer(row["answer"], where)))
    if len(problems) <= heldout_size:
        raise ValueError(f"{path} has {len(problems)} rows: need more than the {heldout_size} held out")
    return JSONLTask(tuple(problems), heldout_size)


def make_task(config):
    """The task of a :class:`llm.config.TaskConfig`."""
    if config.kind == "arithmetic":
        return Arithmetic(config.digits, config.ops, config.heldout, config.shots, config.shot_format)
    if config.kind == "reverse":
        return Reverse(config.digits, config.heldout)
    if config.kind == "gsm8k":
        return load_gsm8k(config.path, config.heldout)
    raise ValueError(f"unknown task {config.kind!r} (choose arithmetic, reverse or gsm8k)")
