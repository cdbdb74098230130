"""CPU kernel settings that make a job's floating-point results independent of the machine.

torch's CPU build chooses kernels at run time. ATen picks its vectorised kernels by the CPU's
instruction set (ATEN_CPU_CAPABILITY: default, avx2, avx512), and MKL, which runs every float32
matrix product (``nn.Linear`` forward and backward, ``x @ W.T``) and the vectorised ``exp``,
dispatches on the CPU as well. Different kernels round differently, so the same seed gives results
that differ in the last bits between machines, and a chaotic training run (NCF: hundreds of Adam
steps through an MLP, early stopping on a ranking metric) turns those bits into different models.

``cpu_kernels`` (config key) names one setting that every workflow job applies through its
environment:

* ``portable`` (default): ATen's AVX2 kernels (on any x86-64 CPU with AVX2, Intel or AMD) and
  MKL's conditional numerical reproducibility in its ``COMPATIBLE`` branch (MKL_CBWR), the one
  branch that gives the same results on every x86-64 CPU. CUBLAS_WORKSPACE_CONFIG makes cuBLAS
  deterministic for ``torch.use_deterministic_algorithms`` on GPUs.
* ``native``: whatever the machine picks (fastest; results can differ between machines).

Results are still the same only for the same thread count (``threads_per_job``), torch version
and device type; ``kernel_report`` records all of these in every result file.
"""

from __future__ import annotations

import os

CPU_KERNELS: dict[str, dict[str, str]] = {
    "portable": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_CBWR": "COMPATIBLE",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    },
    "native": {},
}
SETTING_VARIABLE = "RECSAE_CPU_KERNELS"


def kernel_environment(setting: str) -> dict[str, str]:
    """The environment variables of ``setting`` (a key of CPU_KERNELS), plus RECSAE_CPU_KERNELS.

    They take effect only in a process that starts with them (torch reads them once, at start-up),
    so the workflow puts them into the environment of every job it launches.
    """
    if setting not in CPU_KERNELS:
        raise ValueError(
            f"cpu_kernels: unknown setting {setting!r}; choose one of {list(CPU_KERNELS)}"
        )
    return {SETTING_VARIABLE: setting, **CPU_KERNELS[setting]}


def kernel_report() -> dict:
    """What this process computes with: the requested setting, the ATen kernels in use, MKL's
    reproducibility branch, torch threads and the torch version."""
    import torch

    return {
        "cpu_kernels": os.environ.get(SETTING_VARIABLE, "native"),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr": os.environ.get("MKL_CBWR"),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }


def check_kernels() -> str | None:
    """A warning when the ``portable`` setting is requested but ATen could not use AVX2 kernels
    (a CPU without AVX2, or not x86-64): results then differ from those of AVX2 machines."""
    import torch

    if os.environ.get(SETTING_VARIABLE) != "portable":
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == CPU_KERNELS["portable"]["ATEN_CPU_CAPABILITY"].upper():
        return None
    return (
        f"cpu_kernels 'portable' asks for AVX2 kernels, but torch runs {capability} kernels on "
        "this CPU; its results can differ from those of other machines"
    )
