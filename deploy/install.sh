#!/usr/bin/env bash
# Install setbridge as a service on Raspberry Pi OS Bookworm or Debian 12.
#
#   sudo deploy/install.sh [--dry-run] [--set SET] [--model NAME | --no-model]
#
# Steps: Debian packages, a `setbridge` system user, a virtualenv under /opt/setbridge,
# /etc/setbridge/setbridge.toml, a secured Mosquitto (config, ACL, a broker user for the hub),
# the speech model, the hub's systemd unit, and the web board (its own config and broker
# users, setbridge-web.service on port 8080), enabled and started. Idempotent: every step checks
# first and a second run changes nothing. --dry-run prints each step and changes nothing.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/setbridge
VENV=$PREFIX/venv
CONF_DIR=/etc/setbridge
CONF=$CONF_DIR/setbridge.toml
UNIT=/etc/systemd/system/setbridge-hub.service
WEB_CONF=$CONF_DIR/web.toml
WEB_UNIT=/etc/systemd/system/setbridge-web.service
SET_ID=main
MODEL=vosk-model-small-en-us-0.15
DRY=0
APT_PACKAGES=(python3-venv python3-dev mosquitto mosquitto-clients libportaudio2 libltc11 alsa-utils)

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --set) SET_ID=$2; shift ;;
        --model) MODEL=$2; shift ;;
        --no-model) MODEL= ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if ! [[ $SET_ID =~ ^[a-z0-9][a-z0-9-]*$ ]]; then
    echo "install.sh: --set must match [a-z0-9][a-z0-9-]* (got '$SET_ID')" >&2; exit 2
fi
HUB_ID=$(hostname -s | tr 'A-Z_' 'a-z-' | sed 's/[^a-z0-9-]//g; s/^-*//')
HUB_ID=${HUB_ID:-hub-1}

step() { echo "==> $*"; }
skip() { echo "    already done: $*"; }
run() {
    if [ "$DRY" = 1 ]; then echo "    would run: $*"; else echo "    + $*"; "$@"; fi
}

if [ "$DRY" = 0 ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo deploy/install.sh), or with --dry-run to see the steps" >&2
    exit 1
fi

step "1/8 Debian packages: ${APT_PACKAGES[*]}"
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then skip "all installed"; else
    run apt-get update -q
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

step "2/8 system user setbridge (groups audio, gpio)"
if id setbridge >/dev/null 2>&1; then skip "user setbridge exists"; else
    run useradd --system --home-dir /var/lib/setbridge --no-create-home --shell /usr/sbin/nologin setbridge
fi
for group in audio gpio; do
    if getent group "$group" >/dev/null && ! id -nG setbridge 2>/dev/null | grep -qw "$group"; then
        run usermod -aG "$group" setbridge
    fi
done

step "3/8 virtualenv $VENV with setbridge from $SRC"
want=$(cd "$SRC" && git rev-parse HEAD 2>/dev/null || sha256sum pyproject.toml | cut -c1-16)
if [ -x "$VENV/bin/setbridge" ] && [ "$(cat "$PREFIX/installed-from" 2>/dev/null)" = "$want" ]; then
    skip "setbridge $("$VENV/bin/setbridge" --version 2>/dev/null | cut -d' ' -f2) installed"
else
    [ -x "$VENV/bin/python" ] || run python3 -m venv "$VENV"
    run "$VENV/bin/pip" install --quiet --upgrade pip
    run "$VENV/bin/pip" install --quiet "$SRC[web]"
    if [ "$DRY" = 0 ]; then echo "$want" > "$PREFIX/installed-from"; else echo "    would record the installed version"; fi
fi
SETBRIDGE="$VENV/bin/setbridge"

step "4/8 secured Mosquitto: /etc/mosquitto/conf.d/setbridge.conf, password file, ACL"
if [ -f /etc/mosquitto/conf.d/setbridge.conf ]; then skip "broker config present"; else
    # Plain MQTT on the network so that lights can join at once; docs/deploy.md shows how to
    # move every role to TLS (`broker config --tls-only`).
    run "$SETBRIDGE" broker config --bind 0.0.0.0
fi

step "5/8 configuration $CONF (hub $HUB_ID, set $SET_ID) and its broker user"
if [ -f "$CONF" ]; then skip "$CONF exists (never overwritten)"; else
    if [ "$DRY" = 1 ]; then
        echo "    would write $CONF from examples/setbridge.toml with a new broker password for $HUB_ID"
    else
        password=$("$SETBRIDGE" broker add-user "$HUB_ID" --role hub | sed -n 's/^password: //p')
        # One connection per broker user: the command-line tools get a user of their own.
        tools=$("$SETBRIDGE" broker add-user "$HUB_ID-tools" --role integrator | sed -n 's/^password: //p')
        install -d -m 0750 -o root -g setbridge "$CONF_DIR"
        sed -e "s/^id = \"hub-1\"/id = \"$HUB_ID\"/" -e "s/^set = \"main\"/set = \"$SET_ID\"/" \
            -e "0,/^# username = .*/s//username = \"$HUB_ID\"/" -e "0,/^# password = .*/s//password = \"$password\"/" \
            -e "s/^# username = \"hub-1-tools\"/username = \"$HUB_ID-tools\"/" \
            -e "/^username = \"$HUB_ID-tools\"/{n;s/^# password = .*/password = \"$tools\"/}" \
            -e "s/^source = \"none\"/source = \"mic\"/" "$SRC/examples/setbridge.toml" > "$CONF"
        chown root:setbridge "$CONF"
        chmod 0640 "$CONF"
        echo "    + wrote $CONF"
        run systemctl reload-or-restart mosquitto
    fi
fi

step "6/8 speech model ${MODEL:-(none)}"
if [ -z "$MODEL" ]; then skip "--no-model given"
elif [ -d "/var/lib/setbridge/models/$MODEL" ]; then skip "$MODEL installed"
else
    run install -d -m 0750 -o setbridge -g setbridge /var/lib/setbridge
    run runuser -u setbridge -- "$SETBRIDGE" model install "$MODEL" --config "$CONF"
fi

step "7/8 systemd unit setbridge-hub.service"
if [ -f "$UNIT" ] && cmp -s "$SRC/systemd/setbridge-hub.service" "$UNIT"; then skip "unit up to date"; else
    run install -m 0644 "$SRC/systemd/setbridge-hub.service" "$UNIT"
    run systemctl daemon-reload
fi
if systemctl is-enabled --quiet setbridge-hub 2>/dev/null; then skip "service enabled"; else
    run systemctl enable --now setbridge-hub
fi

step "8/8 web board: $WEB_CONF, its broker users web (monitor) and web-control (integrator), setbridge-web.service"
if [ -f "$WEB_CONF" ]; then skip "$WEB_CONF exists (never overwritten)"; else
    if [ "$DRY" = 1 ]; then
        echo "    would write $WEB_CONF (root only; the service gets it as a credential) with new broker users"
    else
        # Its own users and its own file: the network-facing web process never sees the hub's password.
        web_pw=$("$SETBRIDGE" broker add-user web --role monitor | sed -n 's/^password: //p')
        control_pw=$("$SETBRIDGE" broker add-user web-control --role integrator | sed -n 's/^password: //p')
        umask 077
        printf '%s\n' "# setbridge web (see docs/web.md). Add users with: setbridge web passwd NAME --control" \
            "[mqtt]" "host = \"localhost\"" "port = 1883" "[web]" "port = 8080" \
            "mqtt_username = \"web\"" "mqtt_password = \"$web_pw\"" \
            "control_username = \"web-control\"" "control_password = \"$control_pw\"" > "$WEB_CONF"
        chmod 0600 "$WEB_CONF"
        echo "    + wrote $WEB_CONF"
        run systemctl reload-or-restart mosquitto
    fi
fi
if [ -f "$WEB_UNIT" ] && cmp -s "$SRC/systemd/setbridge-web.service" "$WEB_UNIT"; then skip "web unit up to date"; else
    run install -m 0644 "$SRC/systemd/setbridge-web.service" "$WEB_UNIT"
    run systemctl daemon-reload
fi
if systemctl is-enabled --quiet setbridge-web 2>/dev/null; then skip "web service enabled"; else
    run systemctl enable --now setbridge-web
fi

echo
if [ "$DRY" = 1 ]; then
    echo "dry run: nothing was changed"
else
    echo "done. Check it with: $SETBRIDGE status --config $CONF   and follow the log with: journalctl -u setbridge-hub -f"
    echo "the board: http://$(hostname -s).local:8080/  (log-ins: setbridge web passwd NAME --control, into $WEB_CONF)"
fi
