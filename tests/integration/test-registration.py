#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Registration as the kubelet does it: socket appears, GetInfo, validation, notify."""

import os
import stat

from harness import DRIVER, Daemon, check

EXPECTED_VERSIONS = ["v1.DRAPlugin", "v1beta1.DRAPlugin", "v1alpha1.DRAResourceHealth", "v1.DRAResourceHealth"]

with Daemon() as d:
    d.start()
    check(stat.S_ISSOCK(os.lstat(d.dra_sock).st_mode), "the DRA socket exists when the registration socket appears")
    check(stat.S_IMODE(os.lstat(d.reg_sock).st_mode) == 0o600, "registration socket is mode 0600")
    check(stat.S_IMODE(os.lstat(d.dra_sock).st_mode) == 0o600, "DRA socket is mode 0600")
    check(stat.S_IMODE(os.stat(os.path.dirname(d.dra_sock)).st_mode) == 0o750, "DRA socket directory is 0750")

    k = d.kubelet()
    info = k.register(DRIVER)
    check(info.type == "DRAPlugin", "type is DRAPlugin")
    check(info.name == DRIVER, "name is the driver name")
    check(info.endpoint == d.dra_sock, "endpoint is the DRA socket path: %s" % info.endpoint)
    check(list(info.supported_versions) == EXPECTED_VERSIONS,
          "supported_versions exactly %s" % EXPECTED_VERSIONS)
    check(k.dra_service == "v1.DRAPlugin", "a kubelet picks v1.DRAPlugin")
    check(k.health_service == "v1.DRAResourceHealth", "a kubelet picks v1.DRAResourceHealth")

    # A kubelet that rejected us still gets OK (and the daemon logs it).
    k.notify(False, "plugin validation failed: test")
    check(d.alive(), "daemon survives a failed-registration notification")

    # Newer kubelets poll GetInfo every 10 s, forever.
    for _ in range(50):
        again = k.get_info()
        if again != info:
            break
    check(again == info, "50 more GetInfo calls give the same answer")
    k.close()

    check(d.stop() == 0, "SIGTERM gives a clean exit")
    check(not os.path.exists(d.reg_sock) and not os.path.exists(d.dra_sock),
          "the sockets we bound are removed on exit")
