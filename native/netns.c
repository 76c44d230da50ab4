#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>

#include "corecni_native.h"
#include "cn_nl.h"

int cn_setns_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = setns(fd, CLONE_NEWNET);
    int err = errno;
    close(fd);
    return rc < 0 ? -err : 0;
}

const char *cn_version(void)
{
    return "corecni-native 0.2 (netlink batch)";
}

int cn_in_netns(const char *netns, int (*fn)(void *), void *arg)
{
    if (netns == NULL)
        return fn(arg);

    int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (own < 0)
        return -errno;
    int target = open(netns, O_RDONLY | O_CLOEXEC);
    if (target < 0) {
        int err = errno;
        close(own);
        return -err;
    }
    if (setns(target, CLONE_NEWNET) < 0) {
        int err = errno;
        close(target);
        close(own);
        return -err;
    }
    close(target);
    int rc = fn(arg);
    if (setns(own, CLONE_NEWNET) < 0) {
        /* The thread would keep running in a foreign namespace: every later
         * network call of the process could touch the wrong one. */
        fprintf(stderr, "corecni-native: cannot return to own network namespace (errno %d)\n",
                errno);
        abort();
    }
    close(own);
    return rc;
}

static int open_route_socket(void *arg)
{
    (void)arg;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    return fd < 0 ? -errno : fd;
}

int cn_nl_socket(const char *netns)
{
    return cn_in_netns(netns, open_route_socket, NULL);
}

struct open_args {
    const char *path;
    int flags;
};

static int open_file(void *arg)
{
    struct open_args *a = arg;
    int fd = open(a->path, a->flags | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int cn_open_in_netns(const char *netns, const char *path, int flags)
{
    struct open_args a = {path, flags};
    return cn_in_netns(netns, open_file, &a);
}
