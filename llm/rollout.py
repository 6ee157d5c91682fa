"""Rollouts: n sampled completions per prompt, behaviour log-probs and the policy version.

Sampling draws from ``softmax(logits / T)`` with an explicit ``torch.Generator``.
The behaviour log-probs ``log π_β(y_t | x, y_<t)`` are scored by :func:`token_logprobs`
under the generating weights, the same function the learner uses, so a batch
consumed by the weights that drew it has ratios exactly 1 (a KV-cached sampler's
numbers differ in the last bits). A batch whose first consumer is the learner at
the generating weights (lag 0) is left unscored: the learner's own forward gives
those numbers, bit for bit, so the scoring forward would be wasted.
"""

from dataclasses import dataclass

import torch

from llm.decoder import decoder, positions
from llm.tasks import reward


@dataclass
class Batch:
    """B groups of n completions; rows are prompt-major (row ``b·n + i`` is sample i of prompt b)."""

    input_ids: torch.Tensor
    """[B·n, P + L] left-padded prompt followed by the completion (pad after its end)."""
    attention_mask: torch.Tensor
    """[B·n, P + L] 1 on real tokens."""
    completion_mask: torch.Tensor
    """[B·n, L] 1 on completion tokens up to and including the end-of-sequence token."""
    behaviour_logp: torch.Tensor | None
    """[B·n, L] log π_β of each completion token under the generating weights; None until scored."""
    rewards: torch.Tensor
    """[B, n] binary rewards."""
    version: int
    """Learner step whose weights generated the batch (the policy-version tag)."""

    @property
    def group(self):
        """n: completions per prompt."""
        return self.rewards.shape[1]

    def rows(self, groups):
        """The sub-batch of the groups in ``groups`` (a slice of prompt indices)."""
        rows = slice(groups.start * self.group, groups.stop * self.group)
        behaviour = None if self.behaviour_logp is None else self.behaviour_logp[rows]
        return Batch(self.input_ids[rows], self.attention_mask[rows], self.completion_mask[rows], behaviour,
                     self.rewards[groups], self.version)


def token_logprobs(model, input_ids, attention_mask, completion_length, temperature=1.0, group=1):
    """[N, L] log-probs of the last ``completion_length`` tokens under ``model`` at ``temperature``.

    ``group``: the rows come in consecutive runs of ``group`` that share their prompt (a GRPO group, as in
    :class:`Batch`). Each prompt is then encoded once and its keys and values repeated for its completions, so
    the forward and its backward cover B·P + N·L tokens instead of N·(P + L); the completions attend to the same
    keys, so the numbers are those of the full forward (to float rounding).
    """
    width = input_ids.shape[1] - completion_length
    if group > 1 and width > 0:
        prompts = input_ids[:, :width].reshape(-1, group, width)
        if input_ids.shape[0] % group or not torch.equal(prompts, prompts[:, :1].expand_as(prompts)):
            raise ValueError(f"rows do not come in runs of group = {group} that share their prompt")
        logits = _shared_prompt_logits(model, input_ids, attention_mask, width, group)
    else:
        # logits at the completion's positions only: over a long prompt the full [N, P + L, V] tensor
        # (V ≈ 50–130 k) would outweigh the model itself
        logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions(attention_mask),
                       logits_to_keep=completion_length + 1).logits[:, :-1]
    targets = input_ids[:, -completion_length:]
    return torch.log_softmax(logits.float() / temperature, dim=-1).gather(-1, targets[..., None])[..., 0]


def _shared_prompt_logits(model, input_ids, attention_mask, width, group):
    """The logits [N, L, V] that predict the completion tokens, each group's prompt (the first ``width`` columns)
    encoded once: its last position predicts the first token, and the completions, fed after the repeated
    prompt cache, predict the rest."""
    prompt_mask = attention_mask[::group, :width]
    out = model(input_ids=input_ids[::group, :width], attention_mask=prompt_mask, position_ids=positions(prompt_mask),
                use_cache=True, logits_to_keep=1)
    first = out.logits.repeat_interleave(group, dim=0)
    if input_ids.shape[1] - width == 1:
        return first
    cache = out.cache
    cache.batch_repeat_interleave(group)
    mask = attention_mask[:, :-1]
    rest = model(input_ids=input_ids[:, width:-1], attention_mask=mask, position_ids=positions(mask)[:, width:],
                 cache=cache, use_cache=True).logits
    return torch.cat([first, rest], dim=1)


@torch.no_grad()
def generate(model, tokenizer, prompts, max_new_tokens, temperature, generator, repeats=1):
    """Sample ``repeats`` completions of each prompt (``temperature = 0``: greedy), with a KV cache.

    Each prompt is encoded once and its cache repeated ``repeats`` times (a group shares its prompt, so a
    long few-shot prompt costs one prefill, not n); the decoder (:func:`llm.decoder.decoder`) stops computing
    rows that ended once a quarter of the rows it holds have. Returns ``(input_ids, attention_mask, completion_mask)``
    as in :class:`Batch`, prompt-major.
    """
    device = next(model.parameters()).device
    encoded = tokenizer(prompts, padding=True, return_tensors="pt", add_special_tokens=False).to(device)
    ids, mask = encoded.input_ids, encoded.attention_mask
    forward, width = decoder(model, ids, mask, max_new_tokens, repeats), ids.shape[1]
    ids, mask = ids.repeat_interleave(repeats, dim=0), mask.repeat_interleave(repeats, dim=0)
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=device)
    decoding = torch.arange(ids.shape[0], device=device)  # the rows the decoder still holds, in its order
    for step in range(max_new_tokens):
        logits = forward.step(ids[decoding, -1]) if step else forward.prefill()
        if not torch.isfinite(logits).all():
            raise FloatingPointError("the policy's logits are not finite")
        if temperature == 0:
            drawn = logits.argmax(-1)
        else:
            drawn = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator)[:, 0]
        token = torch.full_like(done, tokenizer.pad_token_id, dtype=ids.dtype).index_copy(0, decoding, drawn)
        token = torch.where(done, tokenizer.pad_token_id, token)
        mask = torch.cat([mask, (~done).long()[:, None]], dim=1)
        ids = torch.cat([ids, token[:, None]], dim=1)
        done = done | (token == tokenizer.eos_token_id)
        if done.all():
            break
        finished = done[decoding]
        if 4 * int(finished.sum()) >= len(decoding):  # a quarter of the held rows finished: stop computing them
            forward.keep(~finished)
            decoding = decoding[~finished]
    return ids, mask, mask[:, width:]  # the mask's new columns: 1 on completion tokens up to and including EOS


def decode_completions(tokenizer, input_ids, completion_mask):
    """Completion texts (without the end-of-sequence token)."""
    tail = input_ids[:, -completion_mask.shape[1]:].tolist()
    rows = [[token for token, keep in zip(row, keeps) if keep] for row, keeps in zip(tail, completion_mask.tolist())]
    return tokenizer.batch_decode(rows, skip_special_tokens=True)


def rollout(model, tokenizer, problems, group, max_new_tokens, temperature, generator, version, score=True):
    """A :class:`Batch` of ``group`` completions for each problem, tagged with ``version`` (scored if ``score``)."""
    ids, mask, completion_mask = generate(model, tokenizer, [p.prompt for p in problems], max_new_tokens,
                                          temperature, generator, repeats=group)
    behaviour = None
    if score:
        with torch.no_grad():
            behaviour = token_logprobs(model, ids, mask, completion_mask.shape[1], temperature, group)
    texts = decode_completions(tokenizer, ids, completion_mask)
    answers = [p.answer for p in problems for _ in range(group)]
    rewards = torch.tensor([reward(t, a) for t, a in zip(texts, answers)]).reshape(len(problems), group)
    return Batch(ids, mask, completion_mask, behaviour, rewards.to(ids.device), version)


def accuracy(model, tokenizer, problems, max_new_tokens):
    """Mean greedy-decoding reward on ``problems`` (``val_reward``)."""
    ids, _, completion_mask = generate(model, tokenizer, [p.prompt for p in problems], max_new_tokens, 0.0, None)
    texts = decode_completions(tokenizer, ids, completion_mask)
    return sum(reward(t, p.answer) for t, p in zip(texts, problems)) / len(problems)
