"""Hatchling build hook: compile ``aioaccess/codec/_speedups.c``.

Used by ``pip install .`` / ``python -m build`` (wheel) and by editable
installs.  When the extension compiles, the wheel is tagged platform-specific
and carries the ``.so``; when there is no compiler (or compilation fails) the
hook warns and the wheel stays pure Python (``aioaccess.codec`` then falls back
to the pure-Python codec).  Set ``AIOACCESS_NO_EXTENSIONS=1`` to skip the
compilation entirely.

Development without pip::

    python hatch_build.py --inplace     # builds aioaccess/codec/_speedups*.so

Compilation uses setuptools' ``build_ext`` when setuptools is importable and
otherwise calls the C compiler directly with ``sysconfig``'s flags.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent
EXT_NAME = "aioaccess.codec._speedups"
EXT_SOURCE = Path("aioaccess") / "codec" / "_speedups.c"
if sys.platform == "win32":
    EXTRA_CFLAGS = ["/O2"]
else:
    EXTRA_CFLAGS = ["-O3", "-fno-strict-aliasing", "-Wno-declaration-after-statement"]


def _ext_filename() -> str:
    return "_speedups" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")


def _disabled() -> bool:
    return os.environ.get("AIOACCESS_NO_EXTENSIONS", "").strip().lower() not in ("", "0", "false", "no")


def _build_with_setuptools(out_dir: Path, tmp_dir: Path) -> Path:
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    ext = Extension(EXT_NAME, [str(EXT_SOURCE)], extra_compile_args=EXTRA_CFLAGS)
    dist = Distribution({"name": "aioaccess-speedups", "ext_modules": [ext]})
    dist.script_args = []
    cmd = build_ext(dist)
    cmd.build_lib = str(out_dir)
    cmd.build_temp = str(tmp_dir)
    cmd.inplace = False
    cmd.ensure_finalized()
    cmd.run()
    built = Path(cmd.get_ext_fullpath(EXT_NAME))
    if not built.is_absolute():
        built = Path.cwd() / built
    return built


def _build_with_compiler(out_dir: Path, tmp_dir: Path) -> Path:
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    cflags = shlex.split(sysconfig.get_config_var("CFLAGS") or "")
    ccshared = shlex.split(sysconfig.get_config_var("CCSHARED") or "-fPIC")
    ldshared = shlex.split(sysconfig.get_config_var("LDSHARED") or (" ".join(cc) + " -shared"))
    include = sysconfig.get_paths()["include"]
    obj = tmp_dir / "_speedups.o"
    target = out_dir / "aioaccess" / "codec" / _ext_filename()
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [*cc, *cflags, *ccshared, *EXTRA_CFLAGS, f"-I{include}", "-c", str(EXT_SOURCE), "-o", str(obj)],
        check=True,
        cwd=ROOT,
    )
    subprocess.run([*ldshared, str(obj), "-o", str(target)], check=True, cwd=ROOT)
    return target


def build_extension(out_dir: Path) -> Path:
    """Compile the extension; return the path of the built shared object."""
    out_dir = Path(out_dir)
    old_cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with tempfile.TemporaryDirectory(prefix="aioaccess-build-") as tmp:
            try:
                import setuptools  # noqa: F401
            except ImportError:
                return _build_with_compiler(out_dir, Path(tmp))
            return _build_with_setuptools(out_dir, Path(tmp))
    finally:
        os.chdir(old_cwd)


def build_inplace() -> Path:
    """Compile and copy the extension next to its source (for development)."""
    with tempfile.TemporaryDirectory(prefix="aioaccess-ext-") as out:
        built = build_extension(Path(out))
        dest = ROOT / "aioaccess" / "codec" / _ext_filename()
        tmp_dest = dest.with_suffix(dest.suffix + ".tmp")
        shutil.copy2(built, tmp_dest)
        os.replace(tmp_dest, dest)  # atomic: running processes keep the old inode
        return dest


try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # running as a script without hatchling installed
    BuildHookInterface = object  # type: ignore[assignment,misc]


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[misc,valid-type]
    """Compile the C codec into the wheel; silently degrade to pure Python."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or _disabled():
            return
        try:
            if version == "editable":
                # editable wheels import from the source tree: put the .so there
                built = build_inplace()
                build_data["pure_python"] = False
                build_data["infer_tag"] = True
                return
            out = Path(self.directory) / "aioaccess-ext-build"
            if out.exists():
                shutil.rmtree(out)
            built = build_extension(out)
        except Exception as exc:  # no compiler, missing headers, compile error...
            warnings.warn(
                f"aioaccess: C extension not built ({exc!r}); using the pure-Python codec",
                stacklevel=1,
            )
            self.app.display_warning(f"aioaccess: C extension not built: {exc!r}")
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        build_data["force_include"][str(built)] = f"aioaccess/codec/{built.name}"

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        out = Path(self.directory) / "aioaccess-ext-build"
        if out.exists():
            shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[1:] != ["--inplace"]:
        print(f"usage: {argv[0]} --inplace", file=sys.stderr)
        return 2
    if _disabled():
        print("AIOACCESS_NO_EXTENSIONS is set; nothing built")
        return 0
    print(build_inplace())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
