"""featkit.hardware: the CPU's bfloat16 kernels and the machine record results carry."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from featkit import hardware


def _flags_by_grep() -> set[str]:
    """The flags `grep -o 'amx_bf16\\|avx512_bf16' /proc/cpuinfo` finds (the issue's test)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(re.findall(r"\b(amx_bf16|avx512_bf16)\b", text))


def test_bf16_kernels_are_the_cpu_flags_amx_first():
    found = _flags_by_grep()
    expected = "amx_bf16" if "amx_bf16" in found else ("avx512_bf16" if found else None)
    assert hardware.cpu_bf16_kernels() == expected


@pytest.mark.parametrize(
    ("flags", "kernels"),
    [
        ({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, "amx_bf16"),  # Sapphire Rapids
        ({"avx512f", "avx512_bf16"}, "avx512_bf16"),  # Zen 4
        ({"avx512f", "avx2"}, None),  # bf16 would be emulated
    ],
)
def test_each_cpu_kind_is_named(monkeypatch, flags, kernels):
    monkeypatch.setattr(hardware, "_cpu_info", lambda: ("Some CPU", frozenset(flags)))
    assert hardware.cpu_bf16_kernels() == kernels
    machine = hardware.describe_machine()
    assert machine["cpu"] == "Some CPU" and machine["cpu_bf16"] == kernels
    runtime = {"device": "cpu", "precision": "bf16", "cpu_bf16": kernels, "batch_size": 8}
    line = hardware.describe_runtime(runtime)
    assert line.startswith("bf16 on the CPU (Some CPU")
    assert line.endswith("forward passes of 8 images")
    if kernels is None:
        assert "kernels" not in line
    else:
        assert f"{hardware.bf16_kernel_name(kernels)} kernels)" in line


def test_the_runtime_names_the_machine_that_ran_it():
    runtime = {"device": "cpu", "precision": "bf16", "cpu_bf16": "amx_bf16", "batch_size": 8}
    there = {"cpu": "Intel(R) Xeon(R) Platinum 8488C", "cpu_bf16": "amx_bf16"}
    line = hardware.describe_runtime(runtime, there)
    assert line == (
        "bf16 on the CPU (Intel(R) Xeon(R) Platinum 8488C, AMX kernels), forward passes of 8 images"
    )
    gpu = {"device": "cuda", "precision": "bf16", "gpu": "NVIDIA H100", "batch_size": 32}
    assert (
        hardware.describe_runtime(gpu) == "bf16 on cuda (NVIDIA H100), forward passes of 32 images"
    )


def test_describing_the_machine_does_not_import_torch():
    code = (
        "import sys, featkit.hardware as h; m = h.describe_machine(); "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'torch_threads' not in m and m['cores'] >= 1; print(m['cpu'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == hardware.cpu_model()
