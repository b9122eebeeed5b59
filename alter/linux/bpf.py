"""The bpf(2) system call through ctypes: maps, program loading, netns links; and pidfd_getfd(2).

Only what the proxy's kernel steering needs (alter/proxy/steer.py): array and
sockmap maps, loading a hand-assembled program, attaching it to this network
namespace with a BPF link, and copying a file descriptor out of another
process.  Every call raises OSError with the errno and a readable message.
Layouts follow include/uapi/linux/bpf.h; syscall numbers are per machine
(pidfd_* share one number everywhere).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform
import struct
from typing import Dict, Optional

_SYS_BPF: Dict[str, int] = {"x86_64": 321, "aarch64": 280}
SYS_PIDFD_OPEN = 434
SYS_PIDFD_GETFD = 438

# enum bpf_cmd
MAP_CREATE, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, MAP_DELETE_ELEM = 0, 1, 2, 3
PROG_LOAD = 5
LINK_CREATE = 28
# enum bpf_map_type / bpf_prog_type / bpf_attach_type
MAP_TYPE_ARRAY = 2
MAP_TYPE_SOCKMAP = 15
PROG_TYPE_SK_LOOKUP = 30
ATTACH_SK_LOOKUP = 36
# helper function ids
FN_MAP_LOOKUP_ELEM = 1
FN_SK_RELEASE = 86
FN_SK_ASSIGN = 124

_ATTR_SIZE = 144  # sizeof(union bpf_attr) as of 6.x; the kernel accepts any size with zeroed tail


@functools.lru_cache(maxsize=1)
def _syscall() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    fn = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)["syscall"]
    fn.restype = ctypes.c_long
    return fn


def _call(number: int, *args: object) -> int:
    result = int(_syscall()(number, *args))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def supported_machine() -> bool:
    return platform.machine() in _SYS_BPF


def bpf(cmd: int, attr: bytes) -> int:
    if not supported_machine():
        raise OSError(0, f"bpf() is not wired for {platform.machine()}")
    buf = ctypes.create_string_buffer(attr.ljust(_ATTR_SIZE, b"\0"), _ATTR_SIZE)
    return _call(_SYS_BPF[platform.machine()], cmd, buf, _ATTR_SIZE)


# ---------------------------------------------------------------------- instructions


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn (little-endian hosts: x86_64, aarch64)."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def ld_map_fd(dst: int, map_fd: int) -> bytes:
    """dst = the map behind map_fd (a two-slot ld_imm64 with BPF_PSEUDO_MAP_FD)."""
    return insn(0x18, dst, 1, 0, map_fd) + insn(0, 0, 0, 0, 0)


# ---------------------------------------------------------------------- maps


class Map:
    """A BPF map owned by this process (closing the fd frees it once nothing else holds it)."""

    def __init__(self, map_type: int, key_size: int, value_size: int, entries: int) -> None:
        self.key_size, self.value_size = key_size, value_size
        self.fd = bpf(MAP_CREATE, struct.pack("IIIII", map_type, key_size, value_size, entries, 0))

    def _elem(self, cmd: int, key: bytes, value: Optional[bytes], flags: int = 0) -> int:
        k = ctypes.create_string_buffer(key, len(key))
        v = ctypes.create_string_buffer(value, len(value)) if value is not None else None
        attr = struct.pack("IIQQQ", self.fd, 0, ctypes.addressof(k), ctypes.addressof(v) if v is not None else 0, flags)
        return bpf(cmd, attr)

    def update(self, key: bytes, value: bytes) -> None:
        self._elem(MAP_UPDATE_ELEM, key, value)

    def lookup(self, key: bytes) -> bytes:
        out = ctypes.create_string_buffer(self.value_size)
        k = ctypes.create_string_buffer(key, len(key))
        bpf(MAP_LOOKUP_ELEM, struct.pack("IIQQQ", self.fd, 0, ctypes.addressof(k), ctypes.addressof(out), 0))
        return out.raw

    def delete(self, key: bytes) -> bool:
        try:
            self._elem(MAP_DELETE_ELEM, key, None)
        except FileNotFoundError:
            return False
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# ---------------------------------------------------------------------- programs, links


def load_program(prog_type: int, code: bytes, attach_type: int, name: bytes) -> int:
    """Load (verify) a program; OSError carries the verifier's log when it refuses."""
    text = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(16384)
    attr = struct.pack(
        "IIQQIIQII16sII",
        prog_type,
        len(code) // 8,
        ctypes.addressof(text),
        ctypes.addressof(license_),
        1,
        len(log),
        ctypes.addressof(log),
        0,
        0,
        name[:15],
        0,
        attach_type,
    )
    try:
        return bpf(PROG_LOAD, attr)
    except OSError as exc:
        detail = log.value.decode(errors="replace").strip().splitlines()
        raise OSError(exc.errno, f"{exc.strerror}: {detail[-1] if detail else 'no verifier log'}") from None


def link_netns(prog_fd: int, attach_type: int) -> int:
    """Attach a program to this process's network namespace; closing the returned fd detaches it."""
    ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return bpf(LINK_CREATE, struct.pack("IIII", prog_fd, ns, attach_type, 0))
    finally:
        os.close(ns)


# ---------------------------------------------------------------------- pidfd


def pidfd_getfd(pid: int, fd: int) -> int:
    """A duplicate, in this process, of file descriptor `fd` of process `pid` (Linux 5.6+, ptrace rights)."""
    pidfd = _call(SYS_PIDFD_OPEN, pid, 0)
    try:
        new = _call(SYS_PIDFD_GETFD, pidfd, fd, 0)
    finally:
        os.close(pidfd)
    return new  # the kernel sets close-on-exec on it
