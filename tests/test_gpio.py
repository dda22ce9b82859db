"""GPIO through the real hub and broker, with gpiozero's MockFactory standing in for the header."""

from __future__ import annotations

import time

import numpy as np

from helpers import make_settings, running_hub, wait_until
from helpers.timecode import quiet, write_wav

from setbridge.hub import Hub

PINS = {"relay": 17, "status_led": 27, "buzzer": 22, "roll_button": 5, "cut_button": 6, "voice_off": 19,
        "bounce_s": 0}


def state_probe(probe_factory, hub):
    return probe_factory(hub.topics.set_state(hub.set_id))


def test_buttons_roll_and_cut_and_the_relay_follows(broker, tmp_path, factory, probe_factory):
    with running_hub(broker, tmp_path / "state", gpio=PINS) as hub:
        probe = state_probe(probe_factory, hub)
        relay, roll, cut = factory.pin(17), factory.pin(5), factory.pin(6)
        assert relay.state is False
        roll.drive_low()
        roll.drive_high()
        data = probe.wait_for(lambda m: m.data["state"] == "rolling").data
        assert data["cause"] == "button"
        wait_until(lambda: relay.state is True)
        cut.drive_low()
        cut.drive_high()
        probe.wait_for(lambda m: m.data["state"] == "idle")
        wait_until(lambda: relay.state is False)


def test_relay_follows_requests_and_active_low(broker, tmp_path, factory):
    with running_hub(broker, tmp_path / "state", gpio=dict(relay=17, relay_active_high=False)) as hub:
        relay = factory.pin(17)
        assert relay.state is True  # active low: high = off
        hub.submit("roll", cause="request")
        wait_until(lambda: relay.state is False)  # the panel follows on its own thread
        hub.submit("cut", cause="request")
        wait_until(lambda: relay.state is True)


def test_toggle_rolls_when_closed_and_cuts_when_opened(broker, tmp_path, factory):
    with running_hub(broker, tmp_path / "state", gpio=dict(toggle=13, bounce_s=0)) as hub:
        factory.pin(13).drive_low()
        wait_until(lambda: hub.state == "rolling")
        factory.pin(13).drive_high()
        wait_until(lambda: hub.state == "idle")


def test_buttons_closing_to_3v3_with_pull_up_false(broker, tmp_path, factory):
    with running_hub(broker, tmp_path / "state", gpio=dict(roll_button=5, pull_up=False, bounce_s=0)) as hub:
        factory.pin(5).drive_high()
        wait_until(lambda: hub.state == "rolling")


def test_voice_off_switch_is_published_in_the_hub_status(broker, tmp_path, factory, probe_factory):
    with running_hub(broker, tmp_path / "state", gpio=dict(voice_off=19, bounce_s=0)) as hub:
        probe = probe_factory(hub.topics.hub_status(hub.settings.hub.id))
        factory.pin(19).drive_low()
        probe.wait_for(lambda m: m.data.get("voice") is False)
        assert hub.voice_enabled is False
        factory.pin(19).drive_high()
        probe.wait_for(lambda m: m.data.get("voice") is True)


def test_buzzer_one_long_at_roll_two_short_at_cut(broker, tmp_path, factory):
    with running_hub(broker, tmp_path / "state", gpio=dict(buzzer=22)) as hub:
        buzzer = factory.pin(22)
        hub.submit("roll", cause="request")
        wait_until(lambda: len(buzzer.states) >= 3)  # initial off, on, off
        on_times = [s for s in buzzer.states[1:] if s.state]
        assert len(on_times) == 1
        start = len(buzzer.states)
        hub.submit("cut", cause="request")
        wait_until(lambda: len(buzzer.states) >= start + 4)
        cut_states = buzzer.states[start:]
        assert [s.state for s in cut_states[:4]] == [True, False, True, False]
        long_tone = buzzer.states[2].timestamp - buzzer.states[1].timestamp
        short_tone = cut_states[1].timestamp - cut_states[0].timestamp
        assert long_tone > 3 * short_tone


def test_status_led_blinks_fast_when_the_broker_is_lost(own_broker, tmp_path, factory):
    with running_hub(own_broker, tmp_path / "state", gpio=dict(status_led=27)) as hub:
        led = factory.pin(27)
        wait_until(lambda: led.state is True)
        own_broker.stop()
        wait_until(lambda: sum(1 for s in led.states[-6:] if s.state) >= 3)  # blinking
        own_broker.start()
        wait_until(lambda: hub.bus.connected.is_set(), timeout=10)
        time.sleep(0.5)
        changes = len(led.states)
        time.sleep(0.5)
        assert led.state is True and len(led.states) == changes  # solid again


def test_no_pins_no_gpio(broker, tmp_path):
    hub = Hub(make_settings(broker, tmp_path / "state"))
    assert not any(type(c).__name__ == "GpioPanel" for c in hub.components)


def test_status_led_blinks_slowly_on_an_audio_fault_and_stops_once(broker, tmp_path, factory):
    with running_hub(broker, tmp_path / "state", gpio=dict(status_led=27)) as hub:
        led = factory.pin(27)
        wait_until(lambda: led.state is True, what="the LED to light")
        start = len(led.states)
        hub.set_audio_status("fault")  # an event: the panel does not poll
        wait_until(lambda: len(led.states) >= start + 4, timeout=10, what="the LED to blink")
        gaps = [s.timestamp for s in led.states[start + 2:start + 4]]  # seconds since the change before
        assert min(gaps) > 0.5, f"changes {gaps} s apart: an audio fault blinks slowly (1 s on, 1 s off)"
        hub.set_audio_status("ok")
        wait_until(lambda: led.state is True, what="the LED to be solid again")
        panel = next(c for c in hub.components if type(c).__name__ == "GpioPanel")
        panel.stop()
        panel.stop()  # idempotent
        assert panel.devices == []


def test_status_led_blinks_slowly_on_a_timecode_fault_and_is_solid_once_it_clears(broker, tmp_path, factory):
    rate = 48000
    noise = np.random.default_rng(7).normal(0, 4000, int(rate * 5.0)).astype(np.int16)  # not timecode
    wav = write_wav(tmp_path / "tc.wav", rate, np.concatenate([noise, quiet(rate, 5.0)]))  # then silence: ok
    timecode = {"mode": "rec-run", "file": str(wav), "fault_s": 1.0}
    with running_hub(broker, tmp_path / "state", gpio=dict(status_led=27), timecode=timecode) as hub:
        led = factory.pin(27)
        wait_until(lambda: hub.timecode_health[0] == "fault", timeout=10, what="the timecode fault")
        start = len(led.states)
        wait_until(lambda: len(led.states) >= start + 3, timeout=10, what="the LED to blink")
        gaps = [s.timestamp for s in led.states[start + 1:start + 3]]  # seconds since the change before
        assert min(gaps) > 0.5, f"changes {gaps} s apart: a timecode fault blinks slowly (1 s on, 1 s off)"
        assert hub.health().audio != "fault"  # the timecode alone
        wait_until(lambda: hub.timecode_health[0] == "ok", timeout=10, what="silence, which is no fault")
        wait_until(lambda: led.state is True, what="the LED on")
        changes = len(led.states)
        time.sleep(1.2)  # longer than a blink
        assert led.state is True and len(led.states) == changes, "solid again once the fault cleared"


def test_the_led_shows_the_worst_of_the_hubs_health():
    from setbridge.hub.component import Health
    from setbridge.hub.panel import led_mode

    assert led_mode(Health(broker=True, audio="ok", timecode="fault")) == "timecode-fault"
    assert led_mode(Health(broker=True, audio="fault", timecode="fault")) == "audio-fault"
    assert led_mode(Health(broker=False, audio="ok", timecode="fault")) == "broker-lost"
    assert led_mode(Health(broker=True, audio="off", timecode="off")) == "ok"
