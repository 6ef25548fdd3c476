/* Emulates a disk whose flush is slow: every fsync/fdatasync of the process
 * takes SLOWSYNC_US microseconds more (default 2000).  Used to measure how
 * the clone and pg_dump | pg_restore depend on commit cost:
 *
 *   gcc -shared -fPIC -O2 -o /tmp/slowsync.so bench/migrate/slowsync.c -ldl
 *   LD_PRELOAD=/tmp/slowsync.so SLOWSYNC_US=1000 \
 *       .venv/bin/python -m bench.migrate.small --rows 20000,2000 --reps 5
 *
 * (the servers small.py starts inherit the environment; the .so must be
 * readable by the postgres OS user).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void slow(void)
{
    const char *s = getenv("SLOWSYNC_US");
    long us = s ? atol(s) : 2000;
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int r = real(fd);
    slow();
    return r;
}

int fsync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int r = real(fd);
    slow();
    return r;
}
