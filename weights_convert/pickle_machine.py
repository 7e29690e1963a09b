"""A pickle interpreter for tensor state dicts: an opcode allowlist, bounded work and memory.

Python's C unpickler trusts the lengths and counts a stream declares: one mutated byte can
make it allocate gigabytes or loop for minutes. As PyTorch's weights-only unpickler does,
this machine runs only the opcodes ``torch.save`` writes (protocol 2; plus the four a
protocol-4 global reference needs, so such a file is refused by name rather than as
garbage), checks every declared length against the bytes really left before reading, and
charges every opcode's work to a budget proportional to the bytes consumed. Anything else
is a :class:`PickleFormatError` naming the opcode and its byte offset.

After the stream ends, the object graph is checked once more (iteratively): no cycles, no
nesting deeper than :data:`MAX_DEPTH`, and no more nodes when unfolded than the budget, so
later code can walk it recursively without a RecursionError or an exponential blow-up.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Any, Callable

MAX_DEPTH = 64            # containers nested; a wrapped state dict needs about 5
MAX_LINE = 256            # bytes of a GLOBAL module or name line
WORK_PER_BYTE = 64        # work units allowed per byte consumed (+ WORK_BASE)
WORK_BASE = 1 << 16
MAX_PROTOCOL = 5
CHUNK = 1 << 16

OBJ = 128                 # bytes charged per object made, stored or moved (an upper estimate)
_SIZED = (tuple, list, dict, str, bytes, bytearray)
# dict keys a state dict uses: hashing any of these is O(its size), never recursive
_KEY_TYPES = (str, int, float, bool, type(None), bytes)


class PickleFormatError(Exception):
    """The stream is not a pickle this machine accepts (the caller names the file)."""


class _Source:
    """Bytes from a buffer or a file, read on demand; every read is checked against the
    bytes really left, so no declared length allocates more than the file holds."""

    def __init__(self, source: bytes | bytearray | memoryview | io.IOBase):
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._file = None
            self._buf = bytes(source)
            self._base = 0
            self._end = len(self._buf)
        else:
            self._file = source
            self._base = source.tell()
            try:
                self._end = os.fstat(source.fileno()).st_size - self._base
            except (AttributeError, OSError, io.UnsupportedOperation):
                self._end = source.seek(0, io.SEEK_END) - self._base
                source.seek(self._base)
            self._buf = bytearray()
        self.pos = 0

    def _fill(self, n: int) -> None:
        """Make ``n`` bytes from ``pos`` available (the caller checked they exist)."""
        need = self.pos + n - len(self._buf)
        if need > 0 and self._file is not None:
            self._buf += self._file.read(max(need, CHUNK))
        if self.pos + n > len(self._buf):
            raise PickleFormatError(f"truncated at byte {self.pos}: {n} more bytes needed, "
                                    f"the stream ends at {len(self._buf)}")

    @property
    def left(self) -> int:
        return self._end - self.pos

    def read(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self._end:
            raise PickleFormatError(
                f"{what} at byte {self.pos} declares {n} bytes, only {self._end - self.pos} "
                "are left (truncated or corrupted)")
        self._fill(n)
        out = self._buf[self.pos: self.pos + n]
        self.pos += n
        return out

    def readline(self, what: str) -> bytes:
        limit = min(self._end, self.pos + MAX_LINE + 1)
        self._fill(limit - self.pos)
        i = self._buf.find(b"\n", self.pos, limit)
        if i < 0:
            raise PickleFormatError(f"{what} at byte {self.pos}: no end of line within "
                                    f"{MAX_LINE} bytes")
        out = bytes(self._buf[self.pos: i])
        self.pos = i + 1
        return out

    def finish(self) -> None:
        """Leave a file positioned right after the pickle (the legacy formats read on)."""
        if self._file is not None:
            self._file.seek(self._base + self.pos)


def _u(fmt: str, raw: bytes) -> int:
    return struct.unpack(fmt, raw)[0]


class Machine:
    """One load: ``find_class(module, name)`` resolves globals (it must refuse what it does
    not allow), ``persistent_load(pid)`` resolves persistent ids, ``call(func, args)``
    performs REDUCE on a resolved callable."""

    def __init__(self, source: Any, find_class: Callable[[str, str], Any],
                 persistent_load: Callable[[Any], Any],
                 is_callable: Callable[[Any], bool], max_memory: int):
        self.src = _Source(source)
        self.find_class = find_class
        self.persistent_load = persistent_load
        self.is_callable = is_callable
        self.max_memory = max_memory
        self.memory = 0
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.work = 0
        self.op_at = 0

    # -- helpers --------------------------------------------------------------------
    def fail(self, msg: str) -> PickleFormatError:
        return PickleFormatError(f"{msg} (opcode at byte {self.op_at})")

    def charge(self, units: int, memory: int = 0) -> None:
        """Count work (elements touched) and an upper estimate of the memory allocated."""
        self.work += units
        self.memory += memory
        if self.work > WORK_PER_BYTE * self.src.pos + WORK_BASE:
            raise self.fail(f"the pickle needs more work than {WORK_PER_BYTE} units per byte "
                            "(a hostile or corrupted stream)")
        if self.memory > self.max_memory:
            raise self.fail(f"the pickle would allocate over {self.max_memory} bytes "
                            "(a small multiple of the file size; a memory bomb)")

    def pop(self) -> Any:
        floor = self.marks[-1] if self.marks else 0
        if len(self.stack) <= floor:
            raise self.fail("stack underflow")
        return self.stack.pop()

    def top(self) -> Any:
        floor = self.marks[-1] if self.marks else 0
        if len(self.stack) <= floor:
            raise self.fail("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise self.fail("no MARK to pop to")
        k = self.marks.pop()
        items = self.stack[k:]
        del self.stack[k:]
        self.charge(len(items), OBJ * len(items))
        return items

    def put(self, index: int) -> None:
        self.charge(1, OBJ)
        self.memo[index] = self.top()

    def get(self, index: int) -> None:
        try:
            self.stack.append(self.memo[index])
        except KeyError:
            raise self.fail(f"memo entry {index} read before it was written") from None

    def text(self, n: int, what: str) -> str:
        raw = self.src.read(n, what)
        self.charge(1, 64 + 4 * n)   # a str holds up to 4 bytes per UTF-8 byte read
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what} is not UTF-8 ({exc.reason})") from None

    def set_items(self, target: Any, items: list[Any]) -> None:
        if not isinstance(target, dict):
            raise self.fail(f"SETITEM(S) on a {type(target).__name__}")
        if len(items) % 2:
            raise self.fail("SETITEMS with an odd number of items")
        for k in items[::2]:
            if not isinstance(k, _KEY_TYPES):
                raise self.fail(f"a dict key of type {type(k).__name__} (a state dict has "
                                "str keys)")
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def reduce(self, func: Any, args: Any) -> Any:
        if not isinstance(args, tuple):
            raise self.fail(f"REDUCE arguments are a {type(args).__name__}, not a tuple")
        if not self.is_callable(func):
            raise self.fail(f"REDUCE calls a {type(func).__name__}, not an allowed global")
        sizes = len(args) + sum(len(a) for a in args if isinstance(a, _SIZED))
        self.charge(sizes, OBJ * sizes + 256)
        return func(*args)

    def build(self, inst: Any, state: Any) -> None:
        setstate = getattr(type(inst), "__setstate__", None)
        if setstate is not None and not isinstance(inst, dict):
            inst.__setstate__(state)   # the stand-ins refuse BUILD with a named error
            return
        # OrderedDict.__reduce__ hands its __dict__ (torch's ``_metadata``) as the state
        if not (isinstance(state, dict) and hasattr(inst, "__dict__")
                and all(isinstance(k, str) for k in state)):
            raise self.fail(f"BUILD of a {type(inst).__name__} with a "
                            f"{type(state).__name__} state")
        self.charge(len(state), OBJ * len(state))
        inst.__dict__.update(state)

    # -- the loop -------------------------------------------------------------------
    def load(self) -> Any:
        src, stack = self.src, self.stack
        while True:
            self.op_at = src.pos
            op = src.read(1, "opcode")[0]
            self.charge(1, OBJ)   # every opcode may push one object
            handler = _OPS.get(op)
            if handler is None:
                raise self.fail(f"opcode 0x{op:02x} is not one a torch state dict uses")
            if handler(self):
                break
        if self.marks or len(stack) != 1:
            raise self.fail(f"STOP with {len(stack)} objects and {len(self.marks)} open "
                            "MARKs on the stack")
        src.finish()
        value = stack[0]
        check_graph(value, WORK_PER_BYTE * src.pos + WORK_BASE)
        return value


def check_graph(root: Any, budget: int) -> None:
    """Refuse cycles, nesting deeper than MAX_DEPTH and graphs whose unfolded tree (shared
    references counted at every place) exceeds ``budget`` nodes. Iterative: no recursion."""
    done: dict[int, tuple[int, int]] = {}     # id -> (depth, unfolded size)
    active: set[int] = set()
    work: list[tuple[Any, bool]] = [(root, False)]
    while work:
        obj, leaving = work.pop()
        if not isinstance(obj, (list, tuple, dict)):
            continue
        key = id(obj)
        children = list(obj.values()) if isinstance(obj, dict) else obj
        if leaving:
            active.discard(key)
            depth, size = 1, 1
            for c in children:
                if isinstance(c, (list, tuple, dict)):
                    d, s = done[id(c)]
                    depth, size = max(depth, d + 1), size + s
                else:
                    size += 1
            if depth > MAX_DEPTH:
                raise PickleFormatError(f"objects nested {depth} deep (at most {MAX_DEPTH})")
            if size > budget:
                raise PickleFormatError(
                    f"shared references unfold to over {budget} objects (a memory bomb)")
            done[key] = (depth, size)
            continue
        if key in done:
            continue
        if key in active:
            raise PickleFormatError("the object graph has a cycle (a container inside itself)")
        if len(active) >= MAX_DEPTH:
            raise PickleFormatError(f"objects nested over {MAX_DEPTH} deep")
        active.add(key)
        work.append((obj, True))
        work.extend((c, False) for c in children)


# -- opcodes: each handler returns True at STOP ---------------------------------------
def _proto(m: Machine) -> None:
    v = m.src.read(1, "PROTO")[0]
    if not 2 <= v <= MAX_PROTOCOL:
        raise m.fail(f"pickle protocol {v} (torch writes protocol 2)")


def _frame(m: Machine) -> None:  # protocol 4 framing: a length hint, checked and ignored
    n = _u("<Q", m.src.read(8, "FRAME"))
    if n > m.src.left:
        raise m.fail(f"FRAME of {n} bytes, only {m.src.left} are left")


def _global(m: Machine) -> None:
    module = m.src.readline("GLOBAL module")
    name = m.src.readline("GLOBAL name")
    try:
        mod, nm = module.decode("utf-8"), name.decode("utf-8")
    except UnicodeDecodeError:
        raise m.fail("GLOBAL name is not UTF-8") from None
    m.stack.append(m.find_class(mod, nm))


def _stack_global(m: Machine) -> None:
    name = m.pop()
    module = m.pop()
    if not (isinstance(module, str) and isinstance(name, str)):
        raise m.fail("STACK_GLOBAL of non-strings")
    m.stack.append(m.find_class(module, name))


def _mark(m: Machine) -> None:
    m.marks.append(len(m.stack))


def _tuple(m: Machine) -> None:
    m.stack.append(tuple(m.pop_mark()))


def _tuple_n(n: int) -> Callable[[Machine], None]:
    def op(m: Machine) -> None:
        items = [m.pop() for _ in range(n)]
        m.stack.append(tuple(reversed(items)))
    return op


def _append(m: Machine) -> None:
    v = m.pop()
    target = m.top()
    if not isinstance(target, list):
        raise m.fail(f"APPEND to a {type(target).__name__}")
    target.append(v)


def _appends(m: Machine) -> None:
    items = m.pop_mark()
    target = m.top()
    if not isinstance(target, list):
        raise m.fail(f"APPENDS to a {type(target).__name__}")
    target.extend(items)


def _setitem(m: Machine) -> None:
    v = m.pop()
    k = m.pop()
    m.set_items(m.top(), [k, v])


def _setitems(m: Machine) -> None:
    items = m.pop_mark()
    m.set_items(m.top(), items)


def _reduce(m: Machine) -> None:
    args = m.pop()
    func = m.pop()
    m.stack.append(m.reduce(func, args))


def _build(m: Machine) -> None:
    state = m.pop()
    m.build(m.top(), state)


def _binpersid(m: Machine) -> None:
    pid = m.pop()
    m.charge(len(pid) if isinstance(pid, _SIZED) else 1, 256)
    m.stack.append(m.persistent_load(pid))


def _push(value: Any) -> Callable[[Machine], None]:
    def op(m: Machine) -> None:
        m.stack.append(value)
    return op


def _new(factory: Callable[[], Any]) -> Callable[[Machine], None]:
    def op(m: Machine) -> None:
        m.stack.append(factory())
    return op


def _int(fmt: str, n: int) -> Callable[[Machine], None]:
    def op(m: Machine) -> None:
        m.stack.append(_u(fmt, m.src.read(n, "integer")))
    return op


def _long1(m: Machine) -> None:
    n = m.src.read(1, "LONG1")[0]
    m.charge(1, 64 + n)
    m.stack.append(int.from_bytes(m.src.read(n, "LONG1"), "little", signed=True))


def _binfloat(m: Machine) -> None:
    m.stack.append(struct.unpack(">d", m.src.read(8, "BINFLOAT"))[0])


def _string(fmt: str, n: int, what: str) -> Callable[[Machine], None]:
    def op(m: Machine) -> None:
        size = _u(fmt, m.src.read(n, what))
        m.stack.append(m.text(size, what))
    return op


def _put(fmt: str, n: int) -> Callable[[Machine], None]:
    def op(m: Machine) -> None:
        m.put(_u(fmt, m.src.read(n, "memo index")))
    return op


def _get(fmt: str, n: int) -> Callable[[Machine], None]:
    def op(m: Machine) -> None:
        m.get(_u(fmt, m.src.read(n, "memo index")))
    return op


def _memoize(m: Machine) -> None:
    m.put(len(m.memo))


def _stop(m: Machine) -> bool:
    return True


_OPS: dict[int, Callable[[Machine], Any]] = {
    0x80: _proto, 0x95: _frame, ord("."): _stop, ord("("): _mark,
    ord("c"): _global, 0x93: _stack_global,
    ord(")"): _new(tuple), ord("t"): _tuple,
    0x85: _tuple_n(1), 0x86: _tuple_n(2), 0x87: _tuple_n(3),
    ord("]"): _new(list), ord("a"): _append, ord("e"): _appends,
    ord("}"): _new(dict), ord("s"): _setitem, ord("u"): _setitems,
    ord("N"): _push(None), 0x88: _push(True), 0x89: _push(False),
    ord("J"): _int("<i", 4), ord("K"): _int("<B", 1), ord("M"): _int("<H", 2), 0x8A: _long1,
    ord("G"): _binfloat,
    ord("X"): _string("<I", 4, "BINUNICODE"), 0x8C: _string("<B", 1, "SHORT_BINUNICODE"),
    # Python 2 str (legacy checkpoints saved under Python 2), read as UTF-8 text
    ord("T"): _string("<i", 4, "BINSTRING"), ord("U"): _string("<B", 1, "SHORT_BINSTRING"),
    ord("q"): _put("<B", 1), ord("r"): _put("<I", 4), 0x94: _memoize,
    ord("h"): _get("<B", 1), ord("j"): _get("<I", 4),
    ord("R"): _reduce, ord("b"): _build, ord("Q"): _binpersid,
}
