#!/usr/bin/env python3
"""Convert a sentence-transformers BERT model (safetensors) to a llama.cpp GGUF.

Needs only numpy and gguf-py (PyPI `gguf`): no torch, no transformers.
Mirrors what llama.cpp's convert_hf_to_gguf.py (BertModel) writes, plus two
ragd keys the C embedder reads through llama_model_meta_val_str():

  ragd.max_seq_length  (u32)  truncation length, from sentence_bert_config.json
  ragd.normalize       (bool) whether the pipeline L2-normalises (2_Normalize)

The output is deterministic: same inputs -> byte-identical file.

Usage: convert_bert_gguf.py MODEL_DIR OUT.gguf [--outtype f32|f16] [--name NAME]
"""
from __future__ import annotations

import argparse
import logging
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np

import gguf

SAFETENSORS_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Minimal safetensors reader: u64 header length, JSON header, raw data."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        if hlen <= 0 or 8 + hlen > size:
            raise ValueError(f"{path}: bad safetensors header length {hlen}")
        header = json.loads(f.read(hlen))
    base = 8 + hlen
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt, shape = info["dtype"], info["shape"]
        begin, end = info["data_offsets"]
        buf = raw[base + begin: base + end]
        if dt == "BF16":
            arr = (buf.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif dt in SAFETENSORS_DTYPES:
            arr = buf.view(SAFETENSORS_DTYPES[dt])
        else:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt}")
        out[name] = arr.reshape(shape)
    return out


def load_json(path: Path, default=None):
    if not path.is_file():
        if default is not None:
            return default
        raise FileNotFoundError(path)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def pooling_type(model_dir: Path) -> int | None:
    """sentence-transformers Pooling module -> gguf.PoolingType (MEAN=1, CLS=2, LAST=3)."""
    pooling_path = None
    for mod in load_json(model_dir / "modules.json", default=[]):
        if mod.get("type", "").endswith("Pooling"):
            pooling_path = mod["path"]
            break
    if pooling_path is None and (model_dir / "1_Pooling" / "config.json").is_file():
        pooling_path = "1_Pooling"
    if pooling_path is None:
        return None
    cfg = load_json(model_dir / pooling_path / "config.json")
    if cfg.get("pooling_mode_mean_tokens"):
        return int(gguf.PoolingType.MEAN)
    if cfg.get("pooling_mode_cls_token"):
        return int(gguf.PoolingType.CLS)
    if cfg.get("pooling_mode_lasttoken"):
        return int(gguf.PoolingType.LAST)
    mode = cfg.get("pooling_mode")
    mapping = {"mean": gguf.PoolingType.MEAN, "cls": gguf.PoolingType.CLS, "lasttoken": gguf.PoolingType.LAST}
    if mode in mapping:
        return int(mapping[mode])
    raise NotImplementedError(f"unsupported pooling config: {cfg}")


def readme_license(model_dir: Path) -> str | None:
    """`license:` from the model card's YAML front matter, if any."""
    readme = model_dir / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end < 0:
        return None
    import yaml
    meta = yaml.safe_load(text[3:end]) or {}
    lic = meta.get("license") if isinstance(meta, dict) else None
    return str(lic) if lic else None


def has_normalize(model_dir: Path) -> bool:
    mods = load_json(model_dir / "modules.json", default=[])
    return any(m.get("type", "").endswith("Normalize") for m in mods)


def load_vocab(model_dir: Path, n_vocab: int) -> tuple[list[str], list[int]]:
    """Token strings (HF form) and gguf.TokenType per id, like get_vocab_base()."""
    tok_json = load_json(model_dir / "tokenizer.json", default={})
    vocab: dict[str, int] = {}
    if tok_json.get("model", {}).get("type") == "WordPiece":
        vocab = dict(tok_json["model"]["vocab"])
    else:
        with open(model_dir / "vocab.txt", encoding="utf-8") as f:
            for i, line in enumerate(f):
                vocab.setdefault(line.rstrip("\n"), i)
    added = {t["id"]: t for t in tok_json.get("added_tokens", [])}
    for tid, t in added.items():
        vocab[t["content"]] = tid
    reverse = {i: t for t, i in vocab.items()}
    if reverse and max(reverse) >= n_vocab:
        raise ValueError(f"vocab has id {max(reverse)} >= vocab_size {n_vocab}")
    tokens: list[str] = []
    toktypes: list[int] = []
    for i in range(n_vocab):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            toktypes.append(int(gguf.TokenType.UNUSED))
            continue
        tok = reverse[i]
        if i in added and (added[i].get("special") or (tok.startswith("[") and tok.endswith("]"))):
            toktypes.append(int(gguf.TokenType.CONTROL))
        elif i in added:
            toktypes.append(int(gguf.TokenType.USER_DEFINED))
        else:
            toktypes.append(int(gguf.TokenType.NORMAL))
        tokens.append(tok)
    return tokens, toktypes


def phantom(tok: str, toktype: int) -> str:
    """WPM vocab in llama.cpp form: word starts get U+2581, '##' continuations lose it."""
    if toktype == gguf.TokenType.CONTROL:
        return tok
    if tok.startswith("##"):
        return tok[2:]
    return "\u2581" + tok


def hf_to_gguf_name(name: str, tmap: gguf.TensorNameMap) -> str | None:
    if name.startswith("bert."):
        name = name[5:]
    if name.endswith(".gamma"):
        name = name[:-6] + ".weight"
    if name.endswith(".beta"):
        name = name[:-5] + ".bias"
    # embeddings only: no pooler, no MLM/NSP heads
    if name in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"):
        return None
    if name.startswith("cls.predictions") or name.startswith("cls.seq_relationship"):
        return None
    new = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
    if new is None:
        raise ValueError(f"cannot map tensor {name!r}")
    return new


def convert(model_dir: Path, out: Path, outtype: str, name: str | None) -> None:
    cfg = load_json(model_dir / "config.json")
    arch = (cfg.get("architectures") or ["BertModel"])[0]
    if cfg.get("model_type") != "bert" and arch not in ("BertModel", "BertForMaskedLM"):
        raise NotImplementedError(f"not a BERT model: {cfg.get('model_type')}/{arch}")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise NotImplementedError("only absolute position embeddings are supported")
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise NotImplementedError(f"unsupported activation {cfg.get('hidden_act')}")

    n_layer = int(cfg["num_hidden_layers"])
    n_vocab = int(cfg["vocab_size"])
    st_cfg = load_json(model_dir / "sentence_bert_config.json", default={})
    max_seq = int(st_cfg.get("max_seq_length") or cfg["max_position_embeddings"])
    max_seq = min(max_seq, int(cfg["max_position_embeddings"]))
    if name is None:
        name = model_dir.name

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    w = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])

    # general
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    lic = readme_license(model_dir)
    if lic:
        w.add_license(lic)
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32 if outtype == "f32" else gguf.LlamaFileType.MOSTLY_F16))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    # hparams
    w.add_block_count(n_layer)
    w.add_context_length(int(cfg["max_position_embeddings"]))
    w.add_embedding_length(int(cfg["hidden_size"]))
    w.add_feed_forward_length(int(cfg["intermediate_size"]))
    w.add_head_count(int(cfg["num_attention_heads"]))
    w.add_layer_norm_eps(float(cfg.get("layer_norm_eps", 1e-12)))
    w.add_causal_attention(False)
    pt = pooling_type(model_dir)
    if pt is not None:
        w.add_pooling_type(gguf.PoolingType(pt))

    # tokenizer (WPM, phantom-space vocab)
    tokens, toktypes = load_vocab(model_dir, n_vocab)
    w.add_token_type_count(int(cfg.get("type_vocab_size", 1)))
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("jina-v2-en")  # what convert_hf_to_gguf picks for this vocab; WPM ignores it
    w.add_token_list([phantom(t, tt) for t, tt in zip(tokens, toktypes)])
    w.add_token_types(toktypes)
    special = gguf.SpecialVocab(model_dir, n_vocab=n_vocab)
    special.add_to_gguf(w, quiet=True)
    # BertNormalizer flags (newer llama.cpp reads these; older ones ignore them)
    norm = load_json(model_dir / "tokenizer.json", default={}).get("normalizer") or {}
    if norm.get("type") == "BertNormalizer":
        if norm.get("lowercase") is not None:
            w.add_bool("tokenizer.ggml.normalizer.lowercase", bool(norm["lowercase"]))
        if norm.get("strip_accents") is not None:
            w.add_bool("tokenizer.ggml.normalizer.strip_accents", bool(norm["strip_accents"]))

    # ragd keys
    w.add_uint32("ragd.max_seq_length", max_seq)
    w.add_bool("ragd.normalize", has_normalize(model_dir))

    # tensors
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)
    tensors = read_safetensors(model_dir / "model.safetensors")
    seen = set()
    for hf_name, arr in tensors.items():
        new = hf_to_gguf_name(hf_name, tmap)
        if new is None:
            continue
        if new in seen:
            raise ValueError(f"duplicate tensor {new}")
        seen.add(new)
        data = np.ascontiguousarray(arr, dtype=np.float32)
        if outtype == "f16" and data.ndim == 2 and new.endswith(".weight") and new != "token_types.weight":
            data = data.astype(np.float16)
        w.add_tensor(new, data)
    needed = {"token_embd.weight", "position_embd.weight", "token_embd_norm.weight", "blk.0.attn_q.weight"}
    if not needed <= seen:
        raise ValueError(f"missing tensors: {sorted(needed - seen)}")

    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file(progress=False)
        w.close()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--outtype", choices=("f32", "f16"), default="f32")
    ap.add_argument("--name", default=None, help="general.name (default: model dir name)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("gguf").setLevel(logging.ERROR)  # e.g. "No handler for special token type cls"
    convert(args.model_dir, args.out, args.outtype, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
