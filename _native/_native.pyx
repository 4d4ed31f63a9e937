# cython: cdivision=True
"""The native core of supervisor: clone/setns/exec, the pod infra process, reaping and
signals. One extension built from one file pair per concept (uvloop style): the .pxd files
hold the C structs and constants, the .pyx files the code, and this file includes them all.

Only supervisor's runtime imports it; it imports nothing from supervisor. C division
semantics (cdivision) hold module-wide: the C-level code runs without the GIL and must
never raise ZeroDivisionError or round towards minus infinity behind the reader's back.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memchr, memcmp, memcpy, memset, strchr, strlen, strncmp, strrchr

from includes cimport system
from includes.system cimport errno, gid_t, pid_t, ssize_t, uid_t

include "fs.pxd"
include "spawn.pxd"
include "frames.pxd"
include "infra.pxd"
include "release.pxd"
include "zygote.pxd"

include "errors.pyx"
include "spawn.pyx"
include "fs.pyx"
include "frames.pyx"
include "infra.pyx"
include "release.pyx"
include "zygote.pyx"
include "reap.pyx"
include "netns.pyx"

CLONE_NEWNS = system.CLONE_NEWNS
CLONE_NEWPID = system.CLONE_NEWPID
CLONE_NEWNET = system.CLONE_NEWNET
CLONE_NEWIPC = system.CLONE_NEWIPC
CLONE_NEWUTS = system.CLONE_NEWUTS
CLONE_NEWUSER = system.CLONE_NEWUSER
CLONE_NEWCGROUP = system.CLONE_NEWCGROUP
CAPTURE_LIMIT = INFRA_CAPTURE_LIMIT  # output bytes an EXEC_CAPTURE report carries
