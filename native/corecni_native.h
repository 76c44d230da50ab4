#ifndef CORECNI_NATIVE_H
#define CORECNI_NATIVE_H

/* Enter the network namespace at path for the calling thread; 0 or -errno. */
int cn_setns_path(const char *path);
/* Version string of the native module, for `corecni doctor`. */
const char *cn_version(void);

#endif
