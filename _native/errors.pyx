# Errors of the native core: one errno -> OSError conversion, and SpawnError, which turns a
# (step, errno) pair reported by a child or by infra into a message a person can act on.

import os as _os

# Names of spawn_step (spawn.pxd), indexed by step number.
STEPS = (
    "clone",
    "pipe",
    "setns",
    "sethostname",
    "mount private",
    "mount proc",
    "chdir",
    "dup2",
    "setsid",
    "setgroups",
    "setgid",
    "setuid",
    "pdeathsig",
    "exec",
    "frame",
    "slot",
    "prctl",
    "loopback",
    "devnull",
    "signalfd",
    "epoll",
    "ctty",
    "cgroup",
    "capbset",
    "capset",
    "no_new_privs",
    "sysctl",
)
assert len(STEPS) == STEP_COUNT

# What was being done, when the step name alone does not say it.
_STEP_ACTIONS = {
    "mount private": "mount --make-rprivate /",
    "mount proc": "mount proc on /proc",
    "pdeathsig": "prctl PR_SET_PDEATHSIG",
    "frame": "decode start frame",
    "slot": "allocate container slot",
    "loopback": "bring up lo",
    "devnull": "open /dev/null",
    "ctty": "ioctl TIOCSCTTY",
    "cgroup": "join the container's cgroup",
    "capbset": "prctl PR_CAPBSET_DROP",
    "capset": "capset",
    "no_new_privs": "prctl PR_SET_NO_NEW_PRIVS",
    "sysctl": "write the pod's sysctls",
}

# execve(2) errors that mean "found but cannot be executed": a shell exits 126 for these,
# 127 for everything else (not found, or the process never got as far as exec).
_NOT_EXECUTABLE = frozenset((
    system.EACCES, system.EPERM, system.ENOEXEC, system.EISDIR, system.ETXTBSY,
))


class SpawnError(OSError):
    """A spawn failed at `step` with `errno`; str() reads like
    "exec /bin/nginx: No such file or directory" or "chdir /srv: Permission denied"."""

    def __init__(self, errno, strerror, filename=None, step="exec", message=None):
        if filename is None:
            super().__init__(errno, strerror)
        else:
            super().__init__(errno, strerror, filename)
        self.step = step
        self.exit_code = 126 if step == "exec" and errno in _NOT_EXECUTABLE else 127
        self.message = message if message is not None else f"{step}: {strerror}"

    def __str__(self):
        return self.message


def _text(value):
    if value is None or isinstance(value, str):
        return value
    return _os.fsdecode(value)


def spawn_error(int step, int errno, argv0, cwd=None, fs=None):
    """The SpawnError for a (step, errno) pair reported by a child or by infra. A step from
    FS_STEP_BASE on is filesystem operation step - FS_STEP_BASE: `fs` describes each one
    ("mount emptyDir 'cache' at /data"), and its step name is "mount"."""
    strerror = _os.strerror(errno)
    cdef int index = step - FS_STEP_BASE
    if 0 <= index < FS_MAX_OPS:
        what = fs[index] if fs is not None and index < len(fs) else f"filesystem step {index}"
        return SpawnError(errno, strerror, None, "mount", f"{what}: {strerror}")
    name = STEPS[step] if 0 <= step < STEP_COUNT else f"step {step}"
    filename = None
    if name == "exec":
        filename = _text(argv0)
    elif name == "chdir" and cwd is not None:
        filename = _text(cwd)
    action = _STEP_ACTIONS.get(name, name)
    if filename is not None:
        action = f"{action} {filename}"
    return SpawnError(errno, strerror, filename, name, f"{action}: {strerror}")


cdef int raise_errno(int err) except -1:
    """Raise the OSError subclass for errno `err` (OSError maps it: ENOENT ->
    FileNotFoundError, ESRCH -> ProcessLookupError, ...)."""
    raise OSError(err, _os.strerror(err))
