"""The compiled compact-protocol codec (aioaccess.codec._speedups).

References:
  * encode: byte-identical to Apache Thrift's accelerated compact encoder
    (``thrift.protocol.fastbinary.encode_compact``, what concrete-python uses);
  * decode: equal to thriftpy2's own ``TCompactProtocol`` decode;
  * to_tjson: read back by Apache's ``TJSONProtocol`` into equal objects, and
    byte-identical to Apache's TJSON writer when no value needs the escapes
    that writer gets wrong (NaN/Infinity, raw control characters);
  * hostile input: every failure is ``CodecError``; never a crash, never an
    allocation the input cannot justify.
"""

from __future__ import annotations

import copy
import gc
import io
import math
import struct
import sys
import tracemalloc

import pytest
import thriftpy2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from thrift.protocol import fastbinary
from thrift.protocol.TJSONProtocol import TJSONProtocol
from thrift.transport.TTransport import TMemoryBuffer
from thriftpy2.protocol import TCompactProtocolFactory
from thriftpy2.thrift import TType
from thriftpy2.utils import deserialize

from aioaccess.codec.errors import CodecError

S = pytest.importorskip("aioaccess.codec._speedups")

# ---------------------------------------------------------------------------
# Fixture schema: every Thrift type, nesting, recursion, defaults
# ---------------------------------------------------------------------------

IDL = """
enum Color { RED = 1, GREEN = 2, BLUE = 7 }
typedef i64 Ts

struct Leaf {
  1: required string name
  2: optional i32 n = 5
  3: list<Color> colors
}

struct Node {
  1: i32 value
  2: list<Node> children
  3: optional Node nxt
}

struct All {
  1: bool b = true
  2: byte by
  3: i16 s
  4: i32 i
  5: i64 l
  6: double d
  7: string str = "x"
  8: binary bin
  9: Leaf leaf
  10: list<i32> li
  11: set<string> ss
  12: map<string, Leaf> m
  13: list<list<map<i32, binary>>> nest
  14: Color c
  15: Ts ts
  16: list<bool> lb
  17: map<Color, list<Leaf>> mc
  18: list<double> ld
  19: map<bool, double> mbd
  20: list<string> ls = ["a", "b"]
  21: set<i64> sl
  22: list<binary> lbin
  23: map<i16, byte> msb
  24: Node node
  25: list<Leaf> leaves
  26: bool b2
  27: map<double, string> mds
  300: string far
}

exception Oops { 1: string msg, 2: i32 code }
union Choice { 1: string a, 2: i32 b }
struct Holder { 1: Oops oops, 2: Choice choice, 3: All all }
struct Empty {}
struct Neg { -3: i32 a, 1: string b, 2: list<Neg> kids }
struct V1 { 1: i32 a, 3: string c }
struct V2 { 1: i32 a, 2: list<map<string, double>> extra, 3: string c, 4: bool flag, 5: i64 big, 6: V1 sub }
struct Mismatch { 1: string a, 3: i32 c, 5: list<string> big }
"""

T = thriftpy2.load_fp(io.StringIO(IDL), module_name="aioaccess_speedups_fixture_thrift")

FIXTURE_CLASSES = [T.Leaf, T.Node, T.All, T.Oops, T.Choice, T.Holder, T.Empty, T.V1, T.V2, T.Mismatch]


def _fields(cls):
    for fid, spec in sorted(cls.thrift_spec.items()):
        yield fid, spec[0], spec[1], (spec[2] if len(spec) == 4 else None), spec[-1]


def _split(arg):
    return arg if isinstance(arg, tuple) else (arg, None)


# ---------------------------------------------------------------------------
# Apache Thrift mirrors of the thriftpy2 classes (for fastbinary and TJSON)
# ---------------------------------------------------------------------------

_MIRRORS: dict[type, type] = {}


def _apache_targs(ttype, arg):
    if ttype == TType.BINARY:
        return TType.STRING, "BINARY"
    if ttype == TType.STRING:
        return TType.STRING, "UTF8"
    if ttype == TType.STRUCT:
        m = mirror(arg)
        return TType.STRUCT, [m, m.thrift_spec]
    if ttype in (TType.LIST, TType.SET):
        et, ea = _split(arg)
        return ttype, (*_apache_targs(et, ea), False)
    if ttype == TType.MAP:
        kt, ka = _split(arg[0])
        vt, va = _split(arg[1])
        return TType.MAP, (*_apache_targs(kt, ka), *_apache_targs(vt, va), False)
    return ttype, None


def mirror(cls):
    """An Apache-Thrift-style class (tuple thrift_spec, read/write) for a thriftpy2 class."""
    if cls in _MIRRORS:
        return _MIRRORS[cls]
    defaults = list(cls().__dict__.items())

    def __init__(self):
        for name, value in defaults:
            setattr(self, name, copy.deepcopy(value))

    m = type(
        "Apache" + cls.__name__,
        (),
        {
            "__init__": __init__,
            "read": lambda self, iprot: iprot.readStruct(self, self.thrift_spec),
            "write": lambda self, oprot: oprot.writeStruct(self, self.thrift_spec),
            "__repr__": lambda self: f"Apache{cls.__name__}({self.__dict__!r})",
        },
    )
    _MIRRORS[cls] = m
    ids = [fid for fid, *_ in _fields(cls)]
    spec: list = [None] * ((max(ids) + 1) if ids else 1)
    m.thrift_spec = None  # placeholder while recursive references are built
    for fid, ttype, name, arg, _req in _fields(cls):
        assert fid >= 0, "Apache specs cannot hold negative field ids"
        atype, aarg = _apache_targs(ttype, arg)
        spec[fid] = (fid, atype, name, aarg, None)
    m.thrift_spec = tuple(spec)
    for other in _MIRRORS.values():  # recursive types captured the placeholder
        if other.thrift_spec is not None:
            _fix_struct_args(other.thrift_spec)
    return m


def _fix_struct_args(spec):
    def fix(ttype, arg):
        if ttype == TType.STRUCT:
            arg[1] = arg[0].thrift_spec
        elif ttype in (TType.LIST, TType.SET):
            fix(arg[0], arg[1])
        elif ttype == TType.MAP:
            fix(arg[0], arg[1])
            fix(arg[2], arg[3])

    for f in spec:
        if f is not None:
            fix(f[1], f[3])


def apache_encode(obj) -> bytes:
    """Apache Thrift's accelerated (C) compact encoder on a thriftpy2 object."""
    m = mirror(type(obj))
    return fastbinary.encode_compact(obj, [m, m.thrift_spec])


def to_mirror(v, ttype, arg):
    if v is None:
        return None
    if ttype == TType.STRUCT:
        m = mirror(arg)()
        for _fid, ft, name, fa, _req in _fields(arg):
            setattr(m, name, to_mirror(getattr(v, name, None), ft, fa))
        return m
    if ttype in (TType.LIST, TType.SET):
        et, ea = _split(arg)
        return [to_mirror(x, et, ea) for x in v]
    if ttype == TType.MAP:
        (kt, ka), (vt, va) = _split(arg[0]), _split(arg[1])
        return {to_mirror(k, kt, ka): to_mirror(x, vt, va) for k, x in v.items()}
    return v


def apache_tjson_write(obj) -> bytes:
    buf = TMemoryBuffer()
    to_mirror(obj, TType.STRUCT, type(obj)).write(TJSONProtocol(buf))
    return buf.getvalue()


def apache_tjson_read(data: bytes, cls):
    m = mirror(cls)()
    m.read(TJSONProtocol(TMemoryBuffer(data)))
    return m


def canon(v, ttype=TType.STRUCT, arg=None):
    """A comparable form: NaN-safe, -0.0-exact, sets as sorted multisets; walks mirrors too."""
    if v is None:
        return None
    if ttype == TType.STRUCT:
        cls = arg if arg is not None else type(v)
        fields = _fields(cls)
        return (cls.__name__, tuple((fid, canon(getattr(v, name, None), ft, fa)) for fid, ft, name, fa, _ in fields))
    if ttype == TType.LIST:
        et, ea = _split(arg)
        return tuple(canon(x, et, ea) for x in v)
    if ttype == TType.SET:
        et, ea = _split(arg)
        return ("set", tuple(sorted((canon(x, et, ea) for x in v), key=repr)))
    if ttype == TType.MAP:
        (kt, ka), (vt, va) = _split(arg[0]), _split(arg[1])
        return ("map", tuple(sorted(((canon(k, kt, ka), canon(x, vt, va)) for k, x in v.items()), key=repr)))
    if ttype == TType.DOUBLE:
        return "nan" if math.isnan(v) else struct.pack("<d", v)
    if ttype == TType.BOOL:
        return bool(v)
    if ttype == TType.STRING:
        return v.decode() if isinstance(v, bytes) else v
    if ttype == TType.BINARY:
        return bytes(v)
    return int(v)


def thriftpy2_decode(buf: bytes, cls):
    return deserialize(cls(), buf, TCompactProtocolFactory())


# ---------------------------------------------------------------------------
# Hypothesis strategies from thrift_spec
# ---------------------------------------------------------------------------

DOUBLES = st.floats() | st.sampled_from(
    [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1e16, 1e17]
)
INT_BOUNDS = {TType.BYTE: 8, TType.I16: 16, TType.I32: 32, TType.I64: 64}


def _ints(bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return st.integers(lo, hi) | st.sampled_from([lo, hi, -1, 0, 1, 63, 64, -64, -65])


def value_strategy(ttype, arg, depth, text=None):
    text = text if text is not None else st.text(max_size=12)
    if ttype == TType.BOOL:
        return st.booleans()
    if ttype in INT_BOUNDS:
        if ttype == TType.I32 and arg is not None:  # enum
            return st.sampled_from(sorted(arg._VALUES_TO_NAMES)) | _ints(32)
        return _ints(INT_BOUNDS[ttype])
    if ttype == TType.DOUBLE:
        return DOUBLES
    if ttype == TType.STRING:
        return text
    if ttype == TType.BINARY:
        return st.binary(max_size=12)
    if ttype == TType.STRUCT:
        return struct_strategy(arg, depth + 1, text)
    if ttype in (TType.LIST, TType.SET):
        et, ea = _split(arg)
        size = 3 if depth > 2 else 18
        elems = value_strategy(et, ea, depth + 1, text)
        if ttype == TType.SET:
            return st.lists(elems, max_size=size, unique=True)
        return st.lists(elems, max_size=size)
    if ttype == TType.MAP:
        (kt, ka), (vt, va) = _split(arg[0]), _split(arg[1])
        keys = value_strategy(kt, ka, depth + 1, text)
        if kt == TType.DOUBLE:
            keys = st.floats(allow_nan=False)
        return st.dictionaries(keys, value_strategy(vt, va, depth + 1, text), max_size=3 if depth > 2 else 16)
    raise AssertionError(ttype)


def struct_strategy(cls, depth=0, text=None):
    fields = {}
    for _fid, ttype, name, arg, required in _fields(cls):
        if depth > 3 and not required:
            fields[name] = st.none()
            continue
        value = value_strategy(ttype, arg, depth, text)
        fields[name] = value if required else (st.none() | value)
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


ALL = struct_strategy(T.All)
ANY_STRUCT = st.sampled_from([T.All, T.Leaf, T.Node, T.Holder, T.V2]).flatmap(struct_strategy)


def sample_all():
    return T.All(
        b=False,
        by=-128,
        s=-32768,
        i=2**31 - 1,
        l=-(2**63),
        d=-0.0,
        str='héllo 😀 "q" \\ \n\t\x01\x7f\u2028',
        bin=b"\x00\xff\x80",
        leaf=T.Leaf(name="n", colors=[1, 7, 99]),
        li=list(range(-20, 20)),
        ss=["a", "b", ""],
        m={"k": T.Leaf(name="z"), "": T.Leaf(name="", n=None)},
        nest=[[{1: b"x", -2: b""}], [], [{}]],
        c=2,
        ts=-1,
        lb=[True, False, True] * 6,
        mc={1: [T.Leaf(name="q")], 7: []},
        ld=[math.inf, -math.inf, math.nan, 0.1],
        mbd={True: 1.5, False: -2.5},
        ls=[],
        sl=[2**63 - 1, -(2**63)],
        lbin=[b"", b"\x01" * 40],
        msb={-32768: -128, 32767: 127},
        node=T.Node(value=1, children=[T.Node(value=2, nxt=T.Node(value=3))]),
        leaves=[T.Leaf(name=str(i), n=i) for i in range(16)],
        b2=True,
        mds={0.5: "half", -1e300: "tiny"},
        far="far away",
    )


# ---------------------------------------------------------------------------
# Module surface
# ---------------------------------------------------------------------------


def test_module_surface():
    assert S.CodecError is CodecError
    assert issubclass(CodecError, ValueError)
    assert S.MAX_DEPTH == 64
    for name in ("decode", "encode", "skip", "read_string_field", "to_tjson"):
        assert callable(getattr(S, name))


def test_wide_and_sparse_structs():
    # > 48 fields (heap value array) and ids too sparse for a lookup table
    fields = "\n".join(f"  {i + 1}: {'string' if i % 3 else 'i32'} f{i}" for i in range(70))
    sparse = "  1: i32 a\n  9000: string b\n  -20000: i64 c\n  32767: list<i16> d\n  -32768: bool e"
    W = thriftpy2.load_fp(
        io.StringIO(f"struct Wide {{\n{fields}\n}}\nstruct Sparse {{\n{sparse}\n}}"),
        module_name="aioaccess_speedups_wide_thrift",
    )
    wide = W.Wide(**{f"f{i}": (str(i) if i % 3 else -i) for i in range(0, 70, 2)})
    buf = S.encode(wide)
    assert buf == apache_encode(wide)
    got, end = S.decode(buf, W.Wide)
    assert end == len(buf) and got == wide == thriftpy2_decode(buf, W.Wide)
    assert list(got.__dict__) == list(W.Wide().__dict__)
    sp = W.Sparse(a=1, b="b", c=-(2**40), d=[1, -1], e=False)
    buf = S.encode(sp)
    got, end = S.decode(buf, W.Sparse)
    assert end == len(buf) and got == sp == thriftpy2_decode(buf, W.Sparse)
    assert S.read_string_field(buf, 9000) == "b"
    assert S.to_tjson(buf, W.Sparse)[0] == (
        b'{"-32768":{"tf":0},"-20000":{"i64":-1099511627776},"1":{"i32":1},"9000":{"str":"b"},'
        b'"32767":{"lst":["i16",2,1,-1]}}'
    )


def test_keyword_arguments_and_errors():
    buf = S.encode(T.V1(a=1, c="c"))
    assert S.decode(buf=buf, cls=T.V1, offset=0)[0] == T.V1(a=1, c="c")
    assert S.skip(buf=buf, offset=0) == len(buf)
    assert S.read_string_field(buf=buf, field_id=3, offset=0) == "c"
    assert S.to_tjson(buf=buf, cls=T.V1, offset=0)[1] == len(buf)
    assert S.encode(obj=T.V1(a=1)) == S.encode(T.V1(a=1))
    with pytest.raises(TypeError):
        S.decode(buf)
    with pytest.raises(TypeError):
        S.decode(buf, T.V1, 0, 1)
    with pytest.raises(TypeError):
        S.decode(buf, T.V1, bogus=1)
    with pytest.raises(TypeError):
        S.decode(buf, T.V1, 0, offset=0)
    with pytest.raises(TypeError, match="thrift_spec"):
        S.decode(buf, int)
    with pytest.raises(TypeError, match="thrift_spec"):
        S.encode(object())
    with pytest.raises(TypeError):
        S.decode("not bytes", T.V1)
    for bad in (-1, len(buf) + 1):
        with pytest.raises(CodecError, match="offset"):
            S.decode(buf, T.V1, bad)
        with pytest.raises(CodecError, match="offset"):
            S.skip(buf, bad)


# ---------------------------------------------------------------------------
# encode: byte identity with Apache's accelerated encoder
# ---------------------------------------------------------------------------


def test_encode_sample_matches_apache_and_roundtrips():
    obj = sample_all()
    buf = S.encode(obj)
    assert buf == apache_encode(obj)
    ours, end = S.decode(buf, T.All)
    assert end == len(buf)
    ref = thriftpy2_decode(buf, T.All)
    assert repr(ours) == repr(ref)
    assert canon(ours) == canon(ref)
    assert S.encode(ours) == apache_encode(ours)  # None-for-default fields came back as defaults


@pytest.mark.parametrize("cls", FIXTURE_CLASSES)
def test_encode_defaults_match_apache(cls):
    obj = cls(name="x") if cls is T.Leaf else cls()
    assert S.encode(obj) == apache_encode(obj)


def test_encode_field_headers():
    # long-form field headers: first id > 15, gaps > 15, negative ids
    assert S.encode(T.All(b=None, str=None, ls=None, far="z")) == b"\x08\xd8\x04\x01z\x00"
    neg = T.Neg(a=-5, b="x", kids=[T.Neg(a=1)])
    assert S.encode(neg) == b"\x05\x05\tH\x01x\x19\x1c\x05\x05\x02\x00\x00"
    assert S.decode(S.encode(neg), T.Neg)[0] == thriftpy2_decode(S.encode(neg), T.Neg) == neg


def fh(fid, ctype, last=0):
    """A compact field header."""
    if 0 < fid - last <= 15:
        return bytes([(fid - last) << 4 | ctype])
    return bytes([ctype]) + _varint((fid << 1) ^ (fid >> 15))


def test_encode_bools_in_headers_and_lists():
    obj = T.All(b=True, b2=False, str=None, ls=None, lb=[True, False])
    # 1: bool in the header; 16: list<bool> of 2 with elements 1/2; 26: false in the header
    assert S.encode(obj) == b"\x11" + fh(16, 9, 1) + b"\x21\x01\x02" + fh(26, 2, 16) + b"\x00"
    assert S.encode(obj) == apache_encode(obj)
    assert S.decode(S.encode(obj), T.All)[0] == thriftpy2_decode(S.encode(obj), T.All)


def test_encode_accepts_sequences_sets_and_bytes_like():
    obj = T.All(ls=("a", "b"), ss={"x"}, sl=frozenset([3]), bin=bytearray(b"ab"), lbin=[memoryview(b"cd")], str=b"raw")
    plain = T.All(ls=["a", "b"], ss=["x"], sl=[3], bin=b"ab", lbin=[b"cd"], str="raw")
    assert S.encode(obj) == S.encode(plain) == apache_encode(plain)
    # generic iterables with a len()
    assert S.encode(T.All(li=range(20))) == S.encode(T.All(li=list(range(20))))
    # str in a binary field is UTF-8 encoded (like thriftpy2 and Apache)
    assert S.encode(T.All(bin="é")) == S.encode(T.All(bin="é".encode()))
    # ints for bools, ints for doubles, IntEnum-like ints
    assert S.encode(T.All(b=1, d=3)) == S.encode(T.All(b=True, d=3.0))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ANY_STRUCT)
def test_encode_matches_apache_hypothesis(obj):
    assert S.encode(obj) == apache_encode(obj)


def test_encode_unicode_matches_apache():
    for s in ["", "a", "é", "ÿ" * 300, "中文" * 50, "😀", "a\u0100\U0010ffff", "\x00", "mix é 中 😀 z" * 20]:
        obj = T.Leaf(name=s)
        assert S.encode(obj) == apache_encode(obj)
        assert S.decode(S.encode(obj), T.Leaf)[0].name == s


def test_encode_doubles_bit_exact():
    for d in [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, -1.5, 1.7976931348623157e308]:
        buf = S.encode(T.All(d=d))
        assert buf == apache_encode(T.All(d=d))
        back = S.decode(buf, T.All)[0].d
        assert struct.pack("<d", back) == struct.pack("<d", d)
    weird_nan = struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\xff")[0]
    assert struct.pack("<d", S.decode(S.encode(T.All(d=weird_nan)), T.All)[0].d) == struct.pack("<d", weird_nan)


# ---------------------------------------------------------------------------
# encode: errors name the field
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "exc", "pattern"),
    [
        (T.All(i="1"), TypeError, r"All\.i: expected int"),
        (T.All(i=1.0), TypeError, r"All\.i: expected int"),
        (T.All(d="1.0"), TypeError, r"All\.d: expected float"),
        (T.All(str=5), TypeError, r"All\.str: expected str"),
        (T.All(bin=5), TypeError, r"All\.bin: expected bytes"),
        (T.All(b="yes"), TypeError, r"All\.b: expected bool"),
        (T.All(lb=[True, "no"]), TypeError, r"All\.lb\[1\]: expected bool"),
        (T.All(li="123"), TypeError, r"All\.li: expected a list"),
        (T.All(li={1: 2}), TypeError, r"All\.li: expected a list"),
        (T.All(li=5), TypeError, r"All\.li: expected a list"),
        (T.All(m=[1]), TypeError, r"All\.m: expected a dict"),
        (T.All(m={"k": "v"}), TypeError, r"All\.m\['k'\]: expected Leaf"),
        (T.All(m={1: T.Leaf(name="v")}), TypeError, r"All\.m<key 1>: expected str"),
        (T.All(leaf=T.Node()), TypeError, r"All\.leaf: expected Leaf, got Node"),
        (T.All(leaves=[T.Leaf(name="a"), T.Leaf(name=7)]), TypeError, r"All\.leaves\[1\]\.name: expected str"),
        (T.All(by=128), CodecError, r"All\.by: 128 out of range for i8"),
        (T.All(s=-32769), CodecError, r"All\.s: .* out of range for i16"),
        (T.All(i=2**31), CodecError, r"All\.i: .* out of range for i32"),
        (T.All(l=2**63), CodecError, r"All\.l: .* out of range for i64"),
        (T.All(mc={2**40: []}), CodecError, r"All\.mc<key .*>: .* out of range for i32"),
        (T.All(leaf=T.Leaf(name=None)), CodecError, r"All\.leaf\.name: required field is None"),
        (T.Leaf(), CodecError, r"Leaf\.name: required field is None"),
        (T.All(str="bad \ud800 surrogate"), CodecError, r"All\.str: string contains a lone surrogate"),
        (T.All(d=10**400), CodecError, r"All\.d: cannot convert to float"),
    ],
)
def test_encode_errors(obj, exc, pattern):
    with pytest.raises(exc, match=pattern):
        S.encode(obj)


def test_encode_cycle_and_depth():
    node = T.Node(value=1)
    node.nxt = node
    with pytest.raises(CodecError, match="nesting too deep"):
        S.encode(node)
    deep = T.Node(value=0)
    for i in range(1, 64):
        deep = T.Node(value=i, nxt=deep)
    assert S.decode(S.encode(deep), T.Node)[0] == deep  # 64 levels: the limit
    with pytest.raises(CodecError, match="nesting too deep"):
        S.encode(T.Node(value=-1, nxt=deep))


def test_encode_container_mutation_and_lying_len():
    class Liar(list):
        def __len__(self):
            return 5

    class Shrinks:
        def __len__(self):
            return 3

        def __iter__(self):
            return iter([1])

    class Grows:
        def __len__(self):
            return 1

        def __iter__(self):
            return iter([1, 2, 3])

    with pytest.raises(CodecError, match="fewer items"):
        S.encode(T.All(li=Shrinks()))
    with pytest.raises(CodecError, match="more items"):
        S.encode(T.All(li=Grows()))
    # a list subclass is encoded by its real contents
    assert S.encode(T.All(li=Liar([1, 2]))) == S.encode(T.All(li=[1, 2]))

    victim: list = []

    class Shrinker:
        def __index__(self):
            victim.clear()
            return 1

    victim.extend(Shrinker() for _ in range(5))
    with pytest.raises(CodecError, match="changed size"):
        S.encode(T.All(li=victim))

    d: dict = {}

    class DictShrinker:
        def __index__(self):
            d.clear()
            return 1

    d[DictShrinker()] = []
    d.update({i: [T.Leaf(name="x")] for i in range(3)})
    with pytest.raises(CodecError, match="changed size"):
        S.encode(T.All(mc=d))


def test_encode_property_errors_propagate():
    class Weird(T.V1):
        @property
        def c(self):
            raise RuntimeError("boom")

        @c.setter
        def c(self, value):
            pass

    with pytest.raises(RuntimeError, match="boom"):
        S.encode(Weird(a=1))


# ---------------------------------------------------------------------------
# decode: equal to thriftpy2
# ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ANY_STRUCT)
def test_decode_matches_thriftpy2_hypothesis(obj):
    cls = type(obj)
    buf = S.encode(obj)
    ours, end = S.decode(buf, cls)
    assert end == len(buf)
    ref = thriftpy2_decode(buf, cls)
    assert repr(ours) == repr(ref)
    assert canon(ours) == canon(ref)
    assert list(ours.__dict__) == list(ref.__dict__)
    # skip / read_string_field agree with decode
    assert S.skip(buf) == len(buf)
    if cls is T.All:
        assert S.read_string_field(buf, 7) == (ours.str if obj.str is not None else None)
        assert S.read_string_field(buf, 300) == obj.far
    # with junk around it
    framed = b"\xff\x00junk" + buf + b"\x01\x02"
    ours2, end2 = S.decode(framed, cls, 6)
    assert end2 == 6 + len(buf) and repr(ours2) == repr(ours)
    assert S.skip(framed, 6) == end2
    assert S.to_tjson(framed, cls, 6) == S.to_tjson(buf, cls)[0:1] + (end2,)


def test_decode_object_semantics():
    buf = S.encode(sample_all())
    a, _ = S.decode(buf, T.All)
    b, _ = S.decode(buf, T.All)
    ref = thriftpy2_decode(buf, T.All)
    assert type(a) is T.All
    assert list(a.__dict__) == list(T.All().__dict__)
    a.d = b.d = ref.d = 1.0  # NaN-free for == and hash
    a.ld = b.ld = ref.ld = []
    assert a == b == ref and not (a != ref)
    assert hash(a) == hash(ref)
    # mutable defaults are not shared between decoded objects
    x, _ = S.decode(S.encode(T.All(ls=None)), T.All)
    y, _ = S.decode(S.encode(T.All(ls=None)), T.All)
    assert x.ls == ["a", "b"] and x.ls is not y.ls
    x.ls.append("c")
    assert y.ls == ["a", "b"] and T.All().ls == ["a", "b"]
    # attributes behave like normal ones
    a.new_attr = 1
    del a.new_attr
    # decoded trees hold no cycles: left out of the cyclic GC until gc_track puts them back
    assert not gc.is_tracked(a) and not gc.is_tracked(a.leaves) and not gc.is_tracked(a.m)
    assert S.gc_track(a) is a and gc.is_tracked(a) and gc.is_tracked(a.leaves) and gc.is_tracked(a.m)


def test_decode_exceptions_unions_empty():
    holder = T.Holder(oops=T.Oops(msg="bad", code=3), choice=T.Choice(b=7), all=T.All())
    buf = S.encode(holder)
    assert buf == apache_encode(holder)
    d, end = S.decode(buf, T.Holder)
    assert end == len(buf)
    assert isinstance(d.oops, T.Oops) and isinstance(d.oops, Exception)
    assert (d.oops.msg, d.oops.code, d.oops.args) == ("bad", 3, ())
    assert repr(d.oops) == repr(thriftpy2_decode(buf, T.Holder).oops)
    with pytest.raises(T.Oops):
        raise d.oops
    assert d.choice == T.Choice(b=7)
    assert S.decode(b"\x00", T.Empty) == (T.Empty(), 1)
    assert S.encode(T.Empty()) == b"\x00"


def test_decode_skips_unknown_and_mismatched_fields_like_thriftpy2():
    v2 = T.V2(a=1, extra=[{"x": 1.5}, {}], c="cc", flag=True, big=2**40, sub=T.V1(a=2, c="z"))
    buf = S.encode(v2)
    for cls in (T.V1, T.Mismatch, T.Empty):
        ours, end = S.decode(buf, cls)
        assert end == len(buf)
        assert repr(ours) == repr(thriftpy2_decode(buf, cls))
    # wire type of a known field differs: skipped, default kept
    assert S.decode(buf, T.Mismatch)[0] == T.Mismatch()
    assert S.to_tjson(buf, T.Mismatch) == (b"{}", len(buf))
    assert S.to_tjson(buf, T.V1) == (b'{"1":{"i32":1},"3":{"str":"cc"}}', len(buf))


def test_decode_bytes_like_inputs():
    obj = sample_all()
    buf = S.encode(obj)
    want = repr(S.decode(buf, T.All)[0])
    for b in (bytearray(buf), memoryview(buf), memoryview(b"..." + buf)[3:], memoryview(bytearray(buf))):
        assert repr(S.decode(b, T.All)[0]) == want
        assert S.skip(b) == len(buf)
        assert S.to_tjson(b, T.All) == S.to_tjson(buf, T.All)
        assert S.read_string_field(b, 300) == "far away"
    ba = bytearray(buf)
    S.decode(ba, T.All)
    ba.extend(b"more")  # the buffer export was released


def test_duplicate_fields_last_wins():
    buf = S.encode(T.V1(a=1, c="first"))[:-1] + b"\x08" + _varint(6) + b"\x06second\x00"  # field 3 again
    ours = S.decode(buf, T.V1)[0]
    assert repr(ours) == repr(thriftpy2_decode(buf, T.V1))
    assert ours.c == "second"
    assert S.read_string_field(buf, 3) == "first"  # first occurrence, documented


def test_bool_list_elements_and_field_types():
    # bool list elements: 1 is True, anything else False (Apache and thriftpy2 agree)
    buf = fh(16, 9) + b"\x31" + b"\x01\x02\x00" + b"\x00"  # field 16 lb: list<bool> [1, 2, 0]
    assert S.decode(buf, T.All)[0].lb == [True, False, False] == thriftpy2_decode(buf, T.All).lb
    # bool element type may be written as 1 or 2
    buf2 = fh(16, 9) + b"\x32" + b"\x01\x01\x02" + b"\x00"
    assert S.decode(buf2, T.All)[0].lb == [True, True, False]
    # a bool field's value is its header type
    assert S.decode(b"\x11\x00", T.All)[0].b is True
    assert S.decode(b"\x12\x00", T.All)[0].b is False


# ---------------------------------------------------------------------------
# to_tjson
# ---------------------------------------------------------------------------


def test_to_tjson_sample_read_by_apache():
    obj = sample_all()
    buf = S.encode(obj)
    j, end = S.to_tjson(buf, T.All)
    assert end == len(buf)
    back = apache_tjson_read(j, T.All)
    assert canon(back, TType.STRUCT, T.All) == canon(S.decode(buf, T.All)[0])
    assert b'"6":{"dbl":-0}' in j
    assert b'["dbl",4,"Infinity","-Infinity","NaN",0.10000000000000001]' in j
    assert b'"19":{"map":["tf","dbl",2,{"1":1.5,"0":-2.5}]}' in j
    assert b'"8":{"str":"AP+A"}' in j
    assert '"7":{"str":"héllo 😀 \\"q\\" \\\\ \\n\\t\\u0001\x7f\u2028"}'.encode() in j
    import json

    json.loads(j)  # standard JSON too (no struct map keys in this schema)


def _floats(v, ttype=TType.STRUCT, arg=None):
    """Every double inside a struct."""
    if v is None:
        return
    if ttype == TType.STRUCT:
        cls = arg if arg is not None else type(v)
        for _fid, ft, name, fa, _ in _fields(cls):
            yield from _floats(getattr(v, name, None), ft, fa)
    elif ttype in (TType.LIST, TType.SET):
        et, ea = _split(arg)
        for x in v:
            yield from _floats(x, et, ea)
    elif ttype == TType.MAP:
        (kt, ka), (vt, va) = _split(arg[0]), _split(arg[1])
        for k, x in v.items():
            yield from _floats(k, kt, ka)
            yield from _floats(x, vt, va)
    elif ttype == TType.DOUBLE:
        yield v


SAFE_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from('\b\f\n\r\t"\\/'), max_size=12)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from([T.All, T.Holder, T.V2, T.Node]).flatmap(lambda c: struct_strategy(c, 0, SAFE_TEXT)))
def test_to_tjson_matches_apache_writer_and_reader(obj):
    cls = type(obj)
    buf = S.encode(obj)
    j, end = S.to_tjson(buf, cls)
    assert end == len(buf)
    decoded = S.decode(buf, cls)[0]
    assert canon(apache_tjson_read(j, cls), TType.STRUCT, cls) == canon(decoded)
    # to_tjson transcodes the wire: it is what Apache's writer makes of the encoded object
    if all(math.isfinite(x) for x in _floats(obj)):
        assert j == apache_tjson_write(obj)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ALL)
def test_to_tjson_any_text_read_by_apache(obj):
    buf = S.encode(obj)
    j, _ = S.to_tjson(buf, T.All)
    assert canon(apache_tjson_read(j, T.All), TType.STRUCT, T.All) == canon(S.decode(buf, T.All)[0])


# ---------------------------------------------------------------------------
# Real Communications vs concrete-python
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def comms():
    from benchmarks.synthetic import make_communication

    return [
        make_communication("speedups-small", size=6000),
        make_communication("speedups-full", size=12000, full=True, seed=3),
        make_communication("speedups-big", size=60000, seed=1),
    ]


def test_communications_vs_concrete_python(comms):
    from concrete import Communication as ApacheCommunication
    from concrete.util import read_communication_from_buffer, write_communication_to_buffer

    from aioaccess.schema import Communication

    for comm in comms:
        buf = S.encode(comm)
        apache = read_communication_from_buffer(buf, add_references=False)
        assert write_communication_to_buffer(apache) == buf
        ours, end = S.decode(buf, Communication)
        assert end == len(buf) == S.skip(buf)
        assert ours == thriftpy2_decode(buf, Communication) == comm
        assert S.encode(ours) == buf
        assert S.read_string_field(buf, 1) == comm.id
        j, end = S.to_tjson(buf, Communication)
        assert end == len(buf)
        back = ApacheCommunication()
        back.read(TJSONProtocol(TMemoryBuffer(j)))
        assert back == apache
        out = TMemoryBuffer()
        apache.write(TJSONProtocol(out))
        assert out.getvalue() == j


def test_communication_set_vs_concrete_python(comms):
    from concrete.communication.ttypes import CommunicationSet as ApacheSet
    from concrete.util import thrift_factory

    from aioaccess.schema import CommunicationSet
    from benchmarks.synthetic import make_communication_set

    cs = make_communication_set(comms[:2])
    buf = S.encode(cs)
    apache = ApacheSet()
    apache.read(thrift_factory.factory.createProtocol(TMemoryBuffer(buf)))
    out = TMemoryBuffer()
    apache.write(thrift_factory.factory.createProtocol(out))
    assert out.getvalue() == buf
    assert S.decode(buf, CommunicationSet)[0] == cs


# ---------------------------------------------------------------------------
# Hostile input
# ---------------------------------------------------------------------------


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except CodecError as exc:
        return ("err", str(exc))


def _check_consistent(buf, cls):
    """All entry points either succeed or raise CodecError, and agree with each other."""
    d = _outcome(S.decode, buf, cls)
    s = _outcome(S.skip, buf)
    j = _outcome(S.to_tjson, buf, cls)
    _outcome(S.read_string_field, buf, 1)
    _outcome(S.read_string_field, buf, 7)
    if d[0] == "ok":
        assert s == ("ok", d[1][1]), (buf, d, s)
        assert j[0] == "ok" and j[1][1] == d[1][1]
        assert repr(d[1][0]) == repr(thriftpy2_decode(buf[: d[1][1]], cls)) or _has_nan(d[1][0])
    else:
        assert j[0] == "err", (buf, d, j)
    if s[0] == "err":
        assert d[0] == "err"
    return d


def _has_nan(obj):
    return "nan" in repr(obj)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(FIXTURE_CLASSES))
@example(b"", T.All)
@example(b"\x19" * 200, T.All)
@example(b"\x1c" * 200, T.All)
@example(b"\x3c" * 200, T.Node)
@example(b"\x29\x1c" * 100, T.Node)
def test_fuzz_random_bytes(buf, cls):
    _check_consistent(buf, cls)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ANY_STRUCT, st.data())
def test_fuzz_mutated_encodings(obj, data):
    buf = bytearray(S.encode(obj))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if not buf:
            break
        pos = data.draw(st.integers(0, len(buf) - 1))
        if op == "flip":
            buf[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set":
            buf[pos] = data.draw(st.sampled_from([0x00, 0x0F, 0x7F, 0x80, 0xF0, 0xFF, 0x19, 0x1C, 0xC0]))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buf[pos : pos + data.draw(st.integers(1, 8))]
        else:
            del buf[pos:]
    _check_consistent(bytes(buf), type(obj))


def test_every_truncation_fails():
    buf = S.encode(sample_all())
    for n in range(len(buf)):
        for fn in (lambda b: S.decode(b, T.All), S.skip, lambda b: S.to_tjson(b, T.All)):
            with pytest.raises(CodecError):
                fn(buf[:n])


@pytest.mark.parametrize(
    ("buf", "pattern"),
    [
        (b"\x16" + b"\xff" * 10 + b"\x01\x00", "varint longer than 10 bytes"),
        (b"\x56" + b"\xff" * 9 + b"\x01\x00", None),  # field 5 i64, 10 bytes, fits: -2**63  # i64 field, 11-byte varint
        (b"\x16" + b"\xff" * 9 + b"\x02\x00", "varint overflows 64 bits"),
        (b"\x15" + b"\xff" * 5 + b"\x00", "varint too long"),  # i32 varint of 6 bytes
        (b"\x15" + b"\xff\xff\xff\xff\x1f\x00", "varint out of range"),  # i32 varint > 32 bits
        (b"\x14\xff\xff\x7f\x00", "varint out of range"),  # i16 out of range
        (b"\x18\xff\xff\xff\xff\x0f", "varint out of range"),  # length >= 2**31 (negative i32)
        (b"\x18\xff\xff\xff\xff\x07abc", "truncated"),  # 2 GB string claim
        (b"\x19\xf8\xff\xff\xff\xff\x07", "list length exceeds"),  # 2**31-1 strings
        (b"\x19\xf7\xff\xff\xff\x01" + b"\x00" * 64, "list length exceeds"),  # 4M doubles
        (b"\x19\xf7\x14" + b"\x00" * 64, "truncated"),  # 20 doubles in 64 bytes
        (b"\x1b\xff\xff\xff\xff\x07\x88", "map length exceeds"),
        (b"\x1b\x05\x88" + b"\x00" * 9, "map length exceeds"),  # 5 entries need >= 10 bytes
        (b"\x1d\x00", "invalid field type"),
        (b"\x19\x1d\x00\x00", "invalid list element type"),
        (b"\x19\x10\x00", "invalid list element type"),  # STOP as element type, size 1
        (b"\x1b\x01\x0d\x00\x00", "invalid map key/value type"),
        (b"\x1b\x01\x80\x00\x00", "invalid map key/value type"),
        (b"\x0c\xff\xff\x7f\x00", "varint out of range"),  # field id beyond i16
    ],
)
def test_malformed_inputs(buf, pattern):
    if pattern is None:
        assert S.skip(buf) == len(buf)
        assert S.decode(buf, T.V2)[0].big == -(2**63)
        assert S.decode(buf, T.All)[0].l == -(2**63)
        return
    with pytest.raises(CodecError, match=pattern):
        S.skip(buf)
    with pytest.raises(CodecError):
        S.decode(buf, T.V2)
    with pytest.raises(CodecError):
        S.to_tjson(buf, T.V2)


def test_huge_claims_allocate_nothing():
    claims = [
        b"\x19\xf8\xff\xff\xff\xff\x07" + b"\x00" * 1000,  # list<string> of 2**31-1
        fh(10, 9) + b"\xf5\xff\xff\xff\xff\x07" + b"\x00" * 1000,  # All.li list<i32>
        fh(18, 9) + b"\xf7\xff\xff\xff\xff\x07" + b"\x00" * 1000,  # All.ld list<double>
        fh(12, 11) + b"\xff\xff\xff\xff\x07\x8c" + b"\x00" * 1000,  # All.m map
        b"\x18\xff\xff\xff\xff\x07" + b"a" * 1000,  # 2 GB string
    ]
    tracemalloc.start()
    try:
        for buf in claims:
            for fn in (lambda b: S.decode(b, T.All), S.skip, lambda b: S.to_tjson(b, T.All)):
                with pytest.raises(CodecError):
                    fn(buf)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024


def test_length_bounded_by_input_is_linear():
    # a list of 200k bools / empty structs is legal and decodes in linear time
    n = 200_000
    buf = fh(16, 9) + b"\xf1" + _varint(n) + b"\x01" * n + b"\x00"
    assert S.skip(buf) == len(buf)
    assert S.decode(buf, T.All)[0].lb == [True] * n
    buf = fh(25, 9) + b"\xfc" + _varint(n) + b"\x00" * n + b"\x00"  # leaves: n empty Leafs
    leaves = S.decode(buf, T.All)[0].leaves
    assert len(leaves) == n and leaves[0] == T.Leaf()


def _varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def test_depth_bombs():
    bombs = [
        (b"\x19" * 100_000, T.All),  # nested lists
        (b"\x1c" * 100_000, T.All),  # nested structs via unknown fields
        (b"\x3c" * 100_000, T.Node),  # Node.nxt chain
        (b"\x29\x1c" * 50_000, T.Node),  # Node.children lists
        (b"\x1b" + b"\x01\xbb" * 50_000, T.All),  # maps keyed by maps
    ]
    for buf, cls in bombs:
        for fn in (lambda b, c=cls: S.decode(b, c), S.skip, lambda b, c=cls: S.to_tjson(b, c)):
            with pytest.raises(CodecError, match="nesting too deep"):
                fn(buf)
    # exactly at the limit is fine: 64 nested structs
    ok = b"\x3c" * 63 + b"\x00" * 64
    assert S.skip(ok) == len(ok)
    node = S.decode(ok, T.Node)[0]
    depth = 0
    while node is not None:
        depth, node = depth + 1, node.nxt
    assert depth == 64
    with pytest.raises(CodecError, match="nesting too deep"):
        S.skip(b"\x3c" * 64 + b"\x00" * 65)


def test_invalid_utf8():
    bad = [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"a\xe2\x82", b"\x80"]
    for payload in bad:
        buf = b"\x78" + _varint(len(payload)) + payload + b"\x00"  # All.str (field 7)
        with pytest.raises(CodecError, match="UTF-8"):
            S.decode(buf, T.All)
        with pytest.raises(CodecError, match="UTF-8"):
            S.to_tjson(buf, T.All)
        with pytest.raises(CodecError, match="UTF-8"):
            S.read_string_field(buf, 7)
        assert S.skip(buf) == len(buf)  # structure only
        binbuf = b"\x88" + _varint(len(payload)) + payload + b"\x00"  # All.bin (field 8)
        assert S.decode(binbuf, T.All)[0].bin == payload
    with pytest.raises(CodecError, match="UTF-8") as info:
        S.decode(b"\x78\x01\xff\x00", T.All)
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


def test_container_element_type_mismatch():
    # All.li is list<i32> but the wire says list<string>
    buf = fh(10, 9) + b"\x18\x01a\x00"
    with pytest.raises(CodecError, match="does not match the schema"):
        S.decode(buf, T.All)
    with pytest.raises(CodecError, match="does not match the schema"):
        S.to_tjson(buf, T.All)
    assert S.skip(buf) == len(buf)
    # empty containers carry no element types worth checking
    assert S.decode(fh(10, 9) + b"\x08\x00", T.All)[0].li == []
    assert S.decode(b"\x1b\x00\x00", T.V2)[0].extra is None  # field 1 is i32 in V2: skipped


def test_read_string_field():
    buf = S.encode(T.All(str="s", far="f", b=True, d=1.0, leaf=T.Leaf(name="inner")))
    assert S.read_string_field(buf, 7) == "s"
    assert S.read_string_field(buf, 300) == "f"
    assert S.read_string_field(buf, 1) is None  # a bool field, not a string
    assert S.read_string_field(buf, 99) is None
    assert S.read_string_field(buf, 1, 0) is None
    with pytest.raises(CodecError):
        S.read_string_field(buf[:-3], 99)


# ---------------------------------------------------------------------------
# No leaks
# ---------------------------------------------------------------------------


def test_no_leaks():
    obj = sample_all()
    buf = S.encode(obj)
    bad = [buf[:-5], b"\x78\x01\xff\x00", b"\x19" * 200, buf[:40] + b"\xff" * 20]
    bad_objs = [T.All(i="x"), T.All(leaves=[T.Leaf(name="a"), T.Leaf()]), T.All(m={"k": 1})]

    def work():
        S.decode(buf, T.All)
        S.encode(obj)
        S.to_tjson(buf, T.All)
        S.skip(buf)
        S.read_string_field(buf, 300)
        for b in bad:
            for fn in (lambda x: S.decode(x, T.All), S.skip, lambda x: S.to_tjson(x, T.All)):
                try:
                    fn(b)
                except CodecError:
                    pass
        for o in bad_objs:
            try:
                S.encode(o)
            except (TypeError, CodecError):
                pass

    for _ in range(200):
        work()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(50):
            work()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            work()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 32 * 1024, after - before


def test_refcounts_of_shared_objects_are_stable():
    obj = sample_all()
    buf = S.encode(obj)
    watched = [T.All, T.Leaf, obj.str, obj.leaves[0], obj.leaf]
    before = [sys.getrefcount(w) for w in watched]
    for _ in range(500):
        S.decode(buf, T.All)
        S.encode(obj)
        try:
            S.decode(buf[:-1], T.All)
        except CodecError:
            pass
    gc.collect()
    after = [sys.getrefcount(w) for w in watched]
    assert [a - b for a, b in zip(after, before, strict=True)] == [0] * len(watched)


# ---------------------------------------------------------------------------
# Spec compilation
# ---------------------------------------------------------------------------


def test_struct_with_required_init_args_and_bad_specs():
    class Custom(T.V1):
        def __init__(self, a, c=None):  # cls() fails: defaults come from default_spec / None
            self.a, self.c = a, c

    got = S.decode(S.encode(Custom(1, "z")), Custom)[0]
    assert type(got) is Custom and (got.a, got.c) == (1, "z")

    class NoSpec:
        pass

    class BadSpec:
        thrift_spec = {1: (99, "x", False)}

    class BadShape:
        thrift_spec = {1: "nope"}

    class BadElem:
        thrift_spec = {1: (TType.LIST, "x", "nope", False)}

    for cls in (NoSpec, BadSpec, BadShape, BadElem):
        with pytest.raises(TypeError):
            S.decode(b"\x00", cls)
    # a failed compilation leaves nothing half-built behind
    with pytest.raises(TypeError):
        S.decode(b"\x00", BadSpec)


def test_hatch_build_helpers(monkeypatch):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    try:
        import hatch_build
    finally:
        sys.path.pop(0)
    monkeypatch.setenv("AIOACCESS_NO_EXTENSIONS", "1")
    assert hatch_build._disabled()
    monkeypatch.setenv("AIOACCESS_NO_EXTENSIONS", "0")
    assert not hatch_build._disabled()
    assert hatch_build._ext_filename().startswith("_speedups")
    assert hatch_build._ext_filename() == S.__file__.rsplit("/", 1)[1]
