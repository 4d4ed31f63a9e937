# Releasing inherited memory (release.pyx): a parsed /proc/self/maps line and the ELF
# images a released process keeps.

cdef enum:
    MAPS_LINE_MAX = 320                 # enough for the fields before a mapping's path
    KEPT_IMAGES = 4                     # the executable, ld.so, libc, this module


ctypedef struct mapping:
    uintptr_t start
    uintptr_t end
    uintptr_t offset
    uintptr_t dev                       # major << 32 | minor
    uintptr_t inode
    bint rw_private                     # perms "rw-p"
    bint anonymous                      # no file, no name (or "[heap]")


ctypedef struct kept_image:
    uintptr_t probe                     # an address inside the image
    uintptr_t dev
    uintptr_t inode                     # 0: not identified
    uintptr_t base                      # where its offset-0 mapping starts
    uintptr_t end                       # page-rounded end of its last PT_LOAD (with .bss)
