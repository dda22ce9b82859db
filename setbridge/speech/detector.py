"""The trigger detector: Vosk with a grammar, plus rules that make it fire fast and rarely falsely.

Vosk in grammar mode forces any speech onto grammar words, often at confidence 1.0, and waits
about a second of silence before it ends an utterance. So the detector

* cleans the audio first (16 kHz, WebRTC noise suppression: :mod:`.frontend`);
* finds utterances itself with an energy tracker that hears the foreground (:mod:`.vad`):
  sound must stand above the noise floor, above the background of the last seconds (crew
  chatter under the call) and, once an utterance is under way, within ``tail_drop_db`` of its
  loudest part (so a reverberant tail counts as quiet); Vosk hears only those utterances, each
  with ``preroll_s`` of the audio before it, and the detector asks for its best hypothesis with
  ``FinalResult()`` after ``trailing_silence_s`` of quiet;
* asks Vosk for several hypotheses and takes a phrase's share of them as its confidence;
* with ``fillers``, decodes the same audio with common short words too and fires only when
  the phrase fits the sound better than they do (a filler model);
* accepts an utterance when it is exactly one phrase said alone (a pause before it, no other
  speech in the same stretch of sound, the filler model satisfied), or when it holds a phrase
  that stands ``rescue_db`` above the sound just before and after it (a call over chatter;
  a trigger word inside one's own sentence does not), in both cases with plausible syllable
  timing, confident words and, with ``onset_db``, a phrase that rises that far above the sound
  just before it (the talker's own pause, not merely a quieter stretch of the same sentence);
* applies state gating (cut only while rolling, roll only when not rolling) and a refractory
  period.

Every rejected near miss (an utterance with a trigger word that did not fire) is logged at
debug level with its reason and handed to ``on_near_miss``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from ..actions import next_state, voice_allowed
from ..config import ACTION_RULES, SpeechSettings
from . import frontend
from .model import UNK, Phrases, check_vocabulary, has_word
from .vad import EnergyVad

log = logging.getLogger(__name__)

STEP_S = 0.05
"""Audio is handed to Vosk in steps of this length."""

NOT_ALONE = ("not a phrase alone", "no pause before it", "phrase covers")
"""Rejections that a phrase standing out of the sound around it overrides."""
CONTEXT_S = 0.6
"""How much sound before and after a phrase it must stand out from (with ``rescue_db``)."""
GUARD_S = 0.08
"""Margin between a phrase's word times and its context, for Vosk's imprecise word edges."""
ONSET_S = 0.3
"""How much sound just before a phrase it must rise above (with ``onset_db``)."""


def _setting(name: str) -> Any:
    """The ``[speech]`` default of ``name``: one source for the settings both share."""
    return SpeechSettings.model_fields[name].default


def _own_rules(speech: SpeechSettings) -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
    """Per action, the thresholds ``[speech.roll]`` and ``[speech.cut]`` set for it."""
    out = []
    for action in ("roll", "cut"):
        rules = getattr(speech, action)
        own = tuple((name, getattr(rules, name)) for name in ACTION_RULES if getattr(rules, name) is not None)
        if own:
            out.append((action, own))
    return tuple(out)


@dataclass(frozen=True)
class Tuning:
    """Detector thresholds. Those that ``[speech]`` sets take their defaults (and their
    documentation) from :class:`setbridge.config.SpeechSettings`; the rest are fixed here."""

    trailing_silence_s: float = _setting("trailing_silence_s")
    pre_silence_s: float = _setting("pre_silence_s")
    min_confidence: float = _setting("min_confidence")
    syllable_s: tuple[float, float] = (0.1, 0.8)
    """Plausible seconds per syllable of a phrase (shortest, longest)."""
    min_sound_share: float = _setting("min_sound_share")
    max_extra_sound_s: float = _setting("max_extra_sound_s")
    refractory_s: float = _setting("refractory_s")
    vad_margin_db: float = _setting("vad_margin_db")
    pad_s: float = 0.3
    """Quiet audio replayed to Vosk at an endpoint so it settles the last word without waiting."""
    max_utterance_s: float = 8.0
    """Force an utterance to end after this long (continuous noise)."""
    preroll_s: float = 0.3
    """Audio from just before an utterance that Vosk hears with it (Vosk hears nothing else)."""
    foreground_db: float = _setting("foreground_db")
    tail_drop_db: float = _setting("tail_drop_db")
    tail_rise_db: float = _setting("tail_rise_db")
    decoys: tuple[str, ...] = ()
    """Extra grammar words that absorb look-alike speech; "[unk]" is added when the model has it."""
    noise_suppression: int = _setting("noise_suppression")
    auto_gain_dbfs: int = _setting("auto_gain_dbfs")
    alternatives: int = _setting("alternatives")
    fillers: tuple[str, ...] = ()
    """Common short words of the model's language for a second recognizer, the filler model."""
    min_filler_margin: float = _setting("min_filler_margin")
    onset_db: float = _setting("onset_db")
    rescue_db: float = _setting("rescue_db")
    per_action: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = _own_rules(SpeechSettings())
    """Per action, the thresholds it sets for itself (``[speech.roll]``, ``[speech.cut]``); () = none."""

    def for_action(self, action: str) -> Tuning:
        """The thresholds that judge a phrase of ``action``: these, with the action's own on top."""
        own: dict[str, Any] = dict(dict(self.per_action).get(action, ()))
        return replace(self, **own) if own else self


SETTABLE = tuple(f.name for f in fields(Tuning) if f.name in SpeechSettings.model_fields)
"""The thresholds ``[speech]`` sets."""


@dataclass(frozen=True)
class Trigger:
    action: str
    phrase: str
    time: float
    """Position in the audio (s) at which the detector fired."""
    confidence: float
    phrase_end: float
    """Where Vosk placed the end of the phrase (s)."""


@dataclass(frozen=True)
class NearMiss:
    """An utterance with a trigger word that did not fire, and why."""

    phrase: str
    """What Vosk heard."""
    action: str | None
    """The action of the phrase, or ``None`` when it was not a phrase alone."""
    time: float
    phrase_end: float
    reason: str


@dataclass
class _Word:
    word: str
    start: float
    end: float
    conf: float


def syllables(text: str) -> int:
    """Hangul syllable blocks, else vowel groups; at least 1 per word."""
    total = 0
    for word in text.split():
        hangul = sum(1 for ch in word if "\uac00" <= ch <= "\ud7a3")
        total += hangul or max(1, len(re.findall(r"[aeiouy]+", word)))
    return total


class Detector:
    """Feed 16-bit mono PCM at ``rate``; get :class:`Trigger` objects back.

    Audio passes the :class:`~setbridge.speech.frontend.FrontEnd` (16 kHz, noise suppression)
    before the energy tracker and Vosk see it.

    ``get_state`` returns the set state ("idle" | "standby" | "rolling") for gating; without it
    the detector follows the state its own triggers would cause, starting idle, as ``detect``
    does. ``gated=False`` lets every phrase fire in any state. ``on_near_miss`` is called with
    every :class:`NearMiss` (an utterance with a trigger word that did not fire).
    """

    def __init__(self, model: Any, rate: int, phrases: Phrases, tuning: Tuning = Tuning(),
                 get_state: Callable[[], str] | None = None, gated: bool = True, model_name: str = "model",
                 on_near_miss: Callable[[NearMiss], None] | None = None):
        check_vocabulary(model, phrases, model_name)
        self.on_near_miss = on_near_miss
        self.front_end = frontend.FrontEnd(rate, tuning.noise_suppression, tuning.auto_gain_dbfs)
        self.rate = frontend.RATE
        self.tuning = tuning
        self.gated = gated
        self.get_state = get_state
        self.state = "idle"
        self.by_text = {" ".join(p.split()): action for action, texts in phrases.items() for p in texts}
        self.trigger_words = {w for text in self.by_text for w in text.split()}
        grammar = list(self.by_text)
        grammar += [d for d in tuning.decoys if d not in self.by_text and has_word(model, d)]
        if has_word(model, UNK):
            grammar.append(UNK)
        self._model = model
        self.grammar = json.dumps(grammar, ensure_ascii=False)
        """The phrase recognizer's grammar (JSON), as handed to Vosk."""
        fillers = [f for f in tuning.fillers if f not in self.trigger_words and has_word(model, f)]
        self._filler_grammar = json.dumps(fillers, ensure_ascii=False) if fillers else None
        self._origin = 0.0
        self._phrase_score = 0.0
        self._filler_score = 0.0
        self.verifier = self._new_verifier()
        self.recognizer = self._new_recognizer()
        self.vad = EnergyVad(self.rate, tuning.vad_margin_db, tuning.foreground_db, tuning.tail_drop_db,
                             tuning.tail_rise_db)
        self.position = 0.0
        self._step_bytes = int(self.rate * STEP_S) * 2
        self._pending = b""
        self._preroll_bytes = int(self.rate * tuning.preroll_s) * 2
        self._history = b""
        self._held = b""
        self._quiet = b""
        self._pad_from = b""
        self._words: list[_Word] = []
        self._previous_end = -1e9
        self._segment_gap_from = -1e9
        self._alternatives: list[tuple[str, float]] = []
        self._last_fire = -1e9
        self._open = False

    def _new_recognizer(self) -> Any:
        """A fresh recognizer per utterance, so word times are relative to a known origin."""
        import vosk

        recognizer = vosk.KaldiRecognizer(self._model, self.rate, self.grammar)
        if self.tuning.alternatives > 1 or self._filler_grammar is not None:
            recognizer.SetMaxAlternatives(self.tuning.alternatives)
        recognizer.SetWords(True)
        self._origin = getattr(self, "position", 0.0)
        return recognizer

    def _new_verifier(self) -> Any:
        """The filler model: the same audio decoded with common words only, for its best score."""
        if self._filler_grammar is None:
            return None
        import vosk

        verifier = vosk.KaldiRecognizer(self._model, self.rate, self._filler_grammar)
        verifier.SetMaxAlternatives(1)
        return verifier

    def _finish_verifier(self, pad: bytes = b"") -> None:
        """End the filler model's utterance where the phrase recognizer's ended."""
        if self.verifier is None:
            return
        if pad:
            self.verifier.AcceptWaveform(pad)
        self._filler_score += self._best_score(self.verifier.FinalResult())
        self.verifier = self._new_verifier()

    @staticmethod
    def _best_score(result: str) -> float:
        alternatives = json.loads(result).get("alternatives") or [{}]
        return float(alternatives[0].get("confidence", 0.0))

    # -- feeding --------------------------------------------------------------------------
    def feed(self, pcm: bytes) -> list[Trigger]:
        """Process a block of audio; return the triggers that fired in it."""
        data = self._pending + self.front_end.process(pcm)
        fired: list[Trigger] = []
        offset = 0
        while len(data) - offset >= self._step_bytes:
            fired += self._step(data[offset:offset + self._step_bytes])
            offset += self._step_bytes
        self._pending = data[offset:]
        return fired

    def flush(self) -> list[Trigger]:
        """End of audio: decide on whatever is left."""
        fired = self._step(self._pending) if self._pending else []
        self._pending = b""
        if self._open or self._words:
            fired += self._endpoint()
        return fired

    def _step(self, chunk: bytes) -> list[Trigger]:
        before = self._history
        self._history = (before + chunk)[-self._preroll_bytes:] if self._preroll_bytes else b""
        self.position += len(chunk) / 2 / self.rate
        heard = self.vad.feed(chunk)
        if not heard:
            self._quiet = (self._quiet + chunk)[-int(self.rate * 0.5) * 2:]
        if not self._open:
            if not heard:
                return []  # Vosk hears only utterances, with a little of the audio before them
            self._open = True
            self._pad_from = self._quiet
            self._start_utterance(before, self.position - len(chunk) / 2 / self.rate)
        if heard:
            # quiet inside an utterance is heard once speech resumes; quiet after it (a reverb
            # tail) never is, so that neither recognizer has to explain it
            self._hear(self._held + chunk)
            self._held = b""
        else:
            self._held += chunk
        started = self.vad.segment_start if self.vad.segment_start is not None else self.position
        if self.vad.silence_s() >= self.tuning.trailing_silence_s or \
                self.position - started >= self.tuning.max_utterance_s:
            return self._endpoint()
        return []

    def _hear(self, data: bytes) -> None:
        if self.recognizer.AcceptWaveform(data):
            self._words += self._parse(self.recognizer.Result())
            self.recognizer = self._new_recognizer()
        if self.verifier is not None and self.verifier.AcceptWaveform(data):
            self._filler_score += self._best_score(self.verifier.Result())

    def _start_utterance(self, preroll: bytes, at: float) -> None:
        """Fresh recognizers for an utterance heard at ``at`` s, fed the audio just before it."""
        self.recognizer = self._new_recognizer()
        self._origin = at - len(preroll) / 2 / self.rate
        self.verifier = self._new_verifier()
        if preroll:
            self.recognizer.AcceptWaveform(preroll)
            if self.verifier is not None:
                self.verifier.AcceptWaveform(preroll)

    def _endpoint(self) -> list[Trigger]:
        # Vosk settles the last word only once it has seen audio after it; hand it the quiet heard
        # before the utterance instead of waiting for more, then take its best hypothesis now.
        size = int(self.rate * self.tuning.pad_s) * 2
        self._held = b""
        pad = self._pad_from[-size:] if size > 0 else b""
        while 0 < len(pad) < size:
            pad += pad
        pad = pad[:size]
        if pad:
            self.recognizer.AcceptWaveform(pad)
        self._words += self._parse(self.recognizer.FinalResult())
        self.recognizer = self._new_recognizer()
        self._finish_verifier(pad)
        return self._decide()

    def _parse(self, result: str) -> list[_Word]:
        parsed = json.loads(result)
        if "alternatives" in parsed:
            words, posterior = self._choose(parsed["alternatives"])
        else:
            words, posterior = parsed.get("result", []), None
        return [_Word(w["word"], self._origin + float(w["start"]), self._origin + float(w["end"]),
                      0.0 if w["word"] == UNK else posterior if posterior is not None else float(w.get("conf", 1.0)))
                for w in words if w.get("word")]

    def _choose(self, alternatives: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float]:
        """The most likely hypothesis that is a phrase alone, else the best one; with its posterior.

        The posterior is the hypothesis' share of the N-best list (softmax of Vosk's scores):
        1.0 when Vosk had no rival, about 0.5 for a near tie with silence or another phrase.
        """
        if not alternatives:
            return [], 1.0
        scores = [float(a.get("confidence", 0.0)) for a in alternatives]
        top = max(scores)
        total = sum(math.exp(s - top) for s in scores)
        ranked = sorted(range(len(alternatives)), key=lambda i: -scores[i])
        chosen = next((i for i in ranked if " ".join(alternatives[i].get("text", "").split()) in self.by_text),
                      ranked[0])
        self._phrase_score += scores[chosen]
        self._alternatives += [(" ".join(a.get("text", "").split()), math.exp(score - top) / total)
                               for a, score in zip(alternatives, scores)]
        return alternatives[chosen].get("result", []), math.exp(scores[chosen] - top) / total

    # -- deciding -------------------------------------------------------------------------
    def _decide(self) -> list[Trigger]:
        words = sorted(self._words, key=lambda w: w.start)
        segment_start = self.vad.segment_start
        segment_end = self.vad.last_speech
        self._segment_gap_from = self.vad.previous_end
        self._words = []
        self._open = False
        margin = (self._phrase_score - self._filler_score) / syllables(" ".join(w.word for w in words) or "x")
        self._phrase_score = self._filler_score = 0.0
        self.vad.end_segment()
        if not words:
            return []
        previous_end, self._previous_end = self._previous_end, words[-1].end
        alternatives, self._alternatives = self._alternatives, []
        text = " ".join(w.word for w in words)
        action = self.by_text.get(text)
        near = action is not None or any(w.word in self.trigger_words for w in words)
        reason = self._reject_reason(action, text, words, previous_end, segment_start, segment_end, margin)
        if reason.startswith(NOT_ALONE) and (found := self._foreground(words, alternatives)):
            words, text, action = found  # the phrase stands out from the talk around it
            reason = self._reject_common(action, text, words)
        if reason:
            if near:
                log.debug("near miss %r at %.2f s rejected: %s", text, self.position, reason)
                if self.on_near_miss is not None:
                    self.on_near_miss(NearMiss(text, action, round(self.position, 3), words[-1].end, reason))
            return []
        assert action is not None
        confidence = min(w.conf for w in words)
        self._last_fire = self.position
        self.state = next_state(action, self.state) or self.state
        return [Trigger(action, text, round(self.position, 3), round(confidence, 3), words[-1].end)]

    def _foreground(self, words: list[_Word],
                    alternatives: list[tuple[str, float]]) -> tuple[list[_Word], str, str] | None:
        """A phrase inside a longer utterance that stands out from the sound around it, if any.

        Under crew chatter the utterance holds more than the call; the call still counts as said
        alone when it is ``rescue_db`` (of its action) louder than the sound just before and just after it
        (a word inside one's own sentence is not). Its confidence is the share of Vosk's
        hypotheses that contain it.
        """
        names = [w.word for w in words]
        for phrase, action in self.by_text.items():
            size = len(phrase.split())
            for i in range(len(names) - size + 1):
                if " ".join(names[i:i + size]) != phrase:
                    continue
                start, end = words[i].start, words[i + size - 1].end
                inside = self.vad.level_db(start, end)
                around = max(self.vad.level_db(start - CONTEXT_S, start - GUARD_S),
                             self.vad.level_db(end + GUARD_S, end + CONTEXT_S))
                rescue_db = self.tuning.for_action(action).rescue_db
                if rescue_db <= 0 or inside - around < rescue_db:
                    continue
                share = sum(p for text, p in alternatives if f" {phrase} " in f" {text} ")
                kept = [_Word(w.word, w.start, w.end, min(1.0, share)) for w in words[i:i + size]]
                return kept, phrase, action
        return None

    def _reject_reason(self, action: str | None, text: str, words: list[_Word], previous_end: float,
                       segment_start: float | None, segment_end: float | None, margin: float) -> str:
        if action is None:
            return "not a phrase alone"
        t = self.tuning.for_action(action)
        gap = words[0].start - previous_end
        if segment_start is not None:
            gap = min(gap, segment_start - self._segment_gap_from)
        if gap < t.pre_silence_s:
            return f"no pause before it ({gap:.2f} s < {t.pre_silence_s} s)"
        low = min(w.conf for w in words)
        if low < t.min_confidence:
            return f"confidence {low:.2f} < {t.min_confidence}"
        span = words[-1].end - words[0].start
        per = span / syllables(text)
        if not t.syllable_s[0] <= per <= t.syllable_s[1]:
            return f"{per:.2f} s per syllable outside {t.syllable_s}"
        if segment_start is not None and segment_end is not None and segment_end > segment_start:
            sound = segment_end - segment_start
            if sound - span > t.max_extra_sound_s:
                return f"phrase covers {span:.2f} s of {sound:.2f} s of sound"
            if sound < t.min_sound_share * span:
                return f"only {sound:.2f} s of sound for a {span:.2f} s phrase"
        if self.verifier is not None and margin < t.min_filler_margin:
            return f"filler words fit better ({margin:.1f} < {t.min_filler_margin} per syllable)"
        return self._reject_common(action, text, words)

    def _reject_common(self, action: str, text: str, words: list[_Word]) -> str:
        """The checks every phrase passes, said alone or standing out of chatter."""
        t = self.tuning.for_action(action)
        low = min(w.conf for w in words)
        if low < t.min_confidence:
            return f"confidence {low:.2f} < {t.min_confidence}"
        per = (words[-1].end - words[0].start) / syllables(text)
        if not t.syllable_s[0] <= per <= t.syllable_s[1]:
            return f"{per:.2f} s per syllable outside {t.syllable_s}"
        if t.onset_db > 0:
            start = words[0].start
            rise = self.vad.level_db(start, words[-1].end) - self.vad.level_db(start - ONSET_S, start - GUARD_S)
            if rise < t.onset_db:
                return f"only {rise:.1f} dB above the sound just before it (< {t.onset_db} dB)"
        if self.position - self._last_fire < t.refractory_s:
            return "refractory"
        if self.gated:
            state = self.get_state() if self.get_state else self.state
            if not voice_allowed(action, state):
                return f"{action} not allowed while {state}"
        return ""


def tuning_from(speech: SpeechSettings) -> Tuning:
    """The detector thresholds from ``[speech]``: every field the two share."""
    values: dict[str, Any] = {}
    for name in SETTABLE:
        value = getattr(speech, name)
        values[name] = tuple(value) if isinstance(value, list) else value
    return Tuning(**values, per_action=_own_rules(speech))
