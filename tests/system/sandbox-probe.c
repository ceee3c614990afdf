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
#include <arpa/inet.h>
#include <netinet/in.h>

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

/* One UDP datagram to addr:9: the cgroup's IP filter fails it with EPERM, or it is sent.
 * (UDP, not TCP: a filtered SYN is dropped silently and connect() would hang.) */
static void try_send(const char *addr) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(9) };
        ssize_t n;
        int fd;

        inet_pton(AF_INET, addr, &sa.sin_addr);
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                printf("NET %s socket: %s\n", addr, strerrorname_np(errno));
                return;
        }
        n = sendto(fd, "x", 1, MSG_DONTWAIT, (struct sockaddr *) &sa, sizeof(sa));
        printf("NET %s %s\n", addr, n < 0 ? strerrorname_np(errno) : "sent");
        close(fd);
}

static void try_device(const char *path) {
        struct stat st;

        if (stat(path, &st) < 0)
                return;
        printf("DEVICE %s %s %u:%u open=%s\n", path, S_ISCHR(st.st_mode) ? "char" : "other",
               major(st.st_rdev), minor(st.st_rdev),
               try_open(path, O_RDWR) >= 0 ? "ok" : strerrorname_np(errno));
}

int main(void) {
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
        try_device("/dev/nvidiactl");
        try_device("/dev/nvidia0");
        try_send("127.0.0.1");
        try_send("203.0.113.1");
        fflush(stdout);
        return 0;
}
