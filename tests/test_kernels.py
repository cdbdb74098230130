import json
import os
import subprocess
import sys

import pytest

from recsae.kernels import SETTING_VARIABLE, kernel_environment

# Float32 products and exp through MKL, forward and backward, as NCF training runs them.
PROBE = """
import hashlib, json, torch
from recsae.kernels import kernel_report
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
x = torch.randn(500, 40, generator=g, requires_grad=True)
w, b = torch.randn(64, 40, generator=g), torch.randn(64, generator=g)
out = torch.nn.functional.linear(x, w, b)
out.relu().sum().backward()
digest = hashlib.sha1()
for t in (out, x.grad, torch.exp(torch.randn(10000, generator=g))):
    digest.update(t.detach().numpy().tobytes())
print(json.dumps({"digest": digest.hexdigest(), **kernel_report()}))
"""


def _probe(env: dict[str, str]) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "ATEN_CPU_CAPABILITY")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_kernel_environment_names_the_setting():
    env = kernel_environment("portable")
    assert env[SETTING_VARIABLE] == "portable" and env["MKL_CBWR"] == "COMPATIBLE"
    assert kernel_environment("native") == {SETTING_VARIABLE: "native"}
    with pytest.raises(ValueError, match="cpu_kernels.*'fast'"):
        kernel_environment("fast")


def test_portable_kernels_do_not_depend_on_the_instruction_set_mkl_dispatches_to():
    """MKL_ENABLE_INSTRUCTIONS=AVX2 makes MKL dispatch as on a CPU without AVX-512; under the
    portable setting the products and exp come out bit-identical either way."""
    portable = kernel_environment("portable")
    reference = _probe(portable)
    assert reference["cpu_kernels"] == "portable" and reference["mkl_cbwr"] == "COMPATIBLE"
    older_cpu = _probe({**portable, "MKL_ENABLE_INSTRUCTIONS": "AVX2"})
    assert older_cpu["digest"] == reference["digest"]
