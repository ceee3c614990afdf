/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Run inside hami-dra-plugin.service's sandbox (the system suite adds it as
 * ExecStartPost= in a drop-in): try what the unit must refuse, print one line per
 * attempt, "REFUSED what: error" or "ALLOWED what", and the device nodes it sees.
 */

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/netlink.h>

static void report(const char *what, int r) {
        if (r < 0)
                printf("REFUSED %s: %s\n", what, strerrorname_np(errno));
        else
                printf("ALLOWED %s\n", what);
}

static int try_open(const char *path, int flags) {
        int fd = open(path, flags | O_CLOEXEC, 0600);
        if (fd >= 0)
                close(fd);
        return fd;
}

int main(void) {
        struct stat st;
        int fd;

        report("mount", mount("none", "/mnt", "tmpfs", 0, NULL));
        report("ptrace", (int) ptrace(PTRACE_TRACEME, 0, NULL, NULL));
        report("unshare-user", unshare(CLONE_NEWUSER));
        report("reboot", reboot(RB_POWER_OFF + 1)); /* an invalid command: harmless even if allowed */
        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        report("socket-netlink", fd);
        if (fd >= 0)
                close(fd);
        report("write-etc", try_open("/etc/hami-dra-probe", O_WRONLY | O_CREAT));
        report("write-usr", try_open("/usr/hami-dra-probe", O_WRONLY | O_CREAT));
        report("open-dev-kmsg", try_open("/dev/kmsg", O_RDONLY));
        report("open-dev-vda", try_open("/dev/vda", O_RDONLY));
        report("write-state-dir", try_open("/var/lib/hami-dra/probe", O_WRONLY | O_CREAT));
        report("write-cdi-dir", try_open("/run/cdi/probe", O_WRONLY | O_CREAT));
        (void) unlink("/var/lib/hami-dra/probe");
        (void) unlink("/run/cdi/probe");
        if (stat("/dev/nvidiactl", &st) == 0)
                printf("DEVICE /dev/nvidiactl %s %u:%u open=%s\n", S_ISCHR(st.st_mode) ? "char" : "other",
                       major(st.st_rdev), minor(st.st_rdev),
                       try_open("/dev/nvidiactl", O_RDWR) >= 0 ? "ok" : strerrorname_np(errno));
        fflush(stdout);
        return 0;
}
