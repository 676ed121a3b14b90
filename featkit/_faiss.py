"""Import faiss with an OpenBLAS kernel that suits this CPU.

faiss-cpu's Linux wheels bundle their own OpenBLAS (0.3.15 in faiss-cpu 1.15), which picks
its kernels from the CPU model once, when it is loaded. Its tables predate recent CPUs: on
Intel models it does not know (Sapphire Rapids, Alder Lake, ...) it falls back to SSE3
'Prescott' kernels and on AMD families after Zen 4 to 'Barcelona', which makes faiss's
exact search 3.5-8x slower, silently. ``OPENBLAS_CORETYPE`` set before the library is
loaded picks the kernels instead. Every featkit use of faiss goes through
:func:`import_faiss`, which does that safely:

1. Only on x86-64 Linux, only for the OpenBLAS bundled in the ``faiss_cpu.libs`` folder of
   the wheel, only when faiss is not imported yet (otherwise it is too late: a debug log
   says so) and never when the user set ``OPENBLAS_CORETYPE`` (theirs always wins).
2. The kernel this CPU runs, from the flags in ``/proc/cpuinfo``: on Intel SkylakeX
   (avx512f/cd/bw/dq/vl), else Haswell (avx2 and fma), else Sandybridge (avx); on AMD and
   Hygon Zen (avx2 and fma). AMD gets Zen even with AVX-512: on a Zen 4 EPYC, SkylakeX
   kernels were measured no faster than Zen ones for faiss flat search (d=128 and d=1280,
   single thread, within 5%), and Zen is what OpenBLAS itself picks for Zen 1-4.
3. The bundled OpenBLAS is asked, in a short subprocess (about 20 ms, once per process),
   which kernel it would detect; the variable is set only when that one is of a lower
   instruction-set tier (SSE < AVX < AVX2 < AVX-512) than the kernel of step 2. So a CPU
   that OpenBLAS detects well, or a newer faiss wheel with a newer OpenBLAS, is left alone.
4. The variable is set, faiss imported, and the environment restored at once: OpenBLAS
   reads it only while loading, so child processes and BLAS libraries loaded later
   (scipy's, torch's) see the user's environment, not ours. numpy (and its OpenBLAS) is
   imported first, so it is never affected either.

Results do not depend on the kernel beyond float rounding (verified in the tests).

``FEATKIT_OPENBLAS_CORETYPE`` controls it: ``auto`` (default, the rule above), ``0`` /
``off`` / ``no`` / ``false`` / ``none`` (never touch the kernel), or an OpenBLAS core name
(``Haswell``, ``SkylakeX``, ``Zen``, ...) to use for faiss's OpenBLAS only (ignored with a
warning when OpenBLAS does not know the name or the CPU flags lack what the kernel needs).
``OPENBLAS_CORETYPE`` itself, when set, always wins (and applies to every OpenBLAS in the
process). :func:`faiss_blas_info` tells what was done.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import platform
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["faiss_blas_info", "import_faiss", "recommended_coretype"]

logger = logging.getLogger(__name__)

OPT_OUT = ("0", "off", "no", "false", "none")

#: Instruction-set tier of OpenBLAS's x86 core names (lower case): SSE 1, AVX 2, AVX2 3,
#: AVX-512 4. Names not listed are treated as unknown and never overridden.
TIERS: dict[str, int] = {
    **dict.fromkeys(
        "katmai coppermine northwood prescott banias atom core2 penryn dunnington nehalem "
        "athlon opteron opteron_sse3 barcelona nano bobcat".split(),
        1,
    ),
    **dict.fromkeys("sandybridge bulldozer piledriver steamroller".split(), 2),
    **dict.fromkeys("haswell excavator zen".split(), 3),
    **dict.fromkeys("skylakex cooperlake sapphirerapids".split(), 4),
}

#: CPU flags each kernel that :func:`recommended_coretype` may choose needs.
REQUIRED_FLAGS: dict[str, frozenset[str]] = {
    "SkylakeX": frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}),
    "Haswell": frozenset({"avx2", "fma"}),
    "Zen": frozenset({"avx2", "fma"}),
    "Sandybridge": frozenset({"avx"}),
}

_UNSET: Any = object()
_LOCK = threading.Lock()
_INFO: dict[str, Any] = {}

# Asks a copy of the bundled OpenBLAS which kernel it detects: its dependencies (libgomp,
# libgfortran, ...) sit beside it without an rpath, so they are loaded first, in any order
# that works.
_PROBE = r"""
import ctypes, os, sys
target = sys.argv[1]
folder = os.path.dirname(target)
pending = [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if ".so" in n]
pending = [p for p in pending if p != target]
while pending:
    left = []
    for path in pending:
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            left.append(path)
    if len(left) == len(pending):
        break
    pending = left
lib = ctypes.CDLL(target)
lib.openblas_get_corename.restype = ctypes.c_char_p
lib.openblas_get_config.restype = ctypes.c_char_p
print(lib.openblas_get_corename().decode())
print(lib.openblas_get_config().decode())
"""


def recommended_coretype(flags: set[str] | frozenset[str], vendor: str) -> str | None:
    """The OpenBLAS kernel (a name 0.3.15 knows) for a CPU with these ``/proc/cpuinfo``
    flags and vendor id (``GenuineIntel``, ``AuthenticAMD``, ...), or None."""
    if vendor in ("AuthenticAMD", "HygonGenuine"):
        # Zen even with AVX-512: measured as fast as SkylakeX on Zen 4 (module docstring).
        return "Zen" if REQUIRED_FLAGS["Zen"] <= flags else None
    if vendor == "GenuineIntel":
        for name in ("SkylakeX", "Haswell", "Sandybridge"):
            if REQUIRED_FLAGS[name] <= flags:
                return name
    return None


def cpu_flags_and_vendor() -> tuple[frozenset[str], str]:
    """Flags and vendor id of the first CPU in ``/proc/cpuinfo`` (empty when unreadable)."""
    flags: frozenset[str] = frozenset()
    vendor = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id" and not vendor:
                    vendor = value.strip()
                elif key == "flags":
                    flags = frozenset(value.split())
                    break  # the first processor's block is enough
    except OSError:
        pass
    return flags, vendor


def bundled_openblas() -> Path | None:
    """The OpenBLAS shipped inside the faiss-cpu wheel (``faiss_cpu.libs``), found without
    importing faiss; None when faiss uses another BLAS (conda, MKL, a source build)."""
    try:
        spec = importlib.util.find_spec("faiss")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    libs = Path(spec.origin).resolve().parent.parent / "faiss_cpu.libs"
    found = sorted(libs.glob("libopenblas*.so*")) if libs.is_dir() else []
    return found[0] if found else None


def detected_coretype(library: Path) -> tuple[str | None, str]:
    """The kernel ``library`` detects on this CPU, and its config line, asked in a
    subprocess (so this process can still choose); (None, why) when the probe fails."""
    if not sys.executable or getattr(sys, "frozen", False):
        return None, "probe failed: no Python executable to run it"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    try:
        run = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _PROBE, str(library)],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"probe failed: {exc}"
    lines = run.stdout.splitlines()
    if run.returncode != 0 or not lines:
        return None, f"probe failed: {run.stderr.strip()[-200:]}"
    return lines[0].strip(), (lines[1].strip() if len(lines) > 1 else "")


def plan_coretype(
    *,
    environ: dict[str, str] | None = None,
    flags: frozenset[str] | None = None,
    vendor: str | None = None,
    library: Any = _UNSET,
    detected: Any = _UNSET,
) -> tuple[str | None, dict[str, Any]]:
    """The OPENBLAS_CORETYPE to set while faiss loads (None: leave it), and a record of why.

    Every input defaults to this machine and process (``library``: the bundled OpenBLAS or
    None; ``detected``: the core name it detects, asked by a probe); tests pass their own.
    """
    env = os.environ if environ is None else environ
    info: dict[str, Any] = {"coretype": None}
    choice = env.get("FEATKIT_OPENBLAS_CORETYPE", "auto").strip()
    if "OPENBLAS_CORETYPE" in env:
        info["reason"] = f"OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']!r} is set by the user"
        return None, info
    if choice.lower() in OPT_OUT:
        info["reason"] = f"disabled by FEATKIT_OPENBLAS_CORETYPE={choice!r}"
        return None, info
    if not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")):
        info["reason"] = "not x86-64 Linux"
        return None, info
    lib = bundled_openblas() if library is _UNSET else library
    if not lib:
        info["reason"] = "faiss does not bundle its own OpenBLAS"
        return None, info
    info["openblas"] = str(lib)
    if flags is None or vendor is None:
        real_flags, real_vendor = cpu_flags_and_vendor()
        flags = real_flags if flags is None else flags
        vendor = real_vendor if vendor is None else vendor
    if choice.lower() != "auto":
        return _explicit(choice, flags, info)
    best = recommended_coretype(flags, vendor)
    info["recommended"] = best
    if best is None:
        info["reason"] = f"no kernel recommended for this CPU ({vendor or 'unknown vendor'})"
        return None, info
    if detected is _UNSET:
        detected, config = detected_coretype(Path(lib))
        info["config"] = config
    info["detected"] = detected
    if not detected:
        info["reason"] = "could not ask OpenBLAS what it detects: left alone"
        return None, info
    tier = TIERS.get(str(detected).lower())
    if tier is None or tier >= TIERS[best.lower()]:
        info["reason"] = f"OpenBLAS detects {detected}, as good as {best} here"
        return None, info
    info.update(coretype=best, reason=f"OpenBLAS detects {detected}; {best} suits this CPU")
    return best, info


def _explicit(
    choice: str, flags: frozenset[str], info: dict[str, Any]
) -> tuple[str | None, dict[str, Any]]:
    """FEATKIT_OPENBLAS_CORETYPE naming a kernel: used unless OpenBLAS would not know it
    (it would fall back to Prescott) or the CPU flags show the CPU cannot run it."""
    known = {k.lower(): k for k in REQUIRED_FLAGS}
    needs = REQUIRED_FLAGS.get(known.get(choice.lower(), ""), frozenset())
    if choice.lower() not in TIERS:
        problem = f"OpenBLAS knows no core {choice!r} (it would fall back to Prescott)"
    elif flags and not needs <= flags:
        problem = f"this CPU lacks {sorted(needs - flags)} for {choice!r}"
    else:
        info.update(coretype=choice, reason=f"FEATKIT_OPENBLAS_CORETYPE={choice!r}")
        return choice, info
    logger.warning("FEATKIT_OPENBLAS_CORETYPE ignored: %s", problem)
    info["reason"] = f"FEATKIT_OPENBLAS_CORETYPE={choice!r} ignored: {problem}"
    return None, info


def import_faiss() -> ModuleType:
    """The faiss module, imported (the first time) with a suitable OpenBLAS kernel."""
    module = sys.modules.get("faiss")
    if module is not None and _INFO:
        return module
    with _LOCK:
        module = sys.modules.get("faiss")
        if module is not None:
            if not _INFO:
                _INFO.update(coretype=None, reason="faiss was imported before featkit")
                logger.debug(
                    "faiss was already imported: too late to choose its OpenBLAS kernel "
                    "(import featkit's import_faiss first, or set OPENBLAS_CORETYPE)"
                )
            return module
        import numpy  # noqa: F401  (numpy's own OpenBLAS loads before the variable is set)

        coretype, info = plan_coretype()
        logger.debug("faiss OpenBLAS kernel: %s", info.get("reason"))
        if coretype is not None:
            os.environ["OPENBLAS_CORETYPE"] = coretype
        try:
            module = importlib.import_module("faiss")
        except ImportError as exc:
            raise ImportError(
                f"faiss is needed here but cannot be imported ({exc}); "
                "install it with `pip install faiss-cpu`"
            ) from exc
        finally:
            if coretype is not None:
                # OpenBLAS read it while loading; later libraries and children must not.
                os.environ.pop("OPENBLAS_CORETYPE", None)
        _INFO.update(info)
        return module


def faiss_blas_info() -> dict[str, Any]:
    """What :func:`import_faiss` did: the kernel set (``coretype``, None when left alone),
    why, and the bundled library's detected kernel when it was asked; empty before."""
    return dict(_INFO)
