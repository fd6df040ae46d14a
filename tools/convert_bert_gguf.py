#!/usr/bin/env python3
"""Convert a BERT embedding model to a llama.cpp GGUF.

Two sources:

  MODEL_DIR   a sentence-transformers folder (config.json, model.safetensors,
              tokenizer.json or vocab.txt, modules.json, 1_Pooling/...)
  MODEL.onnx  a Hugging Face BertModel exported to ONNX (Optimum/Xenova style:
              HF-named biases and LayerNorms, `onnx::MatMul_N` weights consumed
              by MatMul nodes named after their layer), with --tokenizer
              naming its tokenizer.json and --pooling saying how to pool, since
              neither is in the graph. Hyper-parameters come from the
              initializers' shapes and the graph's constants.

Needs only numpy, gguf-py (PyPI `gguf`) and, for ONNX, the `onnx` package: no
torch, no transformers. Mirrors what llama.cpp's convert_hf_to_gguf.py
(BertModel) writes, plus ragd keys the C embedder reads through
llama_model_meta_val_str():

  ragd.max_seq_length  (u32)  truncation length, from sentence_bert_config.json
                              (or --max-seq; default the position table size)
  ragd.normalize       (bool) whether the pipeline L2-normalises (2_Normalize;
                              --normalize for ONNX)
  ragd.query_prefix    (str)  text put before every search query, never before
                              documents (--query-prefix; absent when not given)

The output is deterministic: same inputs -> byte-identical file.

Usage: convert_bert_gguf.py MODEL_DIR|MODEL.onnx OUT.gguf [--outtype f32|f16]
           [--name NAME] [--tokenizer TOKENIZER.json] [--pooling mean|cls]
           [--normalize] [--max-seq N] [--license ID] [--query-prefix TEXT]
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


def load_vocab(tok_json: dict, vocab_txt: Path | None, n_vocab: int) -> tuple[list[str], list[int]]:
    """Token strings (HF form) and gguf.TokenType per id, like get_vocab_base()."""
    vocab: dict[str, int] = {}
    if tok_json.get("model", {}).get("type") == "WordPiece":
        vocab = dict(tok_json["model"]["vocab"])
    elif vocab_txt is not None:
        with open(vocab_txt, encoding="utf-8") as f:
            for i, line in enumerate(f):
                vocab.setdefault(line.rstrip("\n"), i)
    else:
        raise ValueError("no WordPiece vocabulary: tokenizer.json is not WordPiece and there is no vocab.txt")
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


class Source:
    """What the writer needs, whichever format the model came in."""

    def __init__(self, cfg: dict, tensors, tok_json: dict, vocab_txt: Path | None,
                 special_dir: Path | None, pooling: int | None, normalize: bool,
                 max_seq: int, license: str | None, name: str):
        self.cfg = cfg                  # config.json fields (BertConfig names)
        self.tensors = tensors          # iterable of (HF name, array); Linear weights [out, in]
        self.tok_json = tok_json        # tokenizer.json, {} when absent
        self.vocab_txt = vocab_txt      # vocab.txt when tokenizer.json is not WordPiece
        self.special_dir = special_dir  # folder gguf.SpecialVocab reads; None: from tok_json
        self.pooling = pooling
        self.normalize = normalize
        self.max_seq = max_seq
        self.license = license
        self.name = name


def load_sentence_transformers(model_dir: Path, name: str | None) -> Source:
    cfg = load_json(model_dir / "config.json")
    arch = (cfg.get("architectures") or ["BertModel"])[0]
    if cfg.get("model_type") != "bert" and arch not in ("BertModel", "BertForMaskedLM"):
        raise NotImplementedError(f"not a BERT model: {cfg.get('model_type')}/{arch}")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise NotImplementedError("only absolute position embeddings are supported")
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise NotImplementedError(f"unsupported activation {cfg.get('hidden_act')}")
    st_cfg = load_json(model_dir / "sentence_bert_config.json", default={})
    max_seq = int(st_cfg.get("max_seq_length") or cfg["max_position_embeddings"])
    return Source(cfg, read_safetensors(model_dir / "model.safetensors").items(),
                  load_json(model_dir / "tokenizer.json", default={}), model_dir / "vocab.txt",
                  model_dir, pooling_type(model_dir), has_normalize(model_dir), max_seq,
                  readme_license(model_dir), name or model_dir.name)


def onnx_constants(graph) -> dict:
    from onnx import numpy_helper
    out = {}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            out[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return out


def onnx_head_count(graph, consts: dict, hidden: int) -> int:
    """Heads from layer 0's query/key/value Reshape to [batch, seq, heads, head_dim]."""
    producer = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.op_type != "Reshape" or not node.name.startswith("/encoder/layer.0/attention/self/"):
            continue
        shape = producer.get(node.input[1])
        if shape is None or shape.op_type != "Concat" or len(shape.input) != 4:
            continue
        if not all(x in consts for x in shape.input[2:]):
            continue
        heads, head_dim = (int(consts[x].reshape(-1)[0]) for x in shape.input[2:])
        if heads * head_dim == hidden:
            return heads
    raise ValueError("cannot find the attention head count in the ONNX graph")


def onnx_layer_norm_eps(graph, consts: dict) -> float:
    """epsilon of the embeddings' LayerNorm: the op's attribute (opset >= 17) or
    the constant added to the variance in the decomposed form older opsets use."""
    for node in graph.node:
        if node.op_type == "LayerNormalization":
            for a in node.attribute:
                if a.name == "epsilon":
                    return float(a.f)
            return 1e-5  # the ONNX default
    for node in graph.node:
        if node.name == "/embeddings/LayerNorm/Add":
            for x in node.input:
                if x in consts:
                    return float(consts[x].reshape(-1)[0])
    raise ValueError("cannot find the LayerNorm epsilon in the ONNX graph")


def onnx_weight_name(init: str, users: list) -> str:
    """An unnamed `onnx::MatMul_N` weight takes the name of the layer whose
    MatMul consumes it: /encoder/layer.0/attention/self/query/MatMul ->
    encoder.layer.0.attention.self.query.weight."""
    if len(users) != 1 or users[0].op_type != "MatMul" or users[0].input[1] != init:
        raise ValueError(f"ONNX initializer {init!r} is not the weight of exactly one MatMul")
    node = users[0].name
    if not node.startswith("/") or not node.endswith("/MatMul"):
        raise ValueError(f"ONNX initializer {init!r}: MatMul node {node!r} is not named after a layer")
    return node[1:-len("/MatMul")].replace("/", ".") + ".weight"


def load_onnx(path: Path, tokenizer: Path, pooling: str, normalize: bool, max_seq: int | None,
              license: str | None, name: str | None) -> Source:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    ops = {n.op_type for n in graph.node}
    if "Erf" not in ops:
        raise NotImplementedError("only the exact (erf) GELU of BERT is supported")
    users: dict[str, list] = {}
    for node in graph.node:
        for x in node.input:
            users.setdefault(x, []).append(node)
    tensors: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        hf = init.name
        if not hf.startswith(("embeddings.", "encoder.", "pooler.")):
            hf = onnx_weight_name(init.name, users.get(init.name, []))
            arr = arr.T  # MatMul computes x @ W with W [in, out]; a Linear weight is [out, in]
        if hf in tensors:
            raise ValueError(f"ONNX initializers give {hf!r} twice")
        tensors[hf] = arr
    for need in ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                 "embeddings.token_type_embeddings.weight", "encoder.layer.0.intermediate.dense.bias"):
        if need not in tensors:
            raise ValueError(f"{path}: no initializer {need!r}: not a BERT encoder")
    layers = {int(n.split(".")[2]) for n in tensors if n.startswith("encoder.layer.")}
    if layers != set(range(len(layers))):
        raise ValueError(f"{path}: encoder layers {sorted(layers)} are not 0..N-1")
    n_vocab, hidden = tensors["embeddings.word_embeddings.weight"].shape
    consts = onnx_constants(graph)
    cfg = {
        "num_hidden_layers": len(layers),
        "vocab_size": int(n_vocab),
        "hidden_size": int(hidden),
        "intermediate_size": int(tensors["encoder.layer.0.intermediate.dense.bias"].shape[0]),
        "num_attention_heads": onnx_head_count(graph, consts, int(hidden)),
        "layer_norm_eps": onnx_layer_norm_eps(graph, consts),
        "max_position_embeddings": int(tensors["embeddings.position_embeddings.weight"].shape[0]),
        "type_vocab_size": int(tensors["embeddings.token_type_embeddings.weight"].shape[0]),
    }
    modes = {"mean": gguf.PoolingType.MEAN, "cls": gguf.PoolingType.CLS}
    return Source(cfg, tensors.items(), load_json(tokenizer), None, None, int(modes[pooling]),
                  normalize, max_seq or cfg["max_position_embeddings"], license,
                  name or path.stem)


def add_special_from_tokenizer(w: gguf.GGUFWriter, tok_json: dict) -> None:
    """Special token ids and which ones wrap every text, from tokenizer.json
    alone: what gguf.SpecialVocab finds for a BERT that also ships
    tokenizer_config.json ([CLS] text [SEP])."""
    ids = {t["content"]: t["id"] for t in tok_json.get("added_tokens", [])}
    post = tok_json.get("post_processor") or {}
    single = post.get("single") if post.get("type") == "TemplateProcessing" else None
    if not single or "SpecialToken" not in single[0] or "SpecialToken" not in single[-1]:
        raise NotImplementedError(f"tokenizer.json: unsupported post_processor {post.get('type')}")
    first, last = single[0]["SpecialToken"]["id"], single[-1]["SpecialToken"]["id"]
    unk = tok_json.get("model", {}).get("unk_token", "[UNK]")
    w.add_bos_token_id(ids[first])
    w.add_eos_token_id(ids[last])
    w.add_unk_token_id(ids[unk])
    w.add_sep_token_id(ids[last])
    if "[PAD]" in ids:
        w.add_pad_token_id(ids["[PAD]"])
    if "[MASK]" in ids:
        w.add_mask_token_id(ids["[MASK]"])
    w.add_add_bos_token(True)
    w.add_add_eos_token(True)
    w.add_add_sep_token(False)


def convert(src: Source, out: Path, outtype: str, query_prefix: str | None) -> None:
    cfg = src.cfg
    n_layer = int(cfg["num_hidden_layers"])
    n_vocab = int(cfg["vocab_size"])
    max_seq = min(src.max_seq, int(cfg["max_position_embeddings"]))

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    w = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])

    # general
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(src.name)
    if src.license:
        w.add_license(src.license)
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
    if src.pooling is not None:
        w.add_pooling_type(gguf.PoolingType(src.pooling))

    # tokenizer (WPM, phantom-space vocab)
    tokens, toktypes = load_vocab(src.tok_json, src.vocab_txt, n_vocab)
    w.add_token_type_count(int(cfg.get("type_vocab_size", 1)))
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("jina-v2-en")  # what convert_hf_to_gguf picks for this vocab; WPM ignores it
    w.add_token_list([phantom(t, tt) for t, tt in zip(tokens, toktypes)])
    w.add_token_types(toktypes)
    if src.special_dir is not None:
        gguf.SpecialVocab(src.special_dir, n_vocab=n_vocab).add_to_gguf(w, quiet=True)
    else:
        add_special_from_tokenizer(w, src.tok_json)
    # BertNormalizer flags (newer llama.cpp reads these; older ones ignore them)
    norm = src.tok_json.get("normalizer") or {}
    if norm.get("type") == "BertNormalizer":
        if norm.get("lowercase") is not None:
            w.add_bool("tokenizer.ggml.normalizer.lowercase", bool(norm["lowercase"]))
        if norm.get("strip_accents") is not None:
            w.add_bool("tokenizer.ggml.normalizer.strip_accents", bool(norm["strip_accents"]))

    # ragd keys
    w.add_uint32("ragd.max_seq_length", max_seq)
    w.add_bool("ragd.normalize", src.normalize)
    if query_prefix:
        w.add_string("ragd.query_prefix", query_prefix)

    # tensors
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)
    seen = set()
    for hf_name, arr in src.tensors:
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
    needed = {"token_embd.weight", "position_embd.weight", "token_embd_norm.weight"}
    for i in range(n_layer):
        needed |= {f"blk.{i}.{t}.weight" for t in ("attn_q", "attn_k", "attn_v", "attn_output",
                                                    "attn_output_norm", "ffn_up", "ffn_down",
                                                    "layer_output_norm")}
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
    ap.add_argument("model", type=Path, help="sentence-transformers folder or .onnx file")
    ap.add_argument("out", type=Path)
    ap.add_argument("--outtype", choices=("f32", "f16"), default="f32")
    ap.add_argument("--name", default=None, help="general.name (default: folder or file name)")
    ap.add_argument("--tokenizer", type=Path, help="tokenizer.json (ONNX only)")
    ap.add_argument("--pooling", choices=("mean", "cls"), help="pooling (ONNX only)")
    ap.add_argument("--normalize", action="store_true", help="L2-normalised output (ONNX only)")
    ap.add_argument("--max-seq", type=int, default=None, help="truncation length (ONNX only)")
    ap.add_argument("--license", default=None, help="general.license (ONNX only)")
    ap.add_argument("--query-prefix", default=None, help="ragd.query_prefix: text before queries")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("gguf").setLevel(logging.ERROR)  # e.g. "No handler for special token type cls"
    if args.model.suffix == ".onnx":
        if not args.tokenizer or not args.pooling:
            ap.error("an ONNX model needs --tokenizer and --pooling")
        src = load_onnx(args.model, args.tokenizer, args.pooling, args.normalize, args.max_seq,
                        args.license, args.name)
    else:
        if args.tokenizer or args.pooling or args.normalize or args.max_seq or args.license:
            ap.error("--tokenizer, --pooling, --normalize, --max-seq and --license are for ONNX "
                     "models; a sentence-transformers folder says these itself")
        src = load_sentence_transformers(args.model, args.name)
    convert(src, args.out, args.outtype, args.query_prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
