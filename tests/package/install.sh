#!/usr/bin/env bash
# The .deb, as a user gets it: built by scripts/package, installed with dpkg,
# started under Xvfb from its desktop entry's command; conclave:// links
# opened twice (directly and through xdg-open) go to the one running app;
# started as an AppImage, it registers itself as the handler of conclave://.
# Removes the package again at the end. Needs root or sudo.
set -euo pipefail
cd "$(dirname "$0")/../.."
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
deb=$(scripts/package --debug | tail -n1)
echo "--- installing $(basename "$deb") ($(du -h "$deb" | cut -f1))"
dir=$(mktemp -d /tmp/conclave-deb-test.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  $sudo dpkg -r conclave >/dev/null 2>&1 || true
  # The web view's own processes may still write their caches for a moment
  # after the app has gone; the clean-up never decides the result.
  for _ in 1 2 3 4 5; do rm -rf "$dir" 2>/dev/null && break; sleep 1; done
  true
}
trap cleanup EXIT
$sudo dpkg -i "$deb" >/dev/null
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -x /usr/bin/conclave ] || fail "no /usr/bin/conclave"
grep -q '^MimeType=x-scheme-handler/conclave;' /usr/share/applications/conclave.desktop || fail "the desktop entry does not handle conclave://"
[ -f /usr/share/icons/hicolor/128x128/apps/conclave.png ] || fail "no icon"

# A fresh user profile, on a private display.
export HOME="$dir/home" XDG_CONFIG_HOME="$dir/home/.config" XDG_DATA_HOME="$dir/home/.local/share"
export XDG_STATE_HOME="$dir/home/.local/state" XDG_CACHE_HOME="$dir/home/.cache" XDG_RUNTIME_DIR="$dir/run"
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$dir/display" 2>/dev/null &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$dir/display" ] && break; sleep 0.1; done
export DISPLAY=":$(head -n1 "$dir/display")"

# The desktop starts it as its entry says.
exec_line=$(sed -n 's/^Exec=//p' /usr/share/applications/conclave.desktop)
[ "$exec_line" = "conclave %u" ] || fail "unexpected Exec: $exec_line"
conclave >"$dir/app.log" 2>&1 &
app=$!
pids+=("$app")
# (xdotool can trip over a window that vanishes while it searches: retried.)
found=""
for _ in $(seq 1 150); do
  if xdotool search --onlyvisible --name '^Conclave$' >/dev/null 2>&1; then found=1; break; fi
  kill -0 "$app" 2>/dev/null || { cat "$dir/app.log" >&2; fail "the installed app exited"; }
  sleep 0.2
done
[ -n "$found" ] || { tail -n 20 "$dir/app.log" >&2; fail "no Conclave window"; }
echo "--- the installed app shows its window"

count() { pgrep -x conclave | wc -l; }
# A link opened while it runs: the second start hands it over and exits.
timeout 15 conclave "conclave://join/123456789" || fail "the second start did not hand over"
# The same through the desktop's handler for conclave:// links.
if command -v xdg-open >/dev/null; then
  handler=$(XDG_DATA_DIRS=/usr/share xdg-mime query default x-scheme-handler/conclave || true)
  [ "$handler" = conclave.desktop ] || fail "conclave:// is handled by '$handler'"
  timeout 15 xdg-open "conclave://join/987654321" || fail "xdg-open failed"
  sleep 2
fi
[ "$(count)" = 1 ] || fail "$(count) instances run"
grep -q "a link was opened" "$dir/app.log" || fail "the running app did not receive the link"
echo "--- links opened twice went to the one running app"

# A copy no package installed (an AppImage) registers itself as the user's
# handler of conclave:// links, through Tauri's deep-link plugin.
if command -v xdg-mime >/dev/null; then
  kill "$app"; wait "$app" 2>/dev/null || true
  for _ in $(seq 1 50); do [ "$(count)" = 0 ] && break; sleep 0.2; done
  APPIMAGE="$dir/Conclave.AppImage" conclave >"$dir/appimage.log" 2>&1 &
  pids+=($!)
  entry="$XDG_DATA_HOME/applications/conclave-handler.desktop"
  for _ in $(seq 1 100); do grep -qs "x-scheme-handler/conclave" "$entry" && break; sleep 0.2; done
  grep -qs "x-scheme-handler/conclave" "$entry" || { cat "$dir/appimage.log" >&2; fail "no user handler entry for conclave://"; }
  grep -q "^Exec=\"$dir/Conclave.AppImage\" %u" "$entry" || fail "the handler entry does not start the AppImage"
  handler=$(XDG_DATA_DIRS=/usr/share xdg-mime query default x-scheme-handler/conclave || true)
  [ "$handler" = conclave-handler.desktop ] || fail "after registering, conclave:// is handled by '$handler'"
  echo "--- an AppImage registers itself for conclave:// links"
fi
echo "package test passed: $(du -h "$deb" | cut -f1) .deb"
