#!/usr/bin/python3
"""A real RTSP server for tests (GStreamer's gst-rtsp-server from Debian): serves a video file as H.264
in real time at rtsp://127.0.0.1:PORT/PATH, optionally behind basic auth. Prints "ready PORT" once listening;
PORT 0 lets the OS choose (the printed port is the one bound).
With VIGIL_RTSP_LOOP=1 the file plays again and again, seamlessly, as a camera that never ends.
With VIGIL_RTSP_PASSTHROUGH=1 a file that is already H.264 is only demuxed, parsed and paid (no decode, no encode):
its own GOP reaches the clients, and a server of many cameras costs almost nothing.
Usage: server.py PORT PATH VIDEO [USER:PASSWORD]"""
import os
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
if os.environ.get("VIGIL_RTSP_PASSTHROUGH") == "1":
    # parsebin plugs the file's demuxer and h264parse; config-interval=-1 sends SPS/PPS before every keyframe, as
    # cameras do, so a client joining mid-stream decodes from the next keyframe. Measured (24 clients of a 1080p
    # 25 fps file): see bench/density.ts.
    factory.set_launch(
        f"( filesrc location={video} ! parsebin ! video/x-h264 ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
else:
    # key-int-max=10: a keyframe every second at 10 fps, so a reconnecting client decodes again quickly.
    factory.set_launch(
        f"( filesrc location={video} ! decodebin ! videoconvert ! "
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay name=pay0 pt=96 )"
    )
factory.set_shared(True)


def refuse_seeks_until_eos(_factory, media):
    """Every ffmpeg PLAY asks for the range npt=0.000-, and a shared media seeks there (a flushing seek) for all its
    clients: whoever was watching was thrown back to the file's start, its timestamps went back and its ffmpeg
    dropped frames until they caught up. A camera is not seekable, so this media says it is not either (it then
    ignores the range), except after the end of the file: then the next client's npt=0 seek plays it again, as
    before. Nothing else changes: one shared encode, the same pipeline, the stream ends at the file's end.
    Measured on the 2-core dev machine (vtest.avi; client A: ffmpeg -rtsp_transport tcp|udp decoding to rawvideo,
    arrival time of each frame; client B joins at 5 s and leaves at 12 s; longest gap between A's frames after its
    first 2 s, over 20 s): before 4.4 s (tcp) / 4.7 s (udp), at B's join, and A got 147-149 frames; after 0.11-0.14 s
    (tcp) / 0.11-0.23 s (udp), nothing at join or leave, 192-198 frames. test/integration/rtsp-server.test.ts."""
    at_eos = [False]

    def probe(_pad, info):
        if info.type & Gst.PadProbeType.EVENT_DOWNSTREAM:
            kind = info.get_event().type
            if kind == Gst.EventType.EOS:
                at_eos[0] = True
            elif kind == Gst.EventType.FLUSH_STOP:
                at_eos[0] = False
            return Gst.PadProbeReturn.OK
        if info.get_query().type == Gst.QueryType.SEEKING and not at_eos[0]:
            return Gst.PadProbeReturn.DROP  # an unanswered SEEKING query: the media counts as not seekable
        return Gst.PadProbeReturn.OK

    pay = media.get_element().get_by_name("pay0").get_static_pad("src")
    pay.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM | Gst.PadProbeType.QUERY_UPSTREAM, probe)


def loop_forever(_factory, media):
    """A camera's stream never ends; a file does (vtest.avi after 79.5 s), and then every client of the shared media
    is cut at once and all reconnect together. Looping by segment seeks: the media plays [0, end] as a segment, and
    at its end (SEGMENT_DONE instead of EOS) it seeks to 0 again without a flush, so running time, timestamps and
    the clients' streams go on without a break. The seek runs on the main loop, not the demuxer's thread that posts
    the message."""
    pipeline = media.get_element().get_parent() or media.get_element()

    def seek(flags):
        pipeline.seek(1.0, Gst.Format.TIME, flags | Gst.SeekFlags.SEGMENT, Gst.SeekType.SET, 0, Gst.SeekType.NONE, -1)
        return False

    def on_sync(_bus, msg):
        if msg.type == Gst.MessageType.SEGMENT_DONE:
            GLib.idle_add(seek, Gst.SeekFlags.NONE)

    bus = pipeline.get_bus()
    bus.enable_sync_message_emission()
    bus.connect("sync-message", on_sync)

    def start_looping():
        # Once playing: the first PLAY's own (flushing, non-segment) seek would undo an earlier segment seek.
        if pipeline.get_state(0)[1] != Gst.State.PLAYING:
            return True  # look again
        seek(Gst.SeekFlags.NONE)
        return False

    media.connect("prepared", lambda _m: GLib.timeout_add(200, start_looping))


factory.connect("media-configure", refuse_seeks_until_eos)
if os.environ.get("VIGIL_RTSP_LOOP") == "1":
    factory.connect("media-configure", loop_forever)
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
