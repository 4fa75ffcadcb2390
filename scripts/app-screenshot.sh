#!/usr/bin/env bash
# Runs `glimpse app --synthetic` in a real window on a virtual X display (Xvfb) with the bundled
# model in continuous mode, waits, and saves a screenshot of the whole screen.
#
# Usage: scripts/app-screenshot.sh [OUT.png] [SECONDS]
#   OUT.png   where the screenshot goes (default target/app-screenshot.png)
#   SECONDS   how long the app runs before the shot (default 60: model load and a few answers
#             on a software renderer)
# Needs: Xvfb (apt: xvfb), ImageMagick's import (apt: imagemagick), a Vulkan driver (lavapipe:
# mesa-vulkan-drivers) and libxkbcommon-x11.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-target/app-screenshot.png}
seconds=${2:-60}
display=${GLIMPSE_SCREENSHOT_DISPLAY:-:97}

for tool in Xvfb import; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 2; }
done

# The dev profile (dependencies at opt-level 2) is quick enough for a tiny model and reuses the
# test build; PROFILE=release for the release binary.
profile=${PROFILE:-dev}
nice -n 19 cargo build --profile "$profile" --features app
bin=target/$([ "$profile" = dev ] && echo debug || echo "$profile")/glimpse

Xvfb "$display" -screen 0 1400x900x24 -nolisten tcp &
xvfb=$!
app=""
cleanup() {
    [ -n "$app" ] && kill "$app" 2>/dev/null || true
    kill "$xvfb" 2>/dev/null || true
}
trap cleanup EXIT
sleep 2

DISPLAY=$display WINIT_UNIX_BACKEND=x11 "$bin" app --synthetic --continuous &
app=$!
sleep "$seconds"
kill -0 "$app" 2>/dev/null || { echo "error: the app exited early" >&2; exit 2; }

mkdir -p "$(dirname "$out")"
import -window root -display "$display" "$out"
echo "screenshot: $out"
