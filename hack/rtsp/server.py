#!/usr/bin/python3
"""A real RTSP server for tests (GStreamer's gst-rtsp-server from Debian): serves a video file as H.264
in real time at rtsp://127.0.0.1:PORT/PATH, optionally behind basic auth. Prints "ready PORT" once listening;
PORT 0 lets the OS choose (the printed port is the one bound).
Usage: server.py PORT PATH VIDEO [USER:PASSWORD]"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port, path, video = sys.argv[1], sys.argv[2], sys.argv[3]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
# key-int-max=10: a keyframe every second at 10 fps, so a reconnecting client decodes again quickly.
factory.set_launch(
    f"( filesrc location={video} ! decodebin ! videoconvert ! "
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay name=pay0 pt=96 )"
)
factory.set_shared(True)
if len(sys.argv) > 4:
    user, password = sys.argv[4].split(":", 1)
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    perms = GstRtspServer.RTSPPermissions()
    perms.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
    perms.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
    factory.set_permissions(perms)
server.get_mount_points().add_factory(path, factory)
if server.attach(None) == 0:
    sys.exit(f"could not listen on 127.0.0.1:{port}")
print(f"ready {server.get_bound_port()}", flush=True)
GLib.MainLoop().run()
