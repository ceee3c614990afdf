#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A strict stand-in for org.freedesktop.PolicyKit1 on a private bus.

    fake-polkit.py POLICY_FILE LOG_FILE

Answers CheckAuthorization like polkitd would for the actions in POLICY_FILE (our
polkit/org.projecthami.dra1.policy): an action that file does not declare is an error,
as with the real polkitd, so a typo in the daemon's action ids fails the tests. The
subject must be a "system-bus-name" with a "name" string; flags must be 0 or 1
(AllowUserInteraction). uid 0 and the uids in $FAKE_POLKIT_ALLOW_UIDS (comma-separated)
are authorized; others get is_challenge=true when they allowed interaction (an agent
would ask for a password), false otherwise. Each call is appended to LOG_FILE as JSON.

With $FAKE_POLKIT_HOLD=1 answers are held back until a test calls
org.projecthami.Test.FakePolkit.ReleaseHeld() on /: that is how the tests prove the
daemon keeps serving while polkit thinks, and what happens when the world changes meanwhile.
"""
import json
import os
import sys
import xml.etree.ElementTree as ET

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

IFACE = "org.freedesktop.PolicyKit1.Authority"
policy_file, log_file = sys.argv[1], sys.argv[2]
ACTIONS = {a.get("id") for a in ET.parse(policy_file).getroot().iter("action")}
ALLOW = {int(u) for u in os.environ.get("FAKE_POLKIT_ALLOW_UIDS", "").split(",") if u}
HOLD = os.environ.get("FAKE_POLKIT_HOLD") == "1"
held = []

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.SystemBus()


class Failed(dbus.DBusException):
    _dbus_error_name = "org.freedesktop.PolicyKit1.Error.Failed"


class Authority(dbus.service.Object):
    @dbus.service.method(IFACE, in_signature="(sa{sv})sa{ss}us", out_signature="(bba{ss})",
                         async_callbacks=("reply", "error"))
    def CheckAuthorization(self, subject, action_id, details, flags, cancel_id, reply, error):
        kind, d = subject
        if kind != "system-bus-name" or not isinstance(d.get("name"), dbus.String):
            raise Failed("unsupported subject %s" % kind)
        if action_id not in ACTIONS:
            raise Failed("Action %s is not registered" % action_id)
        if flags not in (0, 1):
            raise Failed("unknown flags %d" % flags)
        uid = int(bus.get_unix_user(str(d["name"])))
        allowed = uid == 0 or uid in ALLOW
        challenge = (not allowed) and flags == 1
        with open(log_file, "a") as f:
            f.write(json.dumps({"action": str(action_id), "uid": uid, "flags": int(flags),
                                "allowed": allowed}) + "\n")
        answer = (allowed, challenge, dbus.Dictionary({}, signature="ss"))
        if HOLD:
            held.append((reply, answer))
        else:
            reply(answer)


class Control(dbus.service.Object):
    @dbus.service.method("org.projecthami.Test.FakePolkit", in_signature="", out_signature="u")
    def ReleaseHeld(self):
        n = len(held)
        while held:
            reply, answer = held.pop(0)
            reply(answer)
        return n


name = dbus.service.BusName("org.freedesktop.PolicyKit1", bus)
Authority(bus, "/org/freedesktop/PolicyKit1/Authority")
Control(bus, "/")
GLib.MainLoop().run()
