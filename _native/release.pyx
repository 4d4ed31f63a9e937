# Releasing the memory a cloned process inherited from supd (used by infra).
#
# clone() without exec leaves the child a copy-on-write image of supd: every page supd
# writes afterwards becomes a private copy held by the child. Infra lives as long as its pod
# and never runs Python, so it unmaps what it cannot be using. All code here runs in the
# child: no allocation, only system calls and reads of its own memory.

cdef const char *skip_spaces(const char *p, const char *end) noexcept nogil:
    while p < end and p[0] == 32:
        p += 1
    return p


cdef const char *parse_number(const char *p, const char *end, int base,
                              uintptr_t *out) noexcept nogil:
    cdef uintptr_t value = 0
    cdef int digit
    while p < end:
        if 48 <= p[0] <= 57:
            digit = p[0] - 48
        elif base == 16 and 97 <= p[0] <= 102:
            digit = p[0] - 87
        else:
            break
        value = value * base + digit
        p += 1
    out[0] = value
    return p


cdef bint parse_mapping(const char *line, size_t n, mapping *m) noexcept nogil:
    """One line of /proc/self/maps: "start-end perms offset major:minor inode path"
    (proc(5))."""
    cdef const char *p = line
    cdef const char *e = line + n
    cdef uintptr_t minor
    p = parse_number(p, e, 16, &m.start)
    if p >= e or p[0] != 45:  # '-'
        return False
    p = skip_spaces(parse_number(p + 1, e, 16, &m.end), e)
    m.rw_private = e - p >= 4 and memcmp(p, b"rw-p", 4) == 0
    p = skip_spaces(p + 4, e) if e - p >= 4 else e
    p = skip_spaces(parse_number(p, e, 16, &m.offset), e)
    p = parse_number(p, e, 16, &m.dev)
    if p < e and p[0] == 58:  # ':'
        p = parse_number(p + 1, e, 16, &minor)
        m.dev = (m.dev << 32) | minor
    p = skip_spaces(parse_number(skip_spaces(p, e), e, 10, &m.inode), e)
    m.anonymous = m.inode == 0 and (p == e or (e - p == 6 and memcmp(p, b"[heap]", 6) == 0))
    return True


cdef uintptr_t elf_image_end(uintptr_t base, uintptr_t page) noexcept nogil:
    """The page-rounded end of the ELF image mapped at `base` (its last PT_LOAD, .bss
    included), read from the ELF and program headers in its first page; 0 if unsure."""
    cdef const unsigned char *eh = <const unsigned char *>base
    cdef uint64_t phoff, vaddr, memsz, low = <uint64_t>-1, high = 0
    cdef uint16_t phentsize, phnum
    cdef uint32_t kind
    cdef int i
    cdef const unsigned char *ph
    if memcmp(eh, b"\x7fELF", 4) != 0 or eh[4] != 2:  # ELFCLASS64
        return 0
    memcpy(&phoff, eh + 32, 8)
    memcpy(&phentsize, eh + 54, 2)
    memcpy(&phnum, eh + 56, 2)
    if phentsize < 56 or phnum == 0 or phoff + <uint64_t>phnum * phentsize > page:
        return 0
    for i in range(phnum):
        ph = eh + phoff + <uint64_t>i * phentsize
        memcpy(&kind, ph, 4)
        if kind != 1:  # PT_LOAD
            continue
        memcpy(&vaddr, ph + 16, 8)
        memcpy(&memsz, ph + 40, 8)
        if vaddr < low:
            low = vaddr
        if vaddr + memsz > high:
            high = vaddr + memsz
    if high == 0:
        return 0
    return (base - (low & ~(page - 1)) + high + page - 1) & ~(page - 1)


cdef int read_maps(int pass_no, kept_image *images, const uintptr_t *keep,
                   int nkeep) noexcept nogil:
    """Stream /proc/self/maps through identify_images (pass 0) or release_mapping (pass
    1). A line at a time, from a stack buffer: munmap() of the line just read is safe, the
    kernel resumes the listing after the last address it printed."""
    cdef char buf[4096]
    cdef char line[MAPS_LINE_MAX]
    cdef size_t linelen = 0
    cdef ssize_t n, k
    cdef mapping m
    cdef int fd = system.open(b"/proc/self/maps", system.O_RDONLY | system.O_CLOEXEC)
    if fd < 0:
        return -1
    while True:
        n = system.read(fd, buf, sizeof(buf))
        if n < 0 and errno == system.EINTR:
            continue
        if n <= 0:
            break
        for k in range(n):
            if buf[k] != 10:
                if linelen < MAPS_LINE_MAX:
                    line[linelen] = buf[k]
                    linelen += 1
                continue
            if parse_mapping(line, linelen, &m):
                if pass_no == 0:
                    identify_images(&m, images)
                else:
                    release_mapping(&m, images, keep, nkeep)
            linelen = 0
    system.close(fd)
    return 0


cdef void identify_images(const mapping *m, kept_image *images) noexcept nogil:
    cdef int i
    for i in range(KEPT_IMAGES):
        if m.inode != 0 and m.start <= images[i].probe < m.end:
            images[i].dev = m.dev
            images[i].inode = m.inode


cdef void release_mapping(const mapping *m, kept_image *images, const uintptr_t *keep,
                          int nkeep) noexcept nogil:
    cdef uintptr_t low = m.start
    cdef uintptr_t page = system.getauxval(system.AT_PAGESZ)
    cdef int i
    cdef bint kept_file = False
    for i in range(KEPT_IMAGES):
        if m.inode != 0 and m.inode == images[i].inode and m.dev == images[i].dev:
            kept_file = True
            if m.offset == 0 and images[i].base == 0:
                images[i].base = m.start
                images[i].end = elf_image_end(m.start, page)
                if images[i].end == 0:
                    images[i].end = <uintptr_t>-1  # unsure: keep all that follows
    if kept_file:
        return
    for i in range(nkeep):
        if m.start <= keep[i] < m.end:
            return
    if m.inode != 0:
        # Any mapping of a file that is not a kept image, whatever its permissions: the
        # libraries infra never calls (libpython, libcrypto, other extension modules), whose
        # relocated read-only data (RELRO) are private copies as well as their .data, and
        # supd's io_uring rings (anon_inode, shared: infra has closed their fd).
        system.munmap(<void *>m.start, m.end - m.start)
        return
    if not m.rw_private:
        return
    if m.anonymous:
        # A kept image's .bss may share one mapping with memory mmap()ed right after it.
        for i in range(KEPT_IMAGES):
            if images[i].base != 0 and images[i].base <= m.start < images[i].end:
                low = images[i].end if images[i].end > low else low
        if low < m.end:
            system.munmap(<void *>low, m.end - low)


cdef void release_inherited_memory() noexcept nogil:
    """Unmap the private memory infra inherited from supd and does not use. clone() without
    exec leaves infra a copy-on-write image of supd, and every page supd writes afterwards
    becomes a private copy held by infra: tens of MB per pod (the Python heap, arenas,
    other threads' stacks, libpython's data). Infra runs on its own stack and TLS, the
    static tables of this module and the globals of libc and ld.so; those images (and the
    executable's, which may hold copy-relocated libc data) and every mapping holding one of
    the `keep` addresses stay; every other file mapping goes, and so does every other
    private writable anonymous one. Best effort:
    without /proc infra keeps the memory."""
    cdef kept_image images[KEPT_IMAGES]
    cdef uintptr_t keep[3]
    cdef int marker = 0
    memset(images, 0, sizeof(images))
    images[0].probe = <uintptr_t>system.getauxval(system.AT_PHDR)  # the executable
    images[1].probe = <uintptr_t>system.getauxval(system.AT_BASE)  # ld.so
    images[2].probe = <uintptr_t>&system.close  # libc
    images[3].probe = <uintptr_t>&infra_main  # this module
    keep[0] = <uintptr_t>&marker  # this stack
    keep[1] = <uintptr_t>system.errno_location()  # this thread's TLS
    keep[2] = <uintptr_t>system.pthread_self()  # its TCB: rseq area, robust futex list
    if read_maps(0, images, keep, 3) == 0:
        read_maps(1, images, keep, 3)
