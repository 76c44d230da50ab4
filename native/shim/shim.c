/*
 * corecni's exec shim: a CNI plugin binary that forwards the call to `corecni daemon`.
 *
 * Installed (hard links of one file) under every corecni plugin type by
 * `corecni install`. A runtime execs it like any plugin; it
 *   1. connects to the daemon's unix socket ($CORECNI_DAEMON_SOCKET, else
 *      /run/corecni/daemon.sock),
 *   2. reads the CNI_* variables and stdin, opens CNI_NETNS and its own network
 *      namespace and sends both descriptors (SCM_RIGHTS) with the request
 *      (format: corecni/daemon_wire.py),
 *   3. prints the daemon's stdout/stderr and exits with its status.
 * When no daemon answers it execs the Python launcher installed beside it
 * (<dir>/.corecni/<type>) with one line on stderr: slower, never broken. If the
 * daemon dies during a call, ADD ends with CNI error 11 (its effects are the
 * runtime's to undo with DEL); every other command is idempotent or read-only
 * and is replayed through the launcher, so DEL never fails for lack of a daemon.
 *
 * No Python, no allocation beyond the request and the reply, no libraries.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/corecni/daemon.sock"
#define LAUNCHER_DIR ".corecni"
#define OP_CALL 1u
#define FD_CALLER_NETNS 1u
#define FD_CONTAINER_NETNS 2u
#define HEAD_LEN 28
#define REPLY_HEAD_LEN 16
#define MAX_STDIN (64u << 20)
#define MAX_REPLY (64u << 20)
#define DEFAULT_TIMEOUT 150

/* `corecni install` and the registry recognise the shim by this marker: a well-formed
 * ELF note, which the linker places within the first kilobytes of the file, so the
 * check reads one small block (corecni/launcher.py: is_shim). */
struct corecni_note {
    uint32_t namesz, descsz, type;
    char name[8];
    char desc[24];
};
__attribute__((used, section(".note.corecni"), aligned(4))) static const struct corecni_note
    marker = {8, 24, 1, "corecni", "corecni-shim-marker:v1"};

extern char **environ;

struct buf {
    char *p;
    size_t len, cap;
};

static int buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_add(struct buf *b, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static void put_u32(char *p, uint32_t v)
{
    p[0] = (char)(v & 0xff);
    p[1] = (char)((v >> 8) & 0xff);
    p[2] = (char)((v >> 16) & 0xff);
    p[3] = (char)((v >> 24) & 0xff);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- the request's pieces --------------------------------------------------- */

static const char *plugin_type;
static char launcher[PATH_MAX];
static struct buf input;  /* stdin, kept for a replay through the launcher */

static int set_launcher(const char *dir)
{
    int n = snprintf(launcher, sizeof launcher, "%s/" LAUNCHER_DIR "/%s", dir, plugin_type);
    if (n < 0 || (size_t)n >= sizeof launcher) {
        launcher[0] = 0;
        return -1;
    }
    return 0;
}

/* <dir of the executable>/.corecni/<type>: argv[0]'s directory first (hard links and
 * copies), then the real file's (a symlink to the shim elsewhere). */
static void find_launcher(const char *argv0)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(argv0, '/');
    if (slash && (size_t)(slash - argv0) < sizeof dir) {
        memcpy(dir, argv0, (size_t)(slash - argv0));
        dir[slash - argv0] = 0;
        if (set_launcher(dir) == 0 && access(launcher, X_OK) == 0)
            return;
    }
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n > 0) {
        dir[n] = 0;
        char *s = strrchr(dir, '/');
        if (s)
            *s = 0;
        set_launcher(dir);
    }
}

/* The config's top-level "cniVersion" (for an error JSON the shim writes itself). */
static void config_version(char *out, size_t size)
{
    snprintf(out, size, "1.1.0");
    const char *p = input.p, *end = input.p + input.len;
    int depth = 0;
    while (p && p < end) {
        char c = *p++;
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == '"') {
            const char *start = p;
            while (p < end && *p != '"')
                p += (*p == '\\') ? 2 : 1;
            if (p >= end)
                return;
            size_t len = (size_t)(p - start);
            p++;
            if (depth != 1 || len != 10 || memcmp(start, "cniVersion", 10) != 0)
                continue;
            while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
                p++;
            if (p >= end || *p != ':')
                continue;
            p++;
            while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
                p++;
            if (p >= end || *p != '"')
                return;
            start = ++p;
            while (p < end && *p != '"' && (size_t)(p - start) < size - 1) {
                char v = *p;
                if (!((v >= '0' && v <= '9') || v == '.' || (v >= 'a' && v <= 'z') ||
                      v == '-'))
                    return;
                p++;
            }
            if (p < end && *p == '"' && p > start)
                snprintf(out, size, "%.*s", (int)(p - start), start);
            return;
        }
    }
}

static void json_escape(char *out, size_t size, const char *in)
{
    size_t o = 0;
    for (; *in && o + 7 < size; in++) {
        unsigned char c = (unsigned char)*in;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, size - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = 0;
}

/* A CNI error JSON on stdout, a line on stderr, exit 1. */
static void fail(int code, const char *msg, const char *details)
{
    char version[40], emsg[512], edetails[1024];
    config_version(version, sizeof version);
    json_escape(emsg, sizeof emsg, msg);
    json_escape(edetails, sizeof edetails, details);
    printf("{\"cniVersion\":\"%s\",\"code\":%d,\"msg\":\"%s\",\"details\":\"%s\"}\n", version,
           code, emsg, edetails);
    fflush(stdout);
    fprintf(stderr, "%s: %s: %s\n", plugin_type, msg, details);
    exit(1);
}

static void read_stdin(void);

/* Run the Python launcher instead; `replay` feeds it the stdin already read. */
static void fall_back(const char *why, int replay)
{
    if (why)
        fprintf(stderr, "corecni-shim: %s; running %s's Python launcher\n", why, plugin_type);
    if (replay) {
        int fd = memfd_create("cni-stdin", MFD_CLOEXEC);
        if (fd < 0 || write_all(fd, input.p ? input.p : "", input.len) < 0 ||
            lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, 0) < 0)
            fail(5, "corecni shim cannot replay stdin to the launcher", strerror(errno));
        close(fd);
    }
    char *args[] = {launcher, NULL};
    execv(launcher, args);
    const char *command = getenv("CNI_COMMAND");
    if (!replay && command && *command)
        read_stdin(); /* for the error's cniVersion */
    char details[PATH_MAX + 64];
    snprintf(details, sizeof details, "%s: %s", launcher, strerror(errno));
    fail(5, "no corecni daemon answered and the Python launcher cannot run", details);
}

static int connect_daemon(const char *path, char *why, size_t why_size)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) {
        snprintf(why, why_size, "daemon socket path too long: %s", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
        snprintf(why, why_size, "no corecni daemon at %s (%s)", path, strerror(errno));
        if (s >= 0)
            close(s);
        return -1;
    }
    return s;
}

static void read_stdin(void)
{
    for (;;) {
        if (buf_reserve(&input, 65536) < 0)
            fail(5, "corecni shim is out of memory", "reading stdin");
        ssize_t n = read(0, input.p + input.len, input.cap - input.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail(5, "corecni shim cannot read stdin", strerror(errno));
        if (n == 0)
            return;
        input.len += (size_t)n;
        if (input.len > MAX_STDIN)
            fail(6, "network config on stdin is too large", "over 64 MiB");
    }
}

/* The request: head, type, launcher, CNI_* env (NUL-terminated entries), stdin. */
static int build_request(struct buf *req, uint32_t fd_bits)
{
    struct buf env = {0};
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "CNI_", 4) == 0 && buf_add(&env, *e, strlen(*e) + 1) < 0)
            return -1;
    char head[HEAD_LEN];
    memcpy(head, "CNS1", 4);
    put_u32(head + 4, OP_CALL);
    put_u32(head + 8, fd_bits);
    put_u32(head + 12, (uint32_t)strlen(plugin_type));
    put_u32(head + 16, (uint32_t)strlen(launcher));
    put_u32(head + 20, (uint32_t)env.len);
    put_u32(head + 24, (uint32_t)input.len);
    int rc = buf_add(req, head, HEAD_LEN) | buf_add(req, plugin_type, strlen(plugin_type)) |
             buf_add(req, launcher, strlen(launcher)) | buf_add(req, env.p, env.len) |
             buf_add(req, input.p, input.len);
    free(env.p);
    return rc;
}

/* The first bytes carry the descriptors; a daemon that refused early may close its
 * end (EPIPE): its reply is still queued for us, so sending errors are not fatal. */
static void send_request(int s, const struct buf *req, const int *fds, int nfds)
{
    char control[CMSG_SPACE(sizeof(int) * 2)];
    memset(control, 0, sizeof control);
    struct iovec iov = {.iov_base = req->p, .iov_len = req->len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t sent;
    do
        sent = sendmsg(s, &msg, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    size_t off = sent > 0 ? (size_t)sent : 0;
    while (sent >= 0 && off < req->len) {
        ssize_t n = send(s, req->p + off, req->len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

static int read_exact(int s, char *p, size_t n)
{
    while (n) {
        ssize_t r = read(s, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The daemon is gone (or silent) mid-call. */
static void lost(const char *command, const char *why)
{
    if (strcmp(command, "ADD") == 0)
        fail(11, "corecni daemon did not answer the call", why);
    fall_back(why, 1);
}

int main(int argc, char **argv)
{
    (void)argc;
    const char *slash = strrchr(argv[0], '/');
    plugin_type = slash ? slash + 1 : argv[0];
    find_launcher(argv[0]);

    const char *command = getenv("CNI_COMMAND");
    if (!command || !*command)
        fall_back(NULL, 0); /* a human at a terminal: the launcher explains itself */

    const char *path = getenv("CORECNI_DAEMON_SOCKET");
    char why[PATH_MAX + 128];
    int s = connect_daemon(path && *path ? path : DEFAULT_SOCKET, why, sizeof why);
    if (s < 0)
        fall_back(why, 0); /* stdin untouched: the launcher reads it */

    const char *timeout_env = getenv("CORECNI_SHIM_TIMEOUT");
    struct timeval tv = {.tv_sec = timeout_env ? atoi(timeout_env) : DEFAULT_TIMEOUT};
    if (tv.tv_sec <= 0)
        tv.tv_sec = DEFAULT_TIMEOUT;
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    read_stdin();
    int fds[2], nfds = 0;
    uint32_t bits = 0;
    fds[nfds] = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fds[nfds] >= 0) {
        nfds++;
        bits |= FD_CALLER_NETNS;
    }
    const char *netns = getenv("CNI_NETNS");
    if (netns && *netns) {
        fds[nfds] = open(netns, O_RDONLY | O_CLOEXEC);
        if (fds[nfds] >= 0) {
            nfds++;
            bits |= FD_CONTAINER_NETNS;
        } /* else the daemon sees the path and the plugin reports it like an exec would */
    }
    struct buf req = {0};
    if (build_request(&req, bits) < 0)
        fail(5, "corecni shim is out of memory", "building the request");
    send_request(s, &req, fds, nfds);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    free(req.p);

    unsigned char head[REPLY_HEAD_LEN];
    if (read_exact(s, (char *)head, sizeof head) < 0)
        lost(command, errno == EAGAIN ? "timed out waiting for the daemon"
                                      : "connection closed before the reply");
    if (memcmp(head, "CNR1", 4) != 0)
        lost(command, "the reply is not corecni's wire format");
    uint32_t status = get_u32(head + 4), out_len = get_u32(head + 8),
             err_len = get_u32(head + 12);
    if (out_len > MAX_REPLY || err_len > MAX_REPLY)
        lost(command, "the reply is too large");
    char *body = malloc((size_t)out_len + err_len + 1);
    if (!body)
        fail(5, "corecni shim is out of memory", "reading the reply");
    if (read_exact(s, body, (size_t)out_len + err_len) < 0)
        lost(command, "connection closed during the reply");
    close(s);
    write_all(2, body + out_len, err_len);
    if (write_all(1, body, out_len) < 0)
        return 1;
    return (int)(status & 0xff);
}
