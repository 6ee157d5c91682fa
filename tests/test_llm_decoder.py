"""The sampler's decoders compute the model's forward; the sampling loop drops finished rows without losing any."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import llm.rollout
from llm.decoder import LlamaDecoder, ModelDecoder, decoder, positions
from llm.model import tiny_tokenizer
from llm.rollout import generate

PROMPTS = ["1+2=", "12+345=", "9=", "3+3+3+33="]  # four prompt lengths: rows carry different left padding
LLAMA3_ROPE = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=16)


def tiny(seed=0, **config):
    tokenizer = tiny_tokenizer()
    tokenizer.padding_side = "left"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=64,
                                             hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                             num_attention_heads=4, tie_word_embeddings=True,
                                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                             **config))
    return tokenizer, model.eval()


@pytest.mark.parametrize("config", [{}, dict(num_key_value_heads=2, rope_scaling=LLAMA3_ROPE),
                                    dict(attention_bias=True)], ids=["llama", "grouped-llama3-rope", "biased"])
@torch.no_grad()
def test_decoder_logits_are_the_full_forward_at_every_step_and_after_dropping_rows(config):
    tokenizer, model = tiny(**config)
    prompt = tokenizer(PROMPTS, padding=True, return_tensors="pt", add_special_tokens=False)
    forward = decoder(model, prompt.input_ids, prompt.attention_mask, 5, repeats=3)
    assert isinstance(forward, ModelDecoder if config.get("attention_bias") else LlamaDecoder)
    ids, mask = prompt.input_ids.repeat_interleave(3, 0), prompt.attention_mask.repeat_interleave(3, 0)
    held, logits = torch.arange(len(ids)), forward.prefill()
    draws = torch.Generator().manual_seed(1)
    for step in range(5):
        full = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).logits[:, -1]
        torch.testing.assert_close(logits, full[held], rtol=0, atol=1e-5)
        token = torch.randint(4, len(tokenizer), (len(ids),), generator=draws)
        ids, mask = torch.cat([ids, token[:, None]], 1), torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        if step in (1, 3):  # drop a different third of the held rows each time
            keep = torch.arange(len(held)) % 3 != step % 3
            forward.keep(keep)
            held = held[keep]
        logits = forward.step(token[held])


class ScriptedDecoder:
    """A decoder whose row r emits ``(r + step) % 5 + FIRST`` and ends (EOS) at step ``r % 4 + 1``: the sampling
    loop must feed every held row its own last token and keep rows and outputs aligned as rows are dropped."""

    FIRST = 5

    def __init__(self, model, ids, mask, max_new_tokens, repeats):
        self.held, self.step_no, self.vocab, self.eos = torch.arange(len(ids) * repeats), 0, 22, 2
        self.kept = []

    def _logits(self):
        token = torch.where(self.step_no >= self.held % 4 + 1, self.eos, (self.held + self.step_no) % 5 + self.FIRST)
        return torch.nn.functional.one_hot(token, self.vocab).float() * 50

    def prefill(self):
        return self._logits()

    def step(self, token):
        assert torch.equal(token, (self.held + self.step_no) % 5 + self.FIRST), "a row was fed another row's token"
        self.step_no += 1
        return self._logits()

    def keep(self, rows):
        self.kept.append(int(rows.sum()))
        self.held = self.held[rows]


def test_generate_drops_finished_rows_and_keeps_every_completion_in_place(monkeypatch):
    tokenizer, model = tiny()
    made = []
    monkeypatch.setattr(llm.rollout, "decoder", lambda *args: made.append(ScriptedDecoder(*args)) or made[-1])
    ids, mask, completion = generate(model, tokenizer, PROMPTS, 8, 0.0, None, repeats=2)
    rows = torch.arange(len(PROMPTS) * 2)
    length = rows % 4 + 2  # r % 4 + 1 tokens, then EOS
    assert completion.shape[1] == 5 and torch.equal(completion.sum(1), length)
    for r in rows.tolist():
        expected = [(r + s) % 5 + ScriptedDecoder.FIRST for s in range(r % 4 + 1)] + [tokenizer.eos_token_id]
        assert ids[r, -5:][:length[r]].tolist() == expected
        assert (ids[r, -5:][length[r]:] == tokenizer.pad_token_id).all()
    assert torch.equal(mask[:, -5:], completion)
    assert made[0].kept and made[0].kept[-1] < len(rows)  # finished rows left the decoder


@torch.no_grad()
def test_both_decoders_draw_the_same_samples_from_one_seed():
    tokenizer, model = tiny(seed=3)
    drawn = []
    for kind in (LlamaDecoder, ModelDecoder):
        llm.rollout.decoder, before = (lambda *args, kind=kind: kind(*args)), llm.rollout.decoder
        try:
            drawn.append(generate(model, tokenizer, PROMPTS, 12, 1.0, torch.Generator().manual_seed(0), repeats=4))
        finally:
            llm.rollout.decoder = before
    lengths = drawn[0][2].sum(1)
    assert lengths.min() < lengths.max()  # rows ended at different steps, so rows were dropped on the way
    for ours, theirs in zip(*drawn):
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("config", [{}, dict(num_key_value_heads=2, rope_scaling=LLAMA3_ROPE)],
                         ids=["llama", "grouped-llama3-rope"])
def test_shared_prompt_logprobs_and_gradients_are_the_full_forwards(config):
    tokenizer, model = tiny(**config)
    ids, mask, completion = generate(model, tokenizer, PROMPTS, 6, 1.0, torch.Generator().manual_seed(2), repeats=3)
    length = completion.shape[1]
    assert bool((completion.sum(-1) < length).any())  # some rows ended early: padding inside the completions
    grads = []
    for group in (1, 3):
        model.zero_grad()
        logp = llm.rollout.token_logprobs(model, ids, mask, length, 0.7, group)
        (logp * completion).sum().backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
        if group == 1:
            full = logp.detach()
    torch.testing.assert_close(logp.detach()[completion.bool()], full[completion.bool()], atol=1e-5, rtol=0)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5 * float(grads[0].abs().max()), rtol=0)
    # a single new token: the prompt pass alone predicts it
    torch.testing.assert_close(llm.rollout.token_logprobs(model, ids[:, :-length + 1], mask[:, :-length + 1], 1, 0.7,
                                                         group=3), full[:, :1], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="group = 2"):  # rows 0 and 1 share a prompt, rows 2 and 3 do not
        llm.rollout.token_logprobs(model, ids, mask, length, group=2)
