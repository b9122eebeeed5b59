"""Kernel steering for tcp:// listeners: new connections go straight to an instance's own socket.

A tcp:// server that needs nothing from the proxy (no TLS, no Vanguard, no
max_conns, `tcp_steering` on) does not have to pass its bytes through a proxy
process at all: the proxy only picks an instance per connection.  The kernel
can do that pick.  A BPF sk_lookup program attached to the network namespace
runs when a SYN arrives for the server's address and port, takes the next
instance round-robin and hands the connection to that instance's listening
socket (bpf_sk_assign).  The instance accepts it as if the client had
connected to its port; every later byte moves inside the kernel between
client and instance, as with a direct connection.  The instance also sees the
client's real address.

The daemon copies each live instance's listening socket (pidfd_getfd) into a
SOCKMAP, in balancing order, and closes its copy at once: the map does not
keep a socket open, so when the instance closes it or dies its slot empties
by itself.  Whatever the program cannot place (an empty slot, a map being
rewritten, a failed assign) falls through to the ordinary lookup, which finds
the proxy processes' own listening sockets on the same address: the proxy
path stays the fallback and is always correct, only slower.

    steer = Steering("0.0.0.0", 5432)      # OSError when the kernel refuses (then: proxy only)
    steer.assign([(key, pid, port), ...])   # the live instances, in order -> the keys now steered
    steer.close()                           # detach; new connections take the proxy path again

Program layout (per listener; r6 = struct bpf_sk_lookup *):
  protocol == TCP, local_port == port, local address == host (unless a wildcard),
  meta[0] = {count, next}: slot = next++ % count, sk = sockmap[slot],
  bpf_sk_assign(ctx, sk, 0), release, return SK_PASS (also on every miss).
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from alter.linux import bpf
from alter.linux.bpf import insn
from alter.linux.sockets import ESTABLISHED, LISTEN, socket_fds, tcp_inodes

MAX_SLOTS = 256  # instances one listener can steer to
_TCP = 6

# struct bpf_sk_lookup offsets
_FAMILY, _PROTOCOL, _LOCAL_IP4, _LOCAL_IP6, _LOCAL_PORT = 8, 12, 40, 44, 60
# opcodes
_MOV_REG, _ADD_IMM, _LDX_W, _STX_W, _ST_W = 0xBF, 0x07, 0x61, 0x63, 0x62
_ADD32_IMM, _MOD32_REG, _MOV_IMM = 0x04, 0x9C, 0xB7
_JNE32_IMM, _JEQ_IMM, _CALL, _EXIT = 0x56, 0x15, 0x85, 0x95

Item = Union[bytes, Tuple[int, int, int, str]]  # code, or a jump (opcode, dst, imm, label)


def _s32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


def _assemble(items: Sequence[Item], labels: Dict[str, int]) -> bytes:
    """Resolve jumps to labels (label -> item index); an ld_imm64 item is two slots."""
    slots, at = [], 0
    for item in items:
        slots.append(at)
        at += len(item) // 8 if isinstance(item, bytes) else 1
    slots.append(at)
    out = []
    for i, item in enumerate(items):
        if isinstance(item, bytes):
            out.append(item)
        else:
            code, dst, imm, label = item
            out.append(insn(code, dst, 0, slots[labels[label]] - slots[i] - 1, imm))
    return b"".join(out)


def _address_checks(host: str) -> List[Item]:
    """Match the listener's own address, as its bind() would: 0.0.0.0 takes IPv4, :: both."""
    if host in ("::",):
        return []
    if host in ("", "0.0.0.0"):
        return [insn(_LDX_W, 2, 6, _FAMILY), (_JNE32_IMM, 2, socket.AF_INET, "out")]
    if ":" in host:
        words = struct.unpack("<4I", socket.inet_pton(socket.AF_INET6, host))
        checks: List[Item] = [insn(_LDX_W, 2, 6, _FAMILY), (_JNE32_IMM, 2, socket.AF_INET6, "out")]
        for i, word in enumerate(words):
            checks += [insn(_LDX_W, 2, 6, _LOCAL_IP6 + 4 * i), (_JNE32_IMM, 2, _s32(word), "out")]
        return checks
    (word,) = struct.unpack("<I", socket.inet_aton(host))
    return [
        insn(_LDX_W, 2, 6, _FAMILY),
        (_JNE32_IMM, 2, socket.AF_INET, "out"),
        insn(_LDX_W, 2, 6, _LOCAL_IP4),
        (_JNE32_IMM, 2, _s32(word), "out"),
    ]


def program(host: str, port: int, meta_fd: int, socks_fd: int) -> bytes:
    """The sk_lookup program for one listener (see the module docstring)."""
    items: List[Item] = [
        insn(_MOV_REG, 6, 1),  # r6 = ctx
        insn(_LDX_W, 2, 6, _PROTOCOL),
        (_JNE32_IMM, 2, _TCP, "out"),
        insn(_LDX_W, 2, 6, _LOCAL_PORT),
        (_JNE32_IMM, 2, port, "out"),
        *_address_checks(host),
        insn(_ST_W, 10, 0, -4, 0),  # key 0 on the stack
        bpf.ld_map_fd(1, meta_fd),
        insn(_MOV_REG, 2, 10),
        insn(_ADD_IMM, 2, 0, 0, -4),
        insn(_CALL, imm=bpf.FN_MAP_LOOKUP_ELEM),  # r0 = &meta[0] or NULL
        (_JEQ_IMM, 0, 0, "out"),
        insn(_LDX_W, 1, 0, 0),  # w1 = count
        (_JEQ_IMM, 1, 0, "out"),
        insn(_LDX_W, 2, 0, 4),  # w2 = next
        insn(_MOV_REG, 3, 2),
        insn(_ADD32_IMM, 3, 0, 0, 1),
        insn(_STX_W, 0, 3, 4),  # next += 1 (not atomic: a lost increment only skews one pick)
        insn(_MOD32_REG, 2, 1),  # w2 = next % count
        insn(_STX_W, 10, 2, -8),
        bpf.ld_map_fd(1, socks_fd),
        insn(_MOV_REG, 2, 10),
        insn(_ADD_IMM, 2, 0, 0, -8),
        insn(_CALL, imm=bpf.FN_MAP_LOOKUP_ELEM),  # r0 = the instance's socket (a reference) or NULL
        (_JEQ_IMM, 0, 0, "out"),
        insn(_MOV_REG, 7, 0),
        insn(_MOV_REG, 1, 6),
        insn(_MOV_REG, 2, 7),
        insn(_MOV_IMM, 3, 0, 0, 0),
        insn(_CALL, imm=bpf.FN_SK_ASSIGN),  # its result does not matter: a failure means "fall through"
        insn(_MOV_REG, 1, 7),
        insn(_CALL, imm=bpf.FN_SK_RELEASE),
        insn(_MOV_IMM, 0, 0, 0, 1),  # out: SK_PASS
        insn(_EXIT),
    ]
    return _assemble(items, {"out": len(items) - 2})


# ---------------------------------------------------------------------- /proc


def process_tree(pid: int) -> List[int]:
    """pid and its descendants (the instance's program may run its server in a child)."""
    try:
        import psutil

        return [pid] + [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except Exception:  # psutil.Error, or no psutil: the main process only
        return [pid]


def find_listener(pid: int, port: int) -> Optional[Tuple[int, int]]:
    """(pid, fd) of the socket listening on `port` in the instance's process tree, or None."""
    inodes = tcp_inodes(port, LISTEN)
    if not inodes:
        return None
    for owner, fd, _ in socket_fds(process_tree(pid), inodes):
        return owner, fd
    return None


def established(ports: Iterable[int]) -> Set[str]:
    """Inodes of the established connections on these (steered) ports, whoever holds them."""
    inodes: Set[str] = set()
    for port in ports:
        inodes |= tcp_inodes(port, ESTABLISHED)
    return inodes


def connections(pid: int, inodes: Set[str]) -> int:
    """How many of these connections (established()) the instance's process tree holds."""
    if not inodes or pid <= 0:
        return 0
    return len({inode for _, _, inode in socket_fds(process_tree(pid), inodes)})


# ---------------------------------------------------------------------- the steering of one listener


class Steering:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.meta = bpf.Map(bpf.MAP_TYPE_ARRAY, 4, 8, 1)
        self.socks: Optional[bpf.Map] = None
        self.link = -1
        try:
            self.socks = bpf.Map(bpf.MAP_TYPE_SOCKMAP, 4, 8, MAX_SLOTS)
            code = program(host, port, self.meta.fd, self.socks.fd)
            prog = bpf.load_program(bpf.PROG_TYPE_SK_LOOKUP, code, bpf.ATTACH_SK_LOOKUP, b"apm_steer")
            try:
                self.link = bpf.link_netns(prog, bpf.ATTACH_SK_LOOKUP)
            finally:
                os.close(prog)  # the link holds the program
        except OSError:
            self.close()
            raise
        self.slots = 0
        self.wanted: Tuple[Tuple[str, int, int], ...] = ()
        self.steered: List[str] = []

    def assign(self, targets: Sequence[Tuple[str, int, int]]) -> List[str]:
        """Steer to these instances ((key, pid, port), in balancing order); returns the keys placed.

        An instance whose listening socket cannot be found or copied is left out (its share
        of the connections then goes to the others).  Nothing is rewritten when the list is
        unchanged."""
        wanted = tuple(targets)
        if wanted == self.wanted or self.socks is None:
            return self.steered
        placed: List[str] = []
        for key, pid, port in wanted:
            if len(placed) >= MAX_SLOTS or pid <= 0:
                continue
            found = find_listener(pid, port)
            if found is None:
                continue
            try:
                sock = socket.socket(fileno=bpf.pidfd_getfd(*found))
            except OSError:
                continue
            try:
                # Without SO_REUSEADDR on the instance's socket, the connections steered to it (and
                # their TIME_WAIT) would keep this address from being bound again, by a restarted
                # daemon for one: such an instance stays behind the proxy processes.
                if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR):
                    continue
                self.socks.update(struct.pack("I", len(placed)), struct.pack("Q", sock.fileno()))
            except OSError:
                continue
            finally:
                sock.close()  # the map keeps no file open: the instance's close empties the slot
            placed.append(key)
        self.meta.update(struct.pack("I", 0), struct.pack("II", len(placed), 0))
        for slot in range(len(placed), self.slots):
            self.socks.delete(struct.pack("I", slot))
        self.slots = len(placed)
        # Remember the request only when all of it was placed: a miss is retried on the next call.
        self.wanted, self.steered = (wanted if len(placed) == len(wanted) else ()), placed
        return placed

    def close(self) -> None:
        if self.link >= 0:
            os.close(self.link)
            self.link = -1
        for m in (self.meta, self.socks):
            if m is not None:
                m.close()
        self.wanted, self.steered = (), []
