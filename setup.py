"""The optional C extension; everything else about the package is in pyproject.toml.

``embedlog._speedups`` (src/embedlog/_speedups.c) speeds up the producer's per-record
path.  It is optional: where it cannot be compiled (no C compiler or Python headers) the
install goes on without it and embedlog runs its pure-Python code, which gives the same
results (``EMBEDLOG_PURE_PYTHON=1`` chooses that code even when the extension is built).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("embedlog._speedups", ["src/embedlog/_speedups.c"], optional=True,
                             extra_compile_args=["-O2"])])
