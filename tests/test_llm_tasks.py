"""Tasks, rewards and the model loader of llm/."""

import json
import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from llm.config import ModelConfig, TaskConfig, WarmstartConfig
from llm.model import load, tiny_tokenizer
from llm.rollout import accuracy
import llm.warmstart
from llm.tasks import SHOT_FORMATS, Arithmetic, Reverse, load_gsm8k, make_task, reward
from llm.warmstart import CHECK_EVERY, CHECK_PROBLEMS, cache_path, warmstart


@given(st.integers(-10**6, 10**6), st.text(alphabet=" x=+", max_size=4))
def test_reward_reads_the_first_number(value, tail):
    assert reward(f" {value}{tail}", str(value)) == 1.0
    assert reward(f" {value + 1}{tail}", str(value)) == 0.0


def test_reward_compares_numbers_by_value():
    assert reward("1,234.0 apples", "1234") == 1.0
    assert reward("no number", "3") == 0.0


@pytest.mark.parametrize("digits, ops", [(1, "+"), (2, "+-"), (3, "-")])
def test_arithmetic_heldout_split_is_never_drawn_for_training(digits, ops):
    task = Arithmetic(digits, ops, heldout_size=20)
    heldout = {p.prompt for p in task.heldout()}
    train = task.train(np.random.default_rng(0), 500)
    assert heldout and not heldout & {p.prompt for p in train}
    for p in train[:50]:
        a, b = (int(x) for x in p.prompt[:-1].replace("-", "+").split("+"))
        assert a < 10 ** digits and b < 10 ** digits
        assert int(p.answer) == eval(p.prompt[:-1])  # the prompt is a Python expression


def test_worked_examples_come_from_the_training_split_and_prefix_every_prompt():
    task = Arithmetic(1, "+", heldout_size=20, shots=5)
    examples = re.findall(r"(\d) \+ (\d) = (\d+)\n", task.prefix)
    assert len(examples) == 5 and "".join(f"{a} + {b} = {c}\n" for a, b, c in examples) == task.prefix
    assert all(int(a) + int(b) == int(c) for a, b, c in examples)
    heldout = {p.prompt for p in Arithmetic(1, "+", heldout_size=20).heldout()}
    assert not heldout & {f"{a}+{b}=" for a, b, _ in examples}
    for p in task.train(np.random.default_rng(0), 5) + task.heldout():
        question = p.prompt[len(task.prefix):]
        assert p.prompt.startswith(task.prefix) and re.fullmatch(r"\d \+ \d =", question)
        a, b = re.findall(r"\d+", question)
        assert int(a) + int(b) == int(p.answer)


def test_worded_examples_ask_the_same_problems_as_questions():
    """``shot_format="question"`` (the constants preset's) writes the same examples and problems in words."""
    equation, question = (Arithmetic(1, "+", heldout_size=20, shots=3, shot_format=f) for f in SHOT_FORMATS)
    examples = re.findall(r"Q: What is (\d) plus (\d)\?\nA: (\d+)\n\n", question.prefix)
    assert [f"{a} + {b} = {c}\n" for a, b, c in examples] == equation.prefix.splitlines(keepends=True)
    for p, q in zip(equation.train(np.random.default_rng(0), 5), question.train(np.random.default_rng(0), 5)):
        assert p.answer == q.answer and q.prompt.startswith(question.prefix) and q.prompt.endswith("?\nA:")
        numbers = re.findall(r"\d+", p.prompt[len(equation.prefix):])
        assert numbers == re.findall(r"\d+", q.prompt[len(question.prefix):])


def test_bad_arithmetic_config_is_rejected():
    with pytest.raises(ValueError, match="digits 0"):
        Arithmetic(0)
    with pytest.raises(ValueError, match="'\\*'"):
        Arithmetic(1, "*")
    with pytest.raises(ValueError, match="'prose'"):
        Arithmetic(1, shots=2, shot_format="prose")
    with pytest.raises(ValueError, match="shot format 'prose'"):
        TaskConfig(shots=2, shot_format="prose")


@pytest.mark.parametrize("digits", [2, 3, 5])
def test_reverse_answers_are_the_reversed_string_and_the_heldout_split_is_never_drawn(digits):
    task = make_task(TaskConfig("reverse", digits=digits, heldout=20))
    heldout, train = task.heldout(), task.train(np.random.default_rng(0), 500)
    assert not {p.prompt for p in heldout} & {p.prompt for p in train}
    assert task.heldout() == heldout  # the same for every seed
    for p in heldout + train:
        assert re.fullmatch(rf"\d{{{digits}}}=", p.prompt) and p.answer == p.prompt[-2::-1]
        assert p.answer[0] != "0"  # by-value reward is then the exact string match
        assert reward(p.answer[::-1], p.answer) == float(p.answer.isdigit() and p.answer == p.answer[::-1])
    with pytest.raises(ValueError, match="digits 1"):
        Reverse(1)


def test_gsm8k_loader_extracts_the_final_number(tmp_path):
    rows = [{"question": f"q{i}?", "answer": f"work <<{i}>>\n#### {i},000"} for i in range(5)]
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    task = load_gsm8k(path, heldout_size=2)
    assert [p.answer for p in task.heldout()] == ["3000", "4000"]
    assert {p.answer for p in task.train(np.random.default_rng(0), 30)} <= {"0", "1000", "2000"}
    assert make_task(TaskConfig("gsm8k", path=str(path), heldout=2)) == task


@pytest.mark.parametrize("line, message", [
    ('{"question": "q", "answer": "no final"}', "no '#### N'"),
    ('{"question": "q"}', "no 'answer'"),
    ('{"answer": "#### 1"}', "no 'question'"),
    ("not json", "not JSON"),
])
def test_gsm8k_bad_row_names_its_line(tmp_path, line, message):
    path = tmp_path / "g.jsonl"
    path.write_text('{"question": "q", "answer": "#### 1"}\n' + line + "\n")
    with pytest.raises(ValueError, match=message) as error:
        load_gsm8k(path, heldout_size=0)
    assert f"{path}:2" in str(error.value) and "\n" not in str(error.value)


def test_tiny_tokenizer_round_trips_characters():
    tokenizer = tiny_tokenizer()
    ids = tokenizer("12+34=46", add_special_tokens=False).input_ids
    assert len(ids) == 8 and tokenizer.decode(ids) == "12+34=46"


def test_tiny_sizes_have_a_few_hundred_thousand_parameters():
    counts = [sum(p.numel() for p in load(ModelConfig("tiny", size))[1].parameters()) for size in ("small", "medium")]
    assert 1e5 < counts[0] < counts[1] < 1e6


@pytest.mark.parametrize("name", ["no-such-model", "/no/such/dir"])
def test_unknown_model_is_one_line(name):
    with pytest.raises(ValueError, match="unknown model") as error:
        load(ModelConfig(name))
    assert "\n" not in str(error.value)


def test_corrupt_model_files_are_one_line(tmp_path):
    gguf = tmp_path / "broken.gguf"
    gguf.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(ValueError, match="cannot load model") as error:
        load(ModelConfig(str(gguf)))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="no config.json"):
        load(ModelConfig(str(tmp_path)))  # a directory without a model
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(bytes(16))
    with pytest.raises(ValueError, match="cannot load model") as error:
        load(ModelConfig(str(tmp_path)))  # a config and weights that do not load
    assert "\n" not in str(error.value)


def test_warmstart_is_cached_and_reproducible(tmp_path):
    torch.set_num_threads(1)
    warm, task_config = WarmstartConfig(steps=100, cache_dir=str(tmp_path)), TaskConfig()
    task = make_task(task_config)
    weights = []
    for _ in range(2):
        tokenizer, model = load(ModelConfig(), seed=3)
        warmstart(model, tokenizer, task, ModelConfig(), task_config, warm, 3)
        weights.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
        assert cache_path(ModelConfig(), task_config, warm, 3).exists()
    assert torch.equal(weights[0], weights[1])
    tokenizer, fresh = load(ModelConfig(), seed=3)
    assert accuracy(fresh, tokenizer, task.heldout(), 4) < accuracy(model, tokenizer, task.heldout(), 4)
    assert cache_path(ModelConfig(), task_config, warm, 4) != cache_path(ModelConfig(), task_config, warm, 3)


def test_warmstart_with_a_target_stops_at_the_first_check_that_reaches_it(tmp_path, monkeypatch):
    """The target run takes k supervised steps (a multiple of the check interval) and its check accuracy is at
    least the target; the same start run k − CHECK_EVERY fixed steps is still below it."""
    torch.set_num_threads(1)
    task_config = TaskConfig("reverse", digits=3)
    task, target = make_task(task_config), 0.25
    taken = []
    step = llm.warmstart.supervised_step
    monkeypatch.setattr(llm.warmstart, "supervised_step", lambda *a: taken.append(1) or step(*a))
    tokenizer, model = load(ModelConfig(), seed=0)
    warmstart(model, tokenizer, task, ModelConfig(), task_config,
              WarmstartConfig(steps=400, target=target, cache_dir=str(tmp_path)), 0)
    k = len(taken)
    assert 0 < k < 400 and k % CHECK_EVERY == 0
    check = task.train(np.random.default_rng([0, 4]), CHECK_PROBLEMS)
    assert accuracy(model, tokenizer, check, 4) >= target
    tokenizer, before = load(ModelConfig(), seed=0)
    warmstart(before, tokenizer, task, ModelConfig(), task_config,
              WarmstartConfig(steps=k - CHECK_EVERY, cache_dir=str(tmp_path)), 0)
    assert accuracy(before, tokenizer, check, 4) < target


def test_bad_warmstart_target_is_rejected():
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="target"):
            WarmstartConfig(target=bad)
