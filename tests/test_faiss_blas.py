"""featkit's choice of faiss's OpenBLAS kernel: safe, overridable, and results unchanged.

The end-to-end checks run in subprocesses, because OpenBLAS picks its kernel once, when
faiss first loads it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from featkit import _faiss
from featkit._faiss import REQUIRED_FLAGS, plan_coretype, recommended_coretype

AVX512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
FLAGS, VENDOR = _faiss.cpu_flags_and_vendor()
BUNDLED = _faiss.bundled_openblas()
needs_bundled = pytest.mark.skipif(
    not (BUNDLED and sys.platform.startswith("linux") and platform.machine() == "x86_64"),
    reason="needs x86-64 Linux and faiss-cpu's bundled OpenBLAS",
)
# The best kernel this CPU runs whatever its vendor (the auto rule is patched to pick it).
FAST = next((k for k in ("SkylakeX", "Haswell") if REQUIRED_FLAGS[k] <= FLAGS), None)

# Imports faiss through featkit (optionally with the auto rule's inputs patched), then
# reports the kernel faiss's OpenBLAS runs and numpy's, the environment, and search results.
CHILD = r"""
import ctypes, json, logging, os, sys
import numpy as np
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
from featkit import _faiss
patch = json.loads(sys.argv[2])
if patch.get("detected"):
    _faiss.detected_coretype = lambda lib: (patch["detected"], "patched")
if patch.get("recommended"):
    _faiss.recommended_coretype = lambda flags, vendor: patch["recommended"]
if patch.get("faiss_first"):
    import faiss  # noqa: F401
faiss = _faiss.import_faiss()
from threadpoolctl import threadpool_info
arch = {}
for lib in threadpool_info():
    if lib["internal_api"] == "openblas":
        path = lib["filepath"]
        owner = "faiss" if "faiss_cpu.libs" in path else os.path.basename(path)
        arch[owner] = lib.get("architecture")
libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
rng = np.random.default_rng(0)
xb = rng.standard_normal((3000, 96), dtype=np.float32)
xq = rng.standard_normal((300, 96), dtype=np.float32)  # >= 20 queries: faiss uses BLAS
out = {}
for name, cls in (("l2", faiss.IndexFlatL2), ("ip", faiss.IndexFlatIP)):
    index = cls(96)
    index.add(xb)
    out[name + "_D"], out[name + "_I"] = index.search(xq, 10)
np.savez(sys.argv[1], **out)
print(json.dumps({
    "arch": arch,
    "env": os.environ.get("OPENBLAS_CORETYPE"),
    "c_env": libc.getenv(b"OPENBLAS_CORETYPE") and libc.getenv(b"OPENBLAS_CORETYPE").decode(),
    "info": _faiss.faiss_blas_info(),
}))
"""

SCENARIOS = {
    "opt_out": ({"FEATKIT_OPENBLAS_CORETYPE": "0"}, {}),
    "default": ({}, {}),
    "prescott": ({"FEATKIT_OPENBLAS_CORETYPE": "Prescott"}, {}),
    "auto_fix": ({}, {"detected": "Prescott", "recommended": FAST}),
    "auto_fix_opted_out": ({"FEATKIT_OPENBLAS_CORETYPE": "off"}, {"detected": "Prescott"}),
    "user": (
        {"OPENBLAS_CORETYPE": FAST or "Prescott", "FEATKIT_OPENBLAS_CORETYPE": "Prescott"},
        {"detected": "Prescott", "recommended": FAST},
    ),
    "too_late": ({}, {"faiss_first": True, "detected": "Prescott", "recommended": FAST}),
}


def _run(name: str, tmp: Path) -> dict:
    env_vars, patch = SCENARIOS[name]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENBLAS_CORETYPE", "FEATKIT_OPENBLAS_CORETYPE")
    }
    env.update(env_vars, OMP_NUM_THREADS="1")
    out = tmp / f"{name}.npz"
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(out), json.dumps(patch)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    report["log"] = run.stderr
    with np.load(out) as data:
        report["results"] = {k: data[k] for k in data.files}
    return report


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    if FAST is None:
        pytest.skip("the CPU has neither AVX2+FMA nor AVX-512")
    tmp = tmp_path_factory.mktemp("blas")
    with ThreadPoolExecutor(2) as pool:  # each child spends most of its time importing
        reports = pool.map(lambda name: (name, _run(name, tmp)), SCENARIOS)
        return dict(reports)


def _assert_same_results(a: dict, b: dict) -> None:
    """Equal up to float rounding: a neighbour may differ only where two distances tie."""
    for metric in ("l2", "ip"):
        da, ia = a[f"{metric}_D"], a[f"{metric}_I"]
        db, ib = b[f"{metric}_D"], b[f"{metric}_I"]
        np.testing.assert_allclose(da, db, rtol=1e-5, atol=1e-4)
        differ = ia != ib
        assert differ.mean() < 0.001, f"{metric}: {differ.sum()} neighbours differ"
        for q, r in zip(*np.nonzero(differ), strict=True):
            row = da[q]
            assert np.isclose(row, da[q, r], rtol=1e-5, atol=1e-4).sum() > 1  # a tie


@needs_bundled
def test_results_equal_with_any_kernel(runs):
    natural = runs["opt_out"]
    for name, kernel in (("auto_fix", FAST), ("prescott", "Prescott")):
        # The override really took effect, so the comparison means something.
        assert runs[name]["arch"]["faiss"] == kernel
        _assert_same_results(natural["results"], runs[name]["results"])


@needs_bundled
def test_auto_rule_sets_the_kernel_only_while_faiss_loads(runs):
    fixed, natural = runs["auto_fix"], runs["opt_out"]
    assert fixed["info"]["coretype"] == FAST
    assert fixed["arch"]["faiss"] == FAST
    # Restored for child processes and BLAS libraries loaded later (C level too).
    assert fixed["env"] is None and fixed["c_env"] is None
    # numpy's (and the other already loaded) OpenBLAS keep their own detection.
    others = {k: v for k, v in natural["arch"].items() if k != "faiss"}
    assert {k: v for k, v in fixed["arch"].items() if k != "faiss"} == others


@needs_bundled
def test_opt_out(runs):
    natural = runs["opt_out"]["arch"]["faiss"]
    out = runs["auto_fix_opted_out"]
    assert out["info"]["coretype"] is None and "disabled" in out["info"]["reason"]
    assert out["arch"]["faiss"] == natural
    if natural != FAST:
        assert runs["auto_fix"]["arch"]["faiss"] != natural


@needs_bundled
def test_never_overrides_the_users_setting(runs):
    user = runs["user"]
    assert user["arch"]["faiss"] == FAST  # theirs, not featkit's Prescott
    assert user["env"] == FAST and user["c_env"] == FAST
    assert user["info"]["coretype"] is None and "set by the user" in user["info"]["reason"]


@needs_bundled
def test_too_late_once_faiss_is_imported(runs):
    late = runs["too_late"]
    assert late["arch"]["faiss"] == runs["opt_out"]["arch"]["faiss"]
    assert late["info"]["coretype"] is None
    assert "too late" in late["log"]


@needs_bundled
def test_default_on_this_machine_and_probe_agree_with_the_loaded_library(runs):
    # The probe says what faiss's OpenBLAS detects when left alone.
    detected, config = _faiss.detected_coretype(BUNDLED)
    assert detected == runs["opt_out"]["arch"]["faiss"]
    assert "OpenBLAS" in config
    # With the default rule, faiss runs the recommended kernel or an as-good detection.
    default = runs["default"]
    best = recommended_coretype(FLAGS, VENDOR)
    chosen = default["info"].get("coretype")
    assert chosen in (None, best)
    if chosen is None and best is not None:
        assert _faiss.TIERS[default["arch"]["faiss"].lower()] >= _faiss.TIERS[best.lower()]


def test_chosen_kernel_is_supported_by_the_cpu():
    intel_512 = AVX512 | {"avx", "avx2", "fma"}
    assert recommended_coretype(intel_512, "GenuineIntel") == "SkylakeX"
    assert recommended_coretype({"avx", "avx2", "fma", "avx512f"}, "GenuineIntel") == "Haswell"
    assert recommended_coretype({"avx", "avx2"}, "GenuineIntel") == "Sandybridge"  # no FMA
    assert recommended_coretype({"sse3"}, "GenuineIntel") is None
    assert recommended_coretype(intel_512, "AuthenticAMD") == "Zen"  # measured: not slower
    assert recommended_coretype({"avx"}, "AuthenticAMD") is None
    assert recommended_coretype(intel_512, "CentaurHauls") is None
    for flags in (intel_512, {"avx", "avx2", "fma"}, {"avx"}, set(FLAGS)):
        for vendor in ("GenuineIntel", "AuthenticAMD", VENDOR):
            kernel = recommended_coretype(frozenset(flags), vendor)
            assert kernel is None or REQUIRED_FLAGS[kernel] <= set(flags)


def test_plan_rules():
    lib = Path("/site-packages/faiss_cpu.libs/libopenblas.so")
    intel = frozenset(AVX512 | {"avx", "avx2", "fma"})
    plan = {"library": lib, "flags": intel, "vendor": "GenuineIntel"}
    assert plan_coretype(environ={}, detected="Prescott", **plan)[0] == "SkylakeX"
    assert plan_coretype(environ={}, detected="Haswell", **plan)[0] == "SkylakeX"
    assert plan_coretype(environ={}, detected="SkylakeX", **plan)[0] is None
    assert plan_coretype(environ={}, detected="Cooperlake", **plan)[0] is None
    assert plan_coretype(environ={}, detected="SomeFutureCore", **plan)[0] is None
    assert plan_coretype(environ={}, detected=None, **plan)[0] is None  # probe failed
    amd = {**plan, "vendor": "AuthenticAMD"}
    assert plan_coretype(environ={}, detected="Zen", **amd)[0] is None
    assert plan_coretype(environ={}, detected="Barcelona", **amd)[0] == "Zen"  # Zen 5
    user = {"OPENBLAS_CORETYPE": "Haswell", "FEATKIT_OPENBLAS_CORETYPE": "SkylakeX"}
    assert plan_coretype(environ=user, detected="Prescott", **plan)[0] is None
    for off in ("0", "off", "False", "none"):
        env = {"FEATKIT_OPENBLAS_CORETYPE": off}
        assert plan_coretype(environ=env, detected="Prescott", **plan)[0] is None
    env = {"FEATKIT_OPENBLAS_CORETYPE": "Haswell"}
    assert plan_coretype(environ=env, detected="SkylakeX", **plan)[0] == "Haswell"
    # An explicit name OpenBLAS does not know (it would mean Prescott), or that the CPU
    # cannot run, is ignored.
    env = {"FEATKIT_OPENBLAS_CORETYPE": "Skylake"}
    assert plan_coretype(environ=env, detected="Prescott", **plan)[0] is None
    env = {"FEATKIT_OPENBLAS_CORETYPE": "SkylakeX"}
    avx2 = {**plan, "flags": frozenset({"avx", "avx2", "fma"})}
    assert plan_coretype(environ=env, detected="Prescott", **avx2)[0] is None
    assert plan_coretype(environ=env, detected="Prescott", **plan)[0] == "SkylakeX"
    no_lib = {**plan, "library": None}
    assert plan_coretype(environ={}, detected="Prescott", **no_lib)[0] is None
