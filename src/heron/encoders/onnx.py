"""ONNX Runtime backend for sentence-transformers models (``SentenceTransformerEncoder(backend="onnx")``).

The Hugging Face transformer underneath a ``SentenceTransformer`` is exported once with
``torch.onnx.export`` (dynamic batch and sequence axes) and cached under
``$HERON_CACHE/onnx/<model>-<key>/model.onnx``, the key hashing the model path, the bytes of its
weights file, the opset and this module's export format version, so a changed checkpoint is
re-exported. The graph is exported with eager attention and, for BERT-family encoders, its
attention, layer-norm and GELU subgraphs are fused by ONNX Runtime's transformer optimizer (kept
only if the fused graph reproduces PyTorch's token vectors to 1e-5 on a probe batch; otherwise the
plain graph is used). Inference runs the exported graph with ONNX Runtime (Bai et al., ONNX Runtime,
https://onnxruntime.ai) on all cores; tokenisation and truncation are the sentence-transformers
model's own (its ``preprocess``/``tokenize``), and the pooling is read from the model's
``Pooling`` module and re-implemented in numpy (mean, mean of sqrt length, CLS, max), so the
vectors equal the PyTorch path's to float rounding (about 1e-6).

``precision="int8"`` quantises the exported graph dynamically (int8 weights, per-batch activation
scales; ``onnxruntime.quantization.quantize_dynamic``) and caches it beside the float32 export.
The *unfused* graph is quantised (the quantiser cannot type the fused attention nodes), and the
result is kept only if its pooled sentence vectors reach cosine >= ``INT8_MIN_COSINE`` to PyTorch's
on the probe batch.

Texts are batched in order of token length (``sort_by_length=True``), so each batch is padded
only to its own longest text; results come back in input order.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from heron._deps import require

#: Version of the exported artefact's layout; part of the cache key and checked on load.
EXPORT_FORMAT_VERSION = 1
OPSET = 17
POOLING_MODES = ("mean", "mean_sqrt_len_tokens", "cls", "max", "weightedmean", "lasttoken")
_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
ONNX_PRECISIONS = ("float32", "int8")
#: Least cosine of an int8 graph's mean-pooled probe vectors to PyTorch's for it to be kept.
INT8_MIN_COSINE = 0.99


class OnnxRuntimeEncoder:
    """Run a sentence-transformers model's transformer with ONNX Runtime; pool in numpy.

    Parameters
    ----------
    st_model:
        A loaded ``sentence_transformers.SentenceTransformer`` made of a ``Transformer``, a
        ``Pooling`` and optionally a ``Normalize`` module (normalising is left to the caller).
    path:
        The path or name the model was loaded from (part of the export cache key).
    threads:
        ONNX Runtime intra-op threads; default: the cores this process may run on.
    cache_dir:
        Where exports are kept; default ``$HERON_CACHE/onnx``.
    precision:
        ``"float32"`` (the exported graph, fused where possible) or ``"int8"`` (the unfused graph,
        dynamically quantised).
    """

    def __init__(
        self,
        st_model: Any,
        path: str,
        *,
        threads: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        precision: str = "float32",
    ) -> None:
        ort = require("onnxruntime", purpose="the ONNX Runtime encoder backend")
        self._st = st_model
        self._transformer, pooling = _split_modules(st_model)
        self.pooling_modes = pooling_modes(pooling)
        self.precision = precision
        self.onnx_path = export_onnx(st_model, path, cache_dir=cache_dir, precision=precision)
        self.input_names = json.loads((self.onnx_path.parent / "manifest.json").read_text())[
            "inputs"
        ]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads) if threads else _cores()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between operators: on a shared machine spinning threads steal the cores
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(self.onnx_path), opts, providers=["CPUExecutionProvider"]
        )

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        max_length: int | None = None,
        progress: bool = False,
        sort_by_length: bool = True,
    ) -> np.ndarray:
        """Pooled, **un-normalised** sentence vectors.

        Parameters
        ----------
        texts:
            ``n`` strings.
        batch_size:
            Texts per forward pass.
        max_length:
            Word pieces kept per text (longer texts are truncated); default the model's
            ``max_seq_length``.
        progress:
            Show a progress bar over batches.
        sort_by_length:
            Batch texts in order of token length (less padding); output order is unchanged.

        Returns
        -------
        ``(n, d)`` float32.
        """
        texts = list(texts)
        n = len(texts)
        dim = (
            self._st.get_embedding_dimension()
            if hasattr(self._st, "get_embedding_dimension")
            else self._st.get_sentence_embedding_dimension()
        )
        out = np.zeros((n, int(dim)), dtype=np.float32)
        if n == 0:
            return out
        max_length = int(max_length or self._st.max_seq_length)
        if sort_by_length:
            tok = self._transformer.tokenizer
            lengths = [
                len(ids) for ids in tok(texts, truncation=True, max_length=max_length)["input_ids"]
            ]
            order = np.argsort(-np.asarray(lengths), kind="stable")
        else:
            order = np.arange(n)
        starts = range(0, n, batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="encoding (onnx)", unit="batch")
        for s in starts:
            idx = order[s : s + batch_size]
            feats = self._tokenize([texts[i] for i in idx], max_length)
            tokens = self._session.run(None, {k: feats[k] for k in self.input_names})[0]
            out[idx] = pool(tokens, feats["attention_mask"], self.pooling_modes)
        return out

    def _tokenize(self, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
        """The sentence-transformers model's own tokenisation (same truncation and special tokens)."""
        if hasattr(self._st, "preprocess"):
            feats = self._st.preprocess(texts, max_length=max_length)
        else:  # sentence-transformers < 5
            feats = self._st.tokenize(texts)
        return {
            k: np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.int64)
            for k, v in feats.items()
            if k in _MODEL_INPUTS
        }


# ---------------------------------------------------------------------------------- pooling
def pooling_modes(pooling: Any) -> tuple[str, ...]:
    """The pooling modes of a sentence-transformers ``Pooling`` module, from its config."""
    cfg = pooling.get_config_dict()
    if "pooling_mode" in cfg:  # sentence-transformers >= 5
        modes = cfg["pooling_mode"]
        modes = (modes,) if isinstance(modes, str) else tuple(modes)
    else:  # older configs: one boolean per mode
        legacy = {
            "pooling_mode_cls_token": "cls",
            "pooling_mode_max_tokens": "max",
            "pooling_mode_mean_tokens": "mean",
            "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
            "pooling_mode_weightedmean_tokens": "weightedmean",
            "pooling_mode_lasttoken": "lasttoken",
        }
        modes = tuple(m for key, m in legacy.items() if cfg.get(key))
    bad = [m for m in modes if m not in POOLING_MODES]
    if not modes or bad:
        raise ValueError(
            f"pooling mode(s) {bad or modes!r} are not supported by the ONNX backend "
            f"(supported: {POOLING_MODES}); use backend='torch' for this model"
        )
    return modes


def pool(tokens: np.ndarray, mask: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """Pool token vectors ``(b, t, d)`` under attention ``mask`` ``(b, t)`` into ``(b, d * len(modes))``,
    as sentence-transformers' ``Pooling`` does."""
    tokens = np.asarray(tokens, dtype=np.float32)
    m = mask.astype(np.float32)[:, :, None]
    parts = []
    for mode in modes:
        if mode in ("mean", "mean_sqrt_len_tokens"):
            total = (tokens * m).sum(axis=1)
            count = np.maximum(m.sum(axis=1), np.float32(1e-9))
            parts.append(total / (count if mode == "mean" else np.sqrt(count)))
        elif mode == "cls":
            first = mask.argmax(axis=1)
            parts.append(tokens[np.arange(tokens.shape[0]), first])
        elif mode == "max":
            parts.append(np.where(m > 0, tokens, -np.inf).max(axis=1))
        elif mode == "weightedmean":  # position-weighted mean (SGPT, Muennighoff 2022)
            w = m * np.arange(1, m.shape[1] + 1, dtype=np.float32)[None, :, None]
            parts.append((tokens * w).sum(axis=1) / np.maximum(w.sum(axis=1), np.float32(1e-9)))
        elif mode == "lasttoken":  # the last attended token (right padding)
            last = m.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)
            parts.append(tokens[np.arange(tokens.shape[0]), last])
        else:  # pragma: no cover - rejected by pooling_modes
            raise ValueError(f"unknown pooling mode {mode!r}")
    return np.concatenate(parts, axis=1).astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------- export
def export_onnx(
    st_model: Any,
    path: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    precision: str = "float32",
) -> Path:
    """Export (once, cached) the transformer under ``st_model`` to ONNX; return the ``.onnx`` path.

    ``precision="int8"`` exports to its own folder a dynamically quantised copy of the unfused
    graph (see the module docstring).

    The export folder holds ``model.onnx`` and ``manifest.json`` (format version, model path,
    weights hash, opset, input names); a folder whose manifest does not match is re-exported.
    Writes are atomic (temporary file, then rename), so concurrent processes never read a
    half-written model.
    """
    if precision not in ONNX_PRECISIONS:
        raise ValueError(f"ONNX precision must be one of {ONNX_PRECISIONS}, got {precision!r}")
    torch = require("torch", purpose="exporting the encoder to ONNX")
    require("onnx", purpose="exporting the encoder to ONNX")
    transformer, _ = _split_modules(st_model)
    hf = _hf_model(transformer)
    dtype = next(iter(hf.parameters())).dtype
    if dtype != torch.float32:
        raise ValueError(
            f"ONNX export needs the float32 model, got one in {dtype}; "
            "load it with precision='float32' (or backend='onnx', which does)"
        )
    weights = weights_hash(path, hf)
    model_id = str(Path(path).resolve()) if os.path.isdir(path) else str(path)
    # float32 keeps the key it always had, so existing exports stay valid
    variant = "" if precision == "float32" else f"\x1f{precision}"
    key = hashlib.sha1(
        f"{model_id}\x1f{weights}\x1f{OPSET}\x1f{EXPORT_FORMAT_VERSION}{variant}".encode()
    ).hexdigest()[:16]
    safe = "".join(
        c if c.isalnum() or c in "-_." else "_" for c in Path(model_id).name or model_id
    )[:60]
    root = Path(cache_dir) if cache_dir is not None else _default_cache() / "onnx"
    folder = root / f"{safe}-{key}"
    onnx_path, manifest_path = folder / "model.onnx", folder / "manifest.json"
    manifest = {
        "format": "heron-onnx-encoder",
        "format_version": EXPORT_FORMAT_VERSION,
        "model": model_id,
        "weights_sha1": weights,
        "opset": OPSET,
    }
    if precision != "float32":
        manifest["precision"] = precision
    if onnx_path.exists() and manifest_path.exists():
        found = json.loads(manifest_path.read_text())
        if all(found.get(k) == v for k, v in manifest.items()) and found.get("inputs"):
            return onnx_path
    folder.mkdir(parents=True, exist_ok=True)

    sample = ["an example text", "another, somewhat longer example text"]
    feats = (
        st_model.preprocess(sample)
        if hasattr(st_model, "preprocess")
        else st_model.tokenize(sample)
    )
    accepted = set(_forward_params(hf))
    names = [k for k in _MODEL_INPUTS if k in feats and k in accepted]
    wrapper = _TokenEmbeddings(torch, hf, names).eval()
    inputs = tuple(feats[k] for k in names)
    raw = folder / f"raw.tmp{os.getpid()}.onnx"
    fused = folder / f"fused.tmp{os.getpid()}.onnx"
    was_training = hf.training
    previous_attn = getattr(hf.config, "_attn_implementation", None)
    try:
        _set_attention(hf, "eager")  # the pattern ONNX Runtime's attention fusion recognises
        with torch.no_grad():
            reference = wrapper(*inputs).numpy()
            torch.onnx.export(
                wrapper,
                inputs,
                str(raw),
                dynamo=False,
                input_names=names,
                output_names=["token_embeddings"],
                dynamic_axes={k: {0: "batch", 1: "sequence"} for k in [*names, "token_embeddings"]},
                opset_version=OPSET,
            )
        feed = {k: np.asarray(feats[k].numpy(), dtype=np.int64) for k in names}
        mask = feed["attention_mask"][:, :, None]
        if precision == "int8":
            cos = _quantize_int8(raw, fused, feed, reference, mask)
            if cos < INT8_MIN_COSINE:
                raise RuntimeError(
                    f"int8 quantisation of {model_id!r} moves its vectors too far (cosine {cos:.4f} "
                    f"< {INT8_MIN_COSINE}); use precision='float32'"
                )
            manifest["fused_operators"] = {}
            manifest["probe_min_cosine"] = cos
            os.replace(fused, onnx_path)
        elif (fusion := _fuse(raw, fused, hf.config)) and _max_diff(
            fused, feed, reference, mask
        ) <= 1e-5:
            manifest["fused_operators"] = fusion
            os.replace(fused, onnx_path)
        else:  # fusion unavailable for this architecture, or it changed the numbers: plain graph
            manifest["fused_operators"] = {}
            if _max_diff(raw, feed, reference, mask) > 1e-4:
                raise RuntimeError(
                    f"the ONNX export of {model_id!r} does not reproduce the PyTorch model; use backend='torch'"
                )
            os.replace(raw, onnx_path)
    finally:
        if previous_attn is not None:
            _set_attention(hf, previous_attn)
        hf.train(was_training)  # the exporter restores the wrapper's mode, recursively
        raw.unlink(missing_ok=True)
        fused.unlink(missing_ok=True)
    manifest["inputs"] = names
    tmp_m = folder / f"manifest.tmp{os.getpid()}.json"
    tmp_m.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp_m, manifest_path)
    return onnx_path


def _set_attention(hf: Any, impl: str) -> None:
    if hasattr(hf, "set_attn_implementation"):
        hf.set_attn_implementation(impl)
    else:  # older transformers
        hf.config._attn_implementation = impl


def _fuse(src: Path, dst: Path, config: Any) -> dict[str, int]:
    """Fuse attention, layer-norm and GELU subgraphs with ONNX Runtime's transformer optimizer
    (BERT-family encoders only); return the fused operator counts, ``{}`` when not applicable."""
    model_type = {
        "bert": "bert",
        "roberta": "bert",
        "xlm-roberta": "bert",
        "distilbert": "bert",
    }.get(getattr(config, "model_type", ""), None)
    if model_type is None:
        return {}
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        model = optimize_model(
            str(src),
            model_type=model_type,
            num_heads=int(getattr(config, "num_attention_heads", 0)),
            hidden_size=int(getattr(config, "hidden_size", 0)),
        )
        model.save_model_to_file(str(dst))
    except Exception:  # noqa: BLE001 - any failure of the optional fusion keeps the plain graph
        return {}
    return {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}


def _quantize_int8(
    src: Path, dst: Path, feed: dict[str, np.ndarray], reference: np.ndarray, mask: np.ndarray
) -> float:
    """Dynamically quantise the (unfused) graph ``src`` to int8 weights into ``dst``; return the
    least cosine between its mean-pooled probe vectors and ``reference``'s."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=False
    )
    import onnxruntime as ort

    out = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    a, b = (out * mask).sum(1), (reference * mask).sum(1)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(cos.min())


def _max_diff(
    path: Path, feed: dict[str, np.ndarray], reference: np.ndarray, mask: np.ndarray
) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, feed)[0]
    return float(np.max(np.abs((out - reference) * mask)))


def weights_hash(path: str, hf_model: Any) -> str:
    """SHA-1 of the model's weights file in ``path`` (or of its parameters when there is none)."""
    h = hashlib.sha1()
    folder = Path(path) if os.path.isdir(path) else None
    files = [folder / f for f in _WEIGHT_FILES if (folder / f).is_file()] if folder else []
    if folder and not files:
        files = sorted(folder.glob("model-*.safetensors"))
    if files:
        for f in files:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
        return h.hexdigest()
    for name, tensor in sorted(hf_model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _split_modules(st_model: Any) -> tuple[Any, Any]:
    """``(Transformer, Pooling)`` modules of ``st_model``; anything else (Dense, ...) is refused."""
    mods = list(st_model)
    kinds = [type(m).__name__ for m in mods]
    if (
        len(mods) < 2
        or kinds[0] != "Transformer"
        or kinds[1] != "Pooling"
        or any(k != "Normalize" for k in kinds[2:])
    ):
        raise ValueError(
            f"the ONNX backend supports models made of Transformer, Pooling[, Normalize]; "
            f"this one is {kinds}; use backend='torch'"
        )
    return mods[0], mods[1]


def _hf_model(transformer: Any) -> Any:
    for attr in ("auto_model", "model"):
        m = getattr(transformer, attr, None)
        if m is not None:
            return m
    raise ValueError(
        "could not find the Hugging Face model inside the Transformer module; use backend='torch'"
    )


def _forward_params(hf: Any) -> list[str]:
    import inspect

    return list(inspect.signature(hf.forward).parameters)


class _TokenEmbeddings:
    """``torch.nn.Module`` factory: positional inputs -> last hidden state (built lazily, torch is optional)."""

    def __new__(cls, torch: Any, hf: Any, names: list[str]) -> Any:
        class TokenEmbeddings(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = hf
                self.names = names

            def forward(self, *inputs: Any) -> Any:
                out = self.model(**dict(zip(self.names, inputs)), return_dict=True)
                return out.last_hidden_state

        return TokenEmbeddings()


def _default_cache() -> Path:
    return Path(os.environ.get("HERON_CACHE", Path.home() / ".cache" / "heron"))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
