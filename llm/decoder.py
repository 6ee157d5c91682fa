"""The sampler's forward: a prompt's prefill, then one token per step, with the keys and values cached.

:class:`LlamaDecoder` writes a Llama layer (RMSNorm, rotary attention with grouped heads, SwiGLU) as about twenty
tensor operations on the model's own weights, into a cache allocated once per call. A decode step of a small policy
on a CPU costs mostly its per-operation overhead, and transformers' general forward (mask building, cache objects,
module hooks) adds to it: the tiny Llama's decode step ran 1.3–1.4× faster here at 16–64 rows. Any other
architecture decodes through :class:`ModelDecoder`, the model's own forward. Only sampling reads these logits:
the behaviour, learner and reference log-probs come from the model's forward (:func:`llm.rollout.token_logprobs`),
so no importance ratio depends on which decoder drew the tokens.

Both decoders let the caller drop finished rows (``keep``), so a batch whose samples end at different lengths
stops paying for the ended ones.
"""

import torch
import torch.nn.functional as F
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb


def positions(attention_mask):
    """Position ids that start at 0 on the first real token of a left-padded row."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def is_plain_llama(model):
    """Whether :class:`LlamaDecoder` computes exactly ``model``'s forward (a bias-free SiLU LlamaForCausalLM)."""
    config = model.config
    return (type(model).__name__ == "LlamaForCausalLM" and not getattr(config, "attention_bias", False)
            and not getattr(config, "mlp_bias", False) and config.hidden_act == "silu"
            and getattr(config, "pretraining_tp", 1) == 1)


def additive(allowed, dtype):
    """The additive attention bias of a boolean ``allowed`` mask: 0 where attended, −∞ elsewhere."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, -torch.inf)


def attend(q, keys, values, bias):
    """Attention of one query per row, [N, H, 1, d], to the cache [N, H_kv, S, d] (H a multiple of H_kv).

    Two matmuls, with the query heads grouped by the key head they share (no copy of the cache): for a single
    query this ran faster than the fused attention kernel on a CPU.
    """
    rows, heads, _, dim = q.shape
    grouped = q.view(rows, keys.shape[1], heads // keys.shape[1], dim)
    scores = torch.matmul(grouped, keys.transpose(-1, -2)) * dim ** -0.5 + bias  # [N, H_kv, H / H_kv, S]
    return torch.matmul(torch.softmax(scores, dim=-1), values).view(rows, heads, 1, dim)


class LlamaDecoder:
    """Prefill and decode steps of a LlamaForCausalLM for ``repeats`` samples of each left-padded prompt.

    ``ids`` and ``mask`` are the [B, P] prompts; the cache holds [B·repeats, H_kv, P + max_new_tokens, d] keys
    and values per layer. A generated token sits at position ``prompt length + step`` and is attended by every
    later token of its row (after a row's end the tokens are padding whose logits nobody reads).
    """

    def __init__(self, model, ids, mask, max_new_tokens, repeats):
        self.model, self.repeats = model, repeats
        core = model.model
        attention = core.layers[0].self_attn
        rows, self.width = ids.shape
        self.heads, self.head_dim = model.config.num_attention_heads, attention.head_dim
        self.kv_heads = model.config.num_key_value_heads
        shape = (rows * repeats, self.kv_heads, self.width + max_new_tokens, self.head_dim)
        self.keys = [ids.new_empty(shape, dtype=core.embed_tokens.weight.dtype) for _ in core.layers]
        self.values = [torch.empty_like(k) for k in self.keys]
        table = torch.arange(self.width + max_new_tokens, device=ids.device)[None]
        self.cos, self.sin = core.rotary_emb(core.embed_tokens.weight, table)  # [1, P + L, d] each
        # the rotation of each row's generated positions, prompt length + step, looked up once
        generated = mask.sum(-1, keepdim=True) + torch.arange(max_new_tokens, device=ids.device)
        self.rotations = [t[0, generated].repeat_interleave(repeats, dim=0) for t in (self.cos, self.sin)]
        # additive key bias: padding is never attended, every generated token is
        keep = torch.cat([mask, mask.new_ones(rows, max_new_tokens)], dim=1).bool()
        self.bias = additive(keep, self.cos.dtype).repeat_interleave(repeats, dim=0)[:, None, None]  # [N, 1, 1, P+L]
        self.filled = 0
        self.prompt = (ids, mask)

    def prefill(self):
        """Logits [B·repeats, V] of the token after each prompt."""
        ids, mask = self.prompt
        rows, width = ids.shape
        position = positions(mask)
        cos, sin = self.cos[0, position], self.sin[0, position]  # [B, P, d]
        causal = torch.ones(width, width, dtype=torch.bool, device=ids.device).tril()
        # a query attends to earlier real tokens and to itself (a padding query then has one key, not none)
        allowed = (causal & mask.bool()[:, None, :]) | torch.eye(width, dtype=torch.bool, device=ids.device)
        hidden = self._layers(self.model.model.embed_tokens(ids), cos, sin, additive(allowed, cos.dtype)[:, None],
                              slice(0, width), self.repeats)
        self.filled = width
        return self._logits(hidden[:, -1]).repeat_interleave(self.repeats, dim=0)

    def step(self, token):
        """Logits [rows, V] after appending ``token`` [rows] to every held row."""
        cos, sin = (rotation[:, self.filled - self.width, None] for rotation in self.rotations)  # [N, 1, d]
        at = slice(self.filled, self.filled + 1)
        hidden = self._layers(self.model.model.embed_tokens(token[:, None]), cos, sin,
                              self.bias[..., :self.filled + 1], at, 1)
        self.filled += 1
        return self._logits(hidden[:, -1])

    def keep(self, rows):
        """Drop every cached row but ``rows`` (a boolean mask over the held rows)."""
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]
        self.bias, self.rotations = self.bias[rows], [rotation[rows] for rotation in self.rotations]

    def _layers(self, hidden, cos, sin, bias, at, repeats):
        """Run every decoder layer on ``hidden`` [rows, S, D] (rotary tables ``cos``, ``sin`` [rows, S, d]), writing
        its keys and values at cache columns ``at`` (each row's ``repeats`` copies); attention reads the cache up to
        ``at.stop``."""
        rows, width, _ = hidden.shape
        for layer, keys, values in zip(self.model.model.layers, self.keys, self.values):
            attention, mlp = layer.self_attn, layer.mlp
            x = F.rms_norm(hidden, (hidden.shape[-1],), layer.input_layernorm.weight,
                           layer.input_layernorm.variance_epsilon)
            q = F.linear(x, attention.q_proj.weight).view(rows, width, self.heads, self.head_dim).transpose(1, 2)
            k = F.linear(x, attention.k_proj.weight).view(rows, width, self.kv_heads, self.head_dim).transpose(1, 2)
            v = F.linear(x, attention.v_proj.weight).view(rows, width, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            keys[:, :, at] = k.repeat_interleave(repeats, dim=0) if repeats > 1 else k
            values[:, :, at] = v.repeat_interleave(repeats, dim=0) if repeats > 1 else v
            if at.start:  # a decode step attends to the whole cache; the prefill within its prompt
                out = attend(q, keys[:, :, :at.stop], values[:, :, :at.stop], bias)
            else:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, enable_gqa=self.kv_heads != self.heads)
            hidden = hidden + F.linear(out.transpose(1, 2).reshape(rows, width, -1), attention.o_proj.weight)
            x = F.rms_norm(hidden, (hidden.shape[-1],), layer.post_attention_layernorm.weight,
                           layer.post_attention_layernorm.variance_epsilon)
            hidden = hidden + F.linear(F.silu(F.linear(x, mlp.gate_proj.weight)) * F.linear(x, mlp.up_proj.weight),
                                       mlp.down_proj.weight)
        return hidden

    def _logits(self, hidden):
        """Logits at ``hidden`` [rows, D], through the final norm and the head."""
        norm = self.model.model.norm
        return self.model.lm_head(F.rms_norm(hidden, (hidden.shape[-1],), norm.weight, norm.variance_epsilon)).float()


class ModelDecoder:
    """The same interface through the model's own forward and transformers' cache (any architecture)."""

    def __init__(self, model, ids, mask, max_new_tokens, repeats):
        self.model, self.ids, self.mask, self.repeats = model, ids, mask, repeats
        self.cache = None

    def prefill(self):
        """Logits [B·repeats, V] of the token after each prompt."""
        out = self.model(input_ids=self.ids, attention_mask=self.mask, position_ids=positions(self.mask),
                         use_cache=True, logits_to_keep=1)
        self.cache = out.cache
        if self.repeats > 1:
            self.cache.batch_repeat_interleave(self.repeats)
            self.mask = self.mask.repeat_interleave(self.repeats, dim=0)
        return out.logits[:, -1].float().repeat_interleave(self.repeats, dim=0)

    def step(self, token):
        """Logits [rows, V] after appending ``token`` to every held row (each one attended, as in LlamaDecoder)."""
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        out = self.model(input_ids=token[:, None], attention_mask=self.mask, position_ids=positions(self.mask)[:, -1:],
                         cache=self.cache, use_cache=True)
        self.cache = out.cache
        return out.logits[:, -1].float()

    def keep(self, rows):
        """Drop every cached row but ``rows`` (a boolean mask over the held rows)."""
        self.cache.batch_select_indices(rows.nonzero()[:, 0])
        self.mask = self.mask[rows]


def decoder(model, ids, mask, max_new_tokens, repeats=1):
    """The fastest decoder that computes ``model``'s forward exactly (:class:`LlamaDecoder` where it applies)."""
    kind = LlamaDecoder if is_plain_llama(model) else ModelDecoder
    return kind(model, ids, mask, max_new_tokens, repeats)
