#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include "corecni_native.h"

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
    return "corecni-native 0.1";
}
