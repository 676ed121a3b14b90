"""What this machine computes with: the CPU, its bfloat16 kernels, torch's threads, GPUs.

bfloat16 features differ in their last bits between CPU kinds (AMX and AVX512-BF16
kernels round differently) and between GPU models, so extractors that use them record
which kind computed a row (their ``config``, hence the cache key), and every result records
the machine it came from (its provenance), for numbers compared across machines.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from typing import Any

__all__ = [
    "bf16_kernel_name",
    "cpu_bf16_kernels",
    "cpu_model",
    "describe_machine",
    "describe_runtime",
]

#: CPU flags of native bfloat16, best first (AMX machines list both), and their names.
_BF16_KERNELS = {"amx_bf16": "AMX", "avx512_bf16": "AVX512-BF16"}


@functools.cache
def _cpu_info() -> tuple[str, frozenset[str]]:
    """(model name, flags) from /proc/cpuinfo; empty where there is none (macOS, Windows)."""
    model, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = frozenset(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model, flags


def cpu_model() -> str:
    """The CPU's model name ("AMD EPYC 9R14", "Intel(R) Xeon(R) Platinum 8488C"...)."""
    return _cpu_info()[0] or platform.processor() or platform.machine() or "unknown CPU"


def cpu_bf16_kernels() -> str | None:
    """ "amx_bf16" or "avx512_bf16" where the CPU computes bfloat16 natively, else None.

    (torch's own check only asks for AVX-512 BW/VL/DQ, where bfloat16 is emulated, slowly.)
    """
    flags = _cpu_info()[1]
    return next((flag for flag in _BF16_KERNELS if flag in flags), None)


def bf16_kernel_name(flag: str | None) -> str | None:
    """ "AMX" for "amx_bf16", "AVX512-BF16" for "avx512_bf16", None for None."""
    return _BF16_KERNELS.get(flag) if flag else None


def describe_machine() -> dict[str, Any]:
    """The CPU, its bfloat16 kernels, cores, torch's threads and the GPUs, for provenance.

    torch is described only when something imported it: a run of handcrafted extractors
    does not pay for importing it.
    """
    machine: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_bf16": cpu_bf16_kernels(),
        "cores": os.cpu_count(),
        "platform": platform.platform(terse=True),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        machine["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            machine["gpus"] = [
                torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
            ]
    return machine


def describe_runtime(runtime: dict[str, Any], machine: dict[str, Any] | None = None) -> str:
    """One line for an extractor's ``config["runtime"]``: the precision and what ran it.

    ``machine`` is :func:`describe_machine` of the machine that ran it (default: this one).

    >>> describe_runtime({"device": "cpu", "precision": "bf16", "cpu_bf16": "amx_bf16",
    ...                   "batch_size": 8})  # doctest: +SKIP
    'bf16 on the CPU (Intel Xeon ..., AMX kernels), forward passes of 8 images'
    """
    device = runtime.get("device", "cpu")
    if device == "cpu":
        kernels = bf16_kernel_name(runtime.get("cpu_bf16"))
        cpu = (machine or {}).get("cpu") or cpu_model()
        where = f"the CPU ({cpu}" + (f", {kernels} kernels)" if kernels else ")")
    elif "gpu" in runtime:
        where = f"{device} ({runtime['gpu']})"
    else:
        where = str(device)
    text = f"{runtime.get('precision', 'fp32')} on {where}"
    if "batch_size" in runtime:
        text += f", forward passes of {runtime['batch_size']} images"
    return text
