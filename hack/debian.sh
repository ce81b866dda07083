# Sourced by hack/ scripts: installs the Debian packages Vigil runs for real when they are missing.
# Usage: ensure_debian ffmpeg redis rtsp chromium openssl rabbitmq mariadb umoci prometheus
# The servers are only installed: tests start their own instances (test/setup/brokers.ts); without systemd,
# Debian's package scripts start none.
ensure_debian() {
  local missing=() want
  for want in "$@"; do
    case $want in
      openssl) command -v openssl >/dev/null || missing+=(openssl) ;;
      flock) command -v flock >/dev/null || missing+=(util-linux) ;;
      ffmpeg) command -v ffmpeg >/dev/null || missing+=(ffmpeg) ;;
      redis) command -v redis-server >/dev/null || missing+=(redis-server) ;;
      chromium) [[ -x /usr/bin/chromium ]] || missing+=(chromium) ;;
      rabbitmq) [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || missing+=(rabbitmq-server) ;;
      mariadb) command -v mariadbd >/dev/null || missing+=(mariadb-server) ;;
      umoci) command -v umoci >/dev/null || missing+=(umoci) ;;
      # The server and promtool (the chart's rules: check, unit tests, a real scrape).
      prometheus) [[ -x /usr/bin/prometheus && -x /usr/bin/promtool ]] || missing+=(prometheus) ;;
      rtsp)
        # GStreamer's RTSP server with H.264 (x264enc is in -ugly), run by Debian's python3.
        /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); gi.require_version("Gst", "1.0")
from gi.repository import Gst; Gst.init(None); assert Gst.ElementFactory.find("x264enc")' 2>/dev/null ||
          missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
            gstreamer1.0-plugins-ugly gstreamer1.0-libav)
        ;;
      *) echo "ensure_debian: unknown need '$want'" >&2; return 2 ;;
    esac
  done
  ((${#missing[@]})) || return 0
  echo "[deps] installing Debian packages: ${missing[*]}" >&2
  local sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
