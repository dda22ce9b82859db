"""Configuration: one pydantic model, loaded once and handed down.

Sources (pydantic-settings, see :mod:`setbridge.config_sources`), later wins: defaults, a TOML file
(``--config PATH``, else ``/etc/setbridge/setbridge.toml`` when present), then environment variables
``SETBRIDGE_<SECTION>__<KEY>`` (for example ``SETBRIDGE_MQTT__PORT=18830``).
Nothing else in setbridge reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from . import config_sources
from .actions import Action as Action  # re-exported: [speech] phrases are keyed by action
from .ids import Id

DEFAULT_CONFIG_PATH = Path("/etc/setbridge/setbridge.toml")


SYSTEM_STATE_DIR = Path("/var/lib/setbridge")


def default_state_dir(environ: Mapping[str, str], euid: int, home: Path,
                      system_dir: Path = SYSTEM_STATE_DIR) -> Path:
    """Where state lives unless ``[hub] state_dir`` says: the service's ``StateDirectory`` (systemd
    passes it as ``STATE_DIRECTORY``), else ``/var/lib/setbridge`` for root and for the user that
    owns it (the ``setbridge`` system user, also when the installer runs a command as it), else
    ``~/.local/state/setbridge``."""
    from_systemd = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if from_systemd:
        return Path(from_systemd)
    if euid == 0:
        return system_dir
    try:
        if system_dir.stat().st_uid == euid:
            return system_dir
    except OSError:
        pass
    return home / ".local" / "state" / "setbridge"


def _default_state_dir() -> Path:
    return default_state_dir(os.environ, os.geteuid(), Path.home())


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class HubSettings(Section):
    id: Id = "hub-1"
    """This hub's id (topic ``{base}/hub/{id}/status``)."""
    set: Id = "main"
    """The set (stage) this hub controls."""
    state_dir: Path = Field(default_factory=_default_state_dir)
    """Where seq, the journal and installed models live."""
    heartbeat_s: float = Field(1.0, gt=0, le=60)
    """Seconds between heartbeats on ``{base}/set/{set}/heartbeat``."""
    post_roll_s: float = Field(0.0, ge=0, le=60)
    """After a cut, stay rolling this long (as sound recorders do)."""
    transaction_window_s: float = Field(600.0, ge=0, le=86400)
    """A request repeated with the same transaction within this many seconds gets its first
    answer and changes nothing (at most 10,000 answers are remembered, 2,500 per ``source``)."""
    request_max_age_s: float = Field(5.0, gt=0, le=3600)
    """A request sent (its ``sent_at``) longer ago than this is refused, never executed late; so is one
    past its own ``deadline`` or MQTT 5 Message Expiry."""


class TlsSettings(Section):
    enabled: bool = False
    ca: Path | None = None
    """CA certificate file; the system store when unset."""
    cert: Path | None = None
    """Client certificate file (mutual TLS)."""
    key: Path | None = None
    """Client key file (mutual TLS)."""


class ToolsUser(Section):
    username: str | None = None
    """Broker user of the command-line tools (send, watch, status, offload report); unset = the
    ``[mqtt]`` user. The generated broker allows one connection per user, so on the hub's machine
    the tools need a user of their own, or they would replace the hub's connection."""
    password: SecretStr | None = None


class MqttSettings(Section):
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsSettings = TlsSettings()
    tools: ToolsUser = ToolsUser()
    base_topic: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")] = "setbridge"
    """Prefix of every topic; no wildcards, no leading or trailing slash."""
    keepalive_s: int = Field(30, ge=5, le=3600)
    protocol: Literal["5", "3.1.1"] = "5"
    """The MQTT protocol of the hub and the CLI: ``5`` (answers on a request's Response Topic,
    retain-as-published) or ``3.1.1`` for a broker without MQTT 5 (then every answer goes to
    ``{base}/set/{set}/response``)."""
    reconnect_max_s: float = Field(10.0, gt=0, le=300)
    """Longest wait between reconnect attempts (backoff starts at 0.5 s)."""
    client: Literal["fast", "paho"] = "fast"
    """The MQTT client: ``fast`` (paho with a cheaper network loop for bursts; paho's own client
    whenever the installed paho-mqtt is not the one it was written for) or ``paho`` (paho's own)."""


class AudioSettings(Section):
    source: Literal["none", "mic", "file", "stdin"] = "none"
    """Where speech comes from: no audio, a microphone, a WAV file, or raw PCM on stdin."""
    device: str | int | None = None
    """Microphone name (substring) or index; the system default when unset."""
    channel: int | None = Field(None, ge=1, le=32)
    """Input channel to listen to (1 = first, left), e.g. a walkie on the left and timecode on the
    right; unset, a stereo input is downmixed."""
    file: Path | None = None
    """WAV file replayed in real time when ``source = "file"``."""
    stdin_rate: int = Field(16000, ge=8000, le=192000)
    """Sample rate of raw 16-bit mono PCM on stdin."""
    reopen_s: float = Field(3.0, gt=0, le=120)
    """Seconds between attempts to reopen a failed microphone."""


DEFAULT_PHRASES: dict[Action, list[str]] = {
    "roll": ["roll sound", "rolling"],
    "cut": ["cut"],
    "standby": ["lock it up"],
}


def _default_phrases() -> dict[Action, list[str]]:
    return {k: list(v) for k, v in DEFAULT_PHRASES.items()}


class ActionRules(Section):
    """One action's own voice thresholds (``[speech.roll]``, ``[speech.cut]``); unset = the ``[speech]`` value.

    The costs are not symmetric: a false cut darkens the doors mid-take, a missed roll leaves them
    dark during a take, a false roll lights red for nothing, a missed cut keeps red a few seconds.
    """

    pre_silence_s: float | None = Field(None, ge=0.0, le=5.0)
    """Quiet required before the phrase."""
    min_confidence: float | None = Field(None, ge=0.0, le=1.0)
    """Lowest confidence accepted."""
    max_extra_sound_s: float | None = Field(None, ge=0.0, le=10.0)
    """Sound in the utterance outside the phrase that is tolerated."""
    min_filler_margin: float | None = Field(None, ge=-50.0, le=50.0)
    """How much better than the fillers the phrase must fit, per syllable."""
    onset_db: float | None = Field(None, ge=0.0, le=60.0)
    """How far the phrase must rise above the sound just before it; 0 = off."""
    rescue_db: float | None = Field(None, ge=0.0, le=40.0)
    """A phrase inside longer sound still fires when it stands this far above the sound around it (a
    call over chatter); 0 = never (the phrase must be said alone)."""


ACTION_RULES = tuple(ActionRules.model_fields)
"""The thresholds an action can set for itself."""


class SpeechSettings(Section):
    model: str = "vosk-model-small-en-us-0.15"
    """A Vosk model directory, or the name of a model installed with ``setbridge model install``."""
    phrases: dict[Action, list[str]] = Field(default_factory=lambda: _default_phrases())
    """Trigger phrases per action."""
    enabled: bool = True
    """Voice triggers on; a GPIO "voice off" switch can also disable them."""
    trailing_silence_s: float = Field(0.2, ge=0.05, le=2.0)
    """Quiet after speech that ends an utterance; most of the trigger latency."""
    pre_silence_s: float = Field(0.25, ge=0.0, le=5.0)
    """Quiet required before a phrase, so a trigger word inside a sentence does not fire."""
    min_confidence: float = Field(0.4, ge=0.0, le=1.0)
    """Lowest confidence accepted: the phrase's share of Vosk's hypotheses."""
    max_extra_sound_s: float = Field(0.6, ge=0.0, le=10.0)
    """Sound in an utterance outside the phrase that is tolerated (longer speech decoded as a phrase)."""
    min_sound_share: float = Field(0.3, ge=0.0, le=1.0)
    """Heard sound must last at least this share of the phrase (rejects a phrase forced onto a noise blip)."""
    refractory_s: float = Field(1.5, ge=0.0, le=60.0)
    """After a voice trigger, ignore further ones for this long."""
    vad_margin_db: float = Field(6.0, ge=1.0, le=40.0)
    """Energy above the noise floor that counts as speech."""
    decoys: list[str] = Field(default_factory=list)
    """Extra grammar words that absorb look-alike speech; "[unk]" is added when the model has it."""
    noise_suppression: int = Field(4, ge=0, le=4)
    """WebRTC noise suppression before recognition: 0 (high-pass filter only) to 4 (strongest)."""
    auto_gain_dbfs: int = Field(0, ge=0, le=31)
    """WebRTC automatic gain target in dBFS (0 = off), for a quiet or distant microphone."""
    alternatives: int = Field(3, ge=1, le=20)
    """Hypotheses Vosk weighs per utterance; the confidence of a phrase is its share of them."""
    fillers: list[str] = Field(default_factory=list)
    """Common short words of the model's language: a filler model that rejects look-alike speech."""
    min_filler_margin: float = Field(-10.0, ge=-50.0, le=50.0)
    """How much better than the fillers a phrase must fit, in Vosk score per syllable."""
    foreground_db: float = Field(0.0, ge=0.0, le=40.0)
    """Speech must stand this far above the background level (crew chatter under the call); 0 = off (the
    default: on the benchmark's shooting days it cost more false cuts and rolls than the calls it saved)."""
    tail_drop_db: float = Field(9.0, ge=0.0, le=60.0)
    """Sound this far below an utterance's loudest part counts as quiet (a reverb tail); 0 = off."""
    tail_rise_db: float = Field(3.0, ge=1.0, le=30.0)
    """With ``tail_drop_db``: a rise this steep (dB over 0.1 s) is the talker's next syllable, never a tail;
    6 in a large hall, whose decaying tail ripples by 3-5 dB and otherwise holds an utterance open."""
    onset_db: float = Field(9.0, ge=0.0, le=60.0)
    """A phrase must be this much louder than the sound just before it (a pause of its own); 0 = off."""
    rescue_db: float = Field(0.0, ge=0.0, le=40.0)
    """A phrase inside longer sound fires when it stands this far above the sound around it; 0 = never."""
    roll: ActionRules = Field(default_factory=lambda: ActionRules(rescue_db=6.0))
    """The roll call's own thresholds (``[speech.roll]``): an eager roll, heard over crew chatter too, since a
    missed one leaves the doors dark during a take while a false one lights red for nothing."""
    cut: ActionRules = Field(default_factory=lambda: ActionRules(min_confidence=0.7))
    """The cut call's own thresholds (``[speech.cut]``): a sure cut, since a false one darkens the doors
    mid-take while a missed one keeps red a few seconds."""
    capture_dir: Path | None = None
    """Opt-in: keep short clips around every voice trigger and near miss here (never on the bus)."""
    capture_max_clips: int = Field(200, ge=1, le=100000)
    """Most clips kept in ``capture_dir``; the oldest are deleted first."""
    capture_max_mb: float = Field(200.0, gt=0, le=100000)
    """Most megabytes kept in ``capture_dir``; the oldest clips are deleted first."""
    models_url: str = "https://alphacephei.com/vosk/models"
    """Where ``setbridge model install`` downloads models from."""

    @field_validator("phrases")
    @classmethod
    def _phrases_not_empty(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for action, phrases in value.items():
            cleaned = [" ".join(p.lower().split()) for p in phrases]
            if any(not p for p in cleaned):
                raise ValueError(f"phrases.{action} contains an empty phrase")
            value[action] = cleaned
        return value


class OffloadSettings(Section):
    enabled: bool = True
    """Relay offload reports. Exactly one hub on a broker may: set false on every other hub (a hub
    that finds another one relaying runs without offload and says so)."""
    watch: list[Path] = Field(default_factory=list)
    """Directories scanned for ASC MHL histories (any ``ascmhl/`` folder below them)."""
    copies_required: int = Field(2, ge=1, le=20)
    """Verified copies a card needs before it is ``safe_to_wipe``."""
    poll_s: float = Field(2.0, gt=0, le=600)
    """Seconds between scans of the ``watch`` directories."""
    settle_s: float = Field(3.0, ge=0, le=600)
    """A chain file must stay unchanged this long before it is read."""
    catch_up_h: float = Field(24.0, ge=0, le=24 * 30)
    """At start, MHL generations younger than this many hours are relayed if not yet journaled."""
    flash_lights: list[Id] = Field(default_factory=list)
    """Lights that flash green for a verified card and fast red for a failed one."""
    flash_s: float = Field(5.0, gt=0, le=600)
    """How long the lights flash."""
    flash_max_age_s: float = Field(300.0, ge=0, le=86400)
    """Events older than this (delivered late after an outage) do not flash lights."""
    journal_batch: int = Field(256, ge=1, le=10000)
    """Reports journaled per commit and events in flight per delivery round (1: one at a time)."""
    max_cards: int = Field(300, ge=1, le=500)
    """Cards kept retained on ``{base}/offload/card/{roll}``; beyond it the card with the oldest latest
    event is cleared (the board holds at most 500)."""
    card_max_age_h: float = Field(72.0, gt=0, le=24 * 90)
    """A card without a new event for this many hours is cleared from the broker (the journal keeps it)."""
    cards_per_source_per_day: int = Field(200, ge=1, le=100_000)
    """New cards one sender (its ``source`` and ``host``) may start in 24 hours; more are refused."""


class GpioSettings(Section):
    """Pins use BCM numbering (as gpiozero does); a pin left unset is not used. No pins, no GPIO."""

    relay: int | None = Field(None, ge=0, le=53)
    """Relay for the wired red light or wig-wag at the stage door: on while rolling."""
    relay_active_high: bool = True
    """False for relay boards that switch on when the pin is low."""
    status_led: int | None = Field(None, ge=0, le=53)
    """Status LED: on = listening, slow blink = audio or timecode fault, fast blink = broker lost."""
    buzzer: int | None = Field(None, ge=0, le=53)
    """Buzzer, wig-wag convention: one long tone at roll, two short at cut."""
    roll_button: int | None = Field(None, ge=0, le=53)
    """Momentary button that rolls (wired to ground)."""
    cut_button: int | None = Field(None, ge=0, le=53)
    """Momentary button that cuts (wired to ground)."""
    toggle: int | None = Field(None, ge=0, le=53)
    """A single roll/cut switch instead of the buttons: closed = roll, open = cut."""
    voice_off: int | None = Field(None, ge=0, le=53)
    """Switch that disables voice triggers while closed (for scenes whose dialogue says "cut")."""
    bounce_s: float = Field(0.05, ge=0, le=1)
    """Debounce time of the buttons and switches, in seconds."""
    pull_up: bool = True
    """Buttons and switches close to ground (internal pull-up); false when they close to 3.3 V."""

    def any_pin(self) -> bool:
        return any(getattr(self, name) is not None for name in
                   ("relay", "status_led", "buzzer", "roll_button", "cut_button", "toggle", "voice_off"))


class TimecodeSettings(Section):
    """The recorder as the authority: its LTC timecode and/or its record tally (see the README's
    arbitration table). With neither configured, voice and buttons decide alone."""

    mode: Literal["off", "rec-run", "free-run"] = "off"
    """``rec-run``: code advancing means the recorder records (roll), code still or gone means it
    stopped (cut); ``free-run``: the code only stamps events and takes; ``off``: no timecode."""
    channel: int | None = Field(None, ge=1, le=32)
    """The channel of the ``[audio]`` input that carries LTC (1 = first); voice still listens to
    ``[audio] channel``. Needed unless mode is off; with ``device`` or ``file``, that input's channel
    (default 1)."""
    device: str | int | None = None
    """LTC from an input device of its own (a name substring or index, as ``[audio] device``)
    instead of a channel of the ``[audio]`` input."""
    file: Path | None = None
    """LTC replayed in real time from a 16-bit WAV file instead (a demo or a rehearsal)."""
    hold_off_s: float = Field(0.5, ge=0.1, le=30)
    """Code still or gone this long ends a rec run (cut): dropouts and short bursts shorter than this
    never cut a take."""
    min_run_s: float = Field(0.0, ge=0, le=10)
    """Code must advance this long before it rolls (0: at once); raise it for a device
    that sends short bursts of running code when it stops."""
    confirm_s: float = Field(3.0, ge=0.5, le=60)
    """A voice roll the recorder has not confirmed within this many seconds reverts."""
    fault_s: float = Field(2.0, ge=0.5, le=60)
    """Signal that does not decode, or (free-run) code gone, this long: ``timecode: fault``."""
    tally_pin: int | None = Field(None, ge=0, le=53)
    """GPIO input (BCM) wired to the recorder's record tally or a contact closure: closed = recording."""
    tally_pull_up: bool = True
    """The tally closes to ground (internal pull-up); false when it drives 3.3 V."""
    stuck_s: float = Field(3600.0, ge=60, le=86400)
    """A recorder source recording longer than this counts as stuck, ``timecode: fault`` (a tally
    stuck closed, or code that never stops: a recorder in free run). A fault never cuts; voice then
    acts alone."""

    def own_input(self) -> bool:
        """LTC comes from an input of its own (``device`` or ``file``), not from the ``[audio]`` input."""
        return self.device is not None or self.file is not None

    def recorder(self) -> bool:
        """A recorder source that starts and stops takes is configured (rec-run code or a tally)."""
        return self.mode == "rec-run" or self.tally_pin is not None


PASSWORD_HASH = r"^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$"


class WebUser(Section):
    """A person who may log in to the web board."""

    password_hash: Annotated[str, StringConstraints(pattern=PASSWORD_HASH)]
    """An scrypt hash made by ``setbridge web passwd``; never the password itself."""
    control: bool = False
    """May press roll, cut and standby (needs ``control_username`` for the broker)."""


class WebSettings(Section):
    """``setbridge web``: the board, phone recording lights and the take log, over HTTP."""

    host: str = "0.0.0.0"
    """Address the web server listens on."""
    port: int = Field(8080, ge=1, le=65535)
    client_id: Id = "setbridge-web"
    """MQTT client id of the viewing connection, whose persistent session feeds the take log (one web
    process per id); control adds ``-control``. Brokers made by ``setbridge broker config`` use the user names."""
    mqtt_username: str | None = None
    """Broker user for viewing and the take log (role monitor); the hub's ``[mqtt]`` user is never borrowed."""
    mqtt_password: SecretStr | None = None
    control_username: str | None = None
    """Broker user for roll/cut/standby (role integrator); unset = no control from the web."""
    control_password: SecretStr | None = None
    login_to_view: bool = False
    """True: every page needs a login; false: viewing is open and only control needs one."""
    users: dict[Id, WebUser] = Field(default_factory=dict)
    """Who may log in: user name → password hash and control right."""
    link_timeout_s: float = Field(2.5, gt=0, le=30)
    """A light page shows link lost after this long without a heartbeat (keep above the hub's heartbeat_s)."""
    data_dir: Path | None = None
    """Where the take log (``takes.sqlite``) and the session key live; default ``{hub.state_dir}/web``."""
    secure_cookies: bool = False
    """Send the login cookie only over HTTPS (set when a TLS reverse proxy fronts the board)."""
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    """How long a login lasts from when it began, however often it is used (logging out ends it at once)."""
    request_timeout_s: float = Field(10.0, gt=0, le=300)
    """A connection that has sent no complete request this long after it opened (or after its last
    answer) is closed: slow and half-open connections cannot hold the server's open files."""
    max_streams: int = Field(1000, ge=10, le=100_000)
    """Open pages (event streams) served at once; a tenth of them at most on sets nobody has heard of."""
    streams_per_address: int = Field(8, ge=1, le=100_000)
    """Open pages from one client address (raise it when phones reach the board through one NAT)."""
    lot: bool = False
    """The central board of a lot (docs/lot.md): ``/lot`` shows every stage under ``{base}/stage/+``
    and ``/`` leads there."""


class MetricsSettings(Section):
    """The hub's Prometheus metrics over HTTP (docs/deploy.md lists them)."""

    enabled: bool = False
    """Serve ``/metrics`` from the hub."""
    host: str = "127.0.0.1"
    """Address to listen on: this machine only by default; ``0.0.0.0`` lets a Prometheus elsewhere scrape it."""
    port: int = Field(9853, ge=0, le=65535)
    """TCP port of the hub's metrics (0: any free port, logged at start)."""


class HomeAssistantSettings(Section):
    """Home Assistant MQTT discovery of each set (docs/mqtt.md, "Home Assistant")."""

    enabled: bool = False
    """Publish the set as a Home Assistant device; false removes a device published before."""
    prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")] = "homeassistant"
    """Home Assistant's discovery prefix (its birth message comes on ``{prefix}/status``)."""
    device_name: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    """The device's name in Home Assistant; default ``setbridge <set>``."""


class Settings(BaseSettings):
    """All of setbridge's configuration; :func:`load_settings` reads it from the file and the environment."""

    model_config = SettingsConfigDict(extra="forbid", validate_default=True)

    hub: HubSettings = HubSettings()
    mqtt: MqttSettings = MqttSettings()
    audio: AudioSettings = AudioSettings()
    speech: SpeechSettings = SpeechSettings()
    offload: OffloadSettings = OffloadSettings()
    gpio: GpioSettings = GpioSettings()
    web: WebSettings = WebSettings()
    metrics: MetricsSettings = MetricsSettings()
    timecode: TimecodeSettings = TimecodeSettings()
    homeassistant: HomeAssistantSettings = HomeAssistantSettings()

    @model_validator(mode="after")
    def _timecode_input(self) -> Settings:
        tc = self.timecode
        if tc.mode == "off":
            return self
        if tc.device is not None and tc.file is not None:
            raise ValueError("[timecode] device and file are both set; LTC comes from one input: keep one")
        if tc.own_input():
            return self
        if tc.channel is None:
            raise ValueError(f'[timecode] mode = "{tc.mode}" needs [timecode] channel, the [audio] input\'s '
                             "channel that carries LTC (1 = first), or [timecode] device for an input of its own")
        if self.audio.source not in ("mic", "file"):
            raise ValueError(f'[timecode] mode = "{tc.mode}" reads LTC from the [audio] input; set [audio] '
                             'source to "mic" or "file", or [timecode] device for an input of its own')
        if self.audio.channel is None:
            raise ValueError(f"[timecode] channel {tc.channel} carries LTC, so voice needs a channel of its own: "
                             "set [audio] channel (else the LTC would be mixed into voice)")
        if tc.channel == self.audio.channel:
            raise ValueError(f"[timecode] channel {tc.channel} is also [audio] channel: voice and LTC need a "
                             "channel each")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return config_sources.chosen_sources(init_settings)

    def web_data_dir(self) -> Path:
        """Where the web process keeps its take log and session key."""
        return self.web.data_dir or self.hub.state_dir / "web"

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as plain data, secrets hidden."""
        return self.model_dump(mode="json")


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Load the settings from ``path`` (or the default file when present) and the environment;
    ``overrides`` (sections as dicts) win over both.

    Raises :class:`~setbridge.errors.ConfigError` with one line per problem.
    """
    toml_file: Path | None = Path(path) if path is not None else None
    if toml_file is None and DEFAULT_CONFIG_PATH.is_file():
        toml_file = DEFAULT_CONFIG_PATH
    return config_sources.load(Settings, toml_file, overrides)
