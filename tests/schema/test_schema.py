"""aioaccess.schema must describe exactly the types concrete-python 4.18.2 generates.

concrete's generated modules are walked programmatically; every enum, struct, exception and
service found there is normalized, together with ours, to plain tuples and compared.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import types
from typing import Any

import pytest
import thriftpy2.thrift as tp

from aioaccess import schema

thrift_ttype = pytest.importorskip("thrift.Thrift").TType

# concrete-python modules mirrored by aioaccess.schema (package name == schema file name).
MODULES = (
    "uuid",
    "spans",
    "email",
    "twitter",
    "nitf",
    "audio",
    "metadata",
    "language",
    "property",
    "linking",
    "structure",
    "entities",
    "situations",
    "clustering",
    "communication",
    "services",
    "access",
)

# concrete module name -> its generated service modules.
SERVICE_MODULES = {
    "services": ("Service",),
    "access": ("FetchCommunicationService", "StoreCommunicationService"),
}

# concrete's generated code records enum-typed fields as plain i32; these are the known ones.
ENUM_FIELDS = {("structure", "Tokenization", "kind"): ("structure", "TokenizationKind")}

_CONCRETE_SCALARS = {
    thrift_ttype.BOOL: "bool",
    thrift_ttype.BYTE: "byte",
    thrift_ttype.I16: "i16",
    thrift_ttype.I32: "i32",
    thrift_ttype.I64: "i64",
    thrift_ttype.DOUBLE: "double",
}
_OUR_SCALARS = {
    tp.TType.BOOL: "bool",
    tp.TType.BYTE: "byte",
    tp.TType.I16: "i16",
    tp.TType.I32: "i32",
    tp.TType.I64: "i64",
    tp.TType.DOUBLE: "double",
    tp.TType.STRING: "string",
    tp.TType.BINARY: "binary",
}


def _concrete_module(cls: type) -> str:
    # "concrete.uuid.ttypes" -> "uuid"
    return cls.__module__.split(".")[1]


def _our_module(cls: type) -> str:
    # "aioaccess_uuid_thrift" -> "uuid"
    name = cls.__module__
    assert name.startswith("aioaccess_") and name.endswith("_thrift"), name
    return name[len("aioaccess_") : -len("_thrift")]


def _concrete_type(ttype: int, args: Any) -> tuple:
    if ttype == thrift_ttype.STRING:
        return ("binary",) if args == "BINARY" else ("string",)
    if ttype == thrift_ttype.STRUCT:
        return ("struct", _concrete_module(args[0]), args[0].__name__)
    if ttype in (thrift_ttype.LIST, thrift_ttype.SET):
        kind = "list" if ttype == thrift_ttype.LIST else "set"
        return (kind, _concrete_type(args[0], args[1]))
    if ttype == thrift_ttype.MAP:
        return ("map", _concrete_type(args[0], args[1]), _concrete_type(args[2], args[3]))
    return (_CONCRETE_SCALARS[ttype],)


def _our_type(spec: Any) -> tuple:
    """Normalize a thriftpy2 type spec: a TType, or (TType, extra)."""
    ttype, extra = (spec, None) if isinstance(spec, int) else spec
    if ttype == tp.TType.STRUCT:
        return ("struct", _our_module(extra), extra.__name__)
    if ttype in (tp.TType.LIST, tp.TType.SET):
        return ("list" if ttype == tp.TType.LIST else "set", _our_type(extra))
    if ttype == tp.TType.MAP:
        return ("map", _our_type(extra[0]), _our_type(extra[1]))
    return (_OUR_SCALARS[ttype],)


def _concrete_required(cls: type, name: str) -> bool:
    return f"Required field {name} is unset" in inspect.getsource(cls.validate)


def concrete_fields(cls: type) -> list[tuple]:
    """(id, name, type, required, default) for each field of a concrete-generated class."""
    out = []
    for entry in cls.thrift_spec:
        if entry is None:
            continue
        fid, ttype, name, args, default = entry
        out.append((fid, name, _concrete_type(ttype, args), _concrete_required(cls, name), default))
    return out


def our_fields(cls: type) -> list[tuple]:
    """(id, name, type, required, default) for each field of a thriftpy2 class, in declaration order."""
    defaults = dict(cls.default_spec)
    out = []
    for fid, entry in cls.thrift_spec.items():
        if len(entry) == 3:
            ttype, name, required = entry
            spec: Any = ttype
        else:
            ttype, name, extra, required = entry
            spec = (ttype, extra)
        if ttype == tp.TType.I32 and extra_is_enum(spec):
            spec = tp.TType.I32
        out.append((fid, name, _our_type(spec), required, defaults.get(name)))
    return out


def extra_is_enum(spec: Any) -> bool:
    return isinstance(spec, tuple) and isinstance(spec[1], type) and hasattr(spec[1], "_VALUES_TO_NAMES")


def _concrete_types(module: str) -> dict[str, type]:
    ttypes = importlib.import_module(f"concrete.{module}.ttypes")
    return {
        name: obj for name, obj in vars(ttypes).items() if inspect.isclass(obj) and obj.__module__ == ttypes.__name__
    }


def _our_types(module: str) -> dict[str, type]:
    mod = schema.modules[module]
    return {
        name: obj
        for name, obj in vars(mod).items()
        if inspect.isclass(obj)
        and obj.__module__ == f"aioaccess_{module}_thrift"
        and (hasattr(obj, "_VALUES_TO_NAMES") or hasattr(obj, "thrift_spec"))
    }


def _type_cases() -> list[tuple[str, str]]:
    return [(m, name) for m in MODULES for name in _concrete_types(m)]


def _service_cases() -> list[tuple[str, str]]:
    return [(m, svc) for m, svcs in SERVICE_MODULES.items() for svc in svcs]


@pytest.mark.parametrize("module", MODULES)
def test_same_type_names(module: str) -> None:
    assert sorted(_our_types(module)) == sorted(_concrete_types(module))


def test_no_extra_modules() -> None:
    assert tuple(schema.MODULE_NAMES) == MODULES
    assert set(schema.modules) == set(MODULES)


@pytest.mark.parametrize(("module", "name"), _type_cases())
def test_type_matches(module: str, name: str) -> None:
    theirs = _concrete_types(module)[name]
    ours = getattr(schema.modules[module], name)
    if hasattr(theirs, "_VALUES_TO_NAMES"):
        assert ours._VALUES_TO_NAMES == theirs._VALUES_TO_NAMES
        assert ours._NAMES_TO_VALUES == theirs._NAMES_TO_VALUES
        for value, label in theirs._VALUES_TO_NAMES.items():
            assert getattr(ours, label) == value
        return
    assert issubclass(ours, Exception) == issubclass(theirs, Exception)
    if issubclass(theirs, Exception):
        assert issubclass(ours, tp.TException)
    assert our_fields(ours) == concrete_fields(theirs)


@pytest.mark.parametrize(("module", "name"), _type_cases())
def test_fields_declared_in_id_order(module: str, name: str) -> None:
    ours = getattr(schema.modules[module], name)
    if hasattr(ours, "thrift_spec"):
        ids = list(ours.thrift_spec)
        assert ids == sorted(ids)


@pytest.mark.parametrize(("module", "name"), _type_cases())
def test_default_instance_matches(module: str, name: str) -> None:
    theirs = _concrete_types(module)[name]
    if hasattr(theirs, "_VALUES_TO_NAMES"):
        return
    ours = getattr(schema.modules[module], name)
    names = [entry[2] for entry in theirs.thrift_spec if entry is not None]
    a, b = theirs(), ours()
    assert {n: getattr(b, n) for n in names} == {n: getattr(a, n) for n in names}


def test_enum_fields() -> None:
    found = {}
    for module in MODULES:
        for name, cls in _our_types(module).items():
            for entry in getattr(cls, "thrift_spec", {}).values():
                if len(entry) == 4 and entry[0] == tp.TType.I32:
                    enum = entry[2]
                    found[(module, name, entry[1])] = (_our_module(enum), enum.__name__)
    assert found == ENUM_FIELDS


def _our_service_method(svc: type, method: str) -> dict[str, Any]:
    args = getattr(svc, f"{method}_args")
    result = getattr(svc, f"{method}_result")
    # thriftpy2 puts "success" (id 0) after the declared exceptions; a result carries one field,
    # so the declaration order of result fields never shows on the wire.
    return {"args": our_fields(args), "result": sorted(our_fields(result)), "oneway": getattr(result, "oneway", False)}


def _concrete_service_method(svc: types.ModuleType, method: str) -> dict[str, Any]:
    args = getattr(svc, f"{method}_args")
    result = getattr(svc, f"{method}_result")
    return {"args": concrete_fields(args), "result": concrete_fields(result), "oneway": False}


def _concrete_service_methods(svc: types.ModuleType) -> dict[str, types.ModuleType]:
    """Every method of a concrete service (inherited ones too) -> module defining it."""
    out: dict[str, types.ModuleType] = {}
    for iface in reversed(svc.Iface.__mro__):
        if iface is object:
            continue
        owner = importlib.import_module(iface.__module__)
        for name, value in vars(iface).items():
            if not name.startswith("_") and callable(value):
                out[name] = owner
    return out


@pytest.mark.parametrize(("module", "service"), _service_cases())
def test_service_matches(module: str, service: str) -> None:
    theirs = importlib.import_module(f"concrete.{module}.{service}")
    ours = getattr(schema.modules[module], service)
    methods = _concrete_service_methods(theirs)
    assert sorted(ours.thrift_services) == sorted(methods)
    for method, owner in methods.items():
        assert _our_service_method(ours, method) == _concrete_service_method(owner, method), method
    # Inheritance: concrete's Iface bases live in "concrete.<module>.<Service>".
    their_bases = [tuple(b.__module__.split(".")[1:]) for b in theirs.Iface.__bases__ if b is not object]
    our_bases = [(_our_module(b), b.__name__) for b in ours.__bases__ if b is not object]
    assert our_bases == their_bases


def test_service_inheritance() -> None:
    assert schema.FetchCommunicationService.__bases__ == (schema.Service,)
    assert schema.StoreCommunicationService.__bases__ == (schema.Service,)
    assert set(schema.Service.thrift_services) == {"about", "alive"}
    assert set(schema.FetchCommunicationService.thrift_services) == {
        "about",
        "alive",
        "fetch",
        "getCommunicationIDs",
        "getCommunicationCount",
    }
    assert set(schema.StoreCommunicationService.thrift_services) == {"about", "alive", "store"}


def _struct_refs(cls: type) -> list[type]:
    """Every class referenced (at any depth) by the field specs of cls."""
    found: list[type] = []

    def walk(spec: Any) -> None:
        if isinstance(spec, type):
            found.append(spec)
        elif isinstance(spec, tuple):
            for part in spec:
                walk(part)

    for entry in cls.thrift_spec.values():
        walk(entry[2:-1])
    return found


def test_single_class_per_type() -> None:
    """A type referenced through an include is the very class exported by its own module."""
    assert schema.FetchResult.thrift_spec[1][2][1] is schema.Communication
    assert schema.access.communication is schema.communication
    assert schema.communication.uuid is schema.uuid
    checked = 0
    for module in MODULES:
        for cls in _our_types(module).values():
            if not hasattr(cls, "thrift_spec"):
                continue
            for ref in _struct_refs(cls):
                assert ref is getattr(schema.modules[_our_module(ref)], ref.__name__)
                checked += 1
    for svc in (schema.Service, schema.FetchCommunicationService, schema.StoreCommunicationService):
        for method in svc.thrift_services:
            for part in ("args", "result"):
                for ref in _struct_refs(getattr(svc, f"{method}_{part}")):
                    assert ref is getattr(schema.modules[_our_module(ref)], ref.__name__)
                    checked += 1
    assert checked > 100


def test_reexports() -> None:
    exported = set(schema.__all__)
    for module in MODULES:
        assert module in exported
        assert getattr(schema, module) is schema.modules[module]
        for name, cls in _our_types(module).items():
            assert name in exported, name
            assert getattr(schema, name) is cls
    for svcs in SERVICE_MODULES.values():
        for svc in svcs:
            assert svc in exported
    for name in schema.__all__:
        assert hasattr(schema, name), name


def test_reload_gives_same_classes() -> None:
    again = schema._load("communication")
    assert again is schema.communication
    assert again.Communication is schema.Communication


def test_pickle_roundtrip() -> None:
    comm = schema.Communication(
        id="c",
        uuid=schema.UUID(uuidString="u"),
        type="t",
        metadata=schema.AnnotationMetadata(tool="x", timestamp=1),
    )
    assert pickle.loads(pickle.dumps(comm)) == comm
