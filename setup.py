"""Build: compile the Cython core in _native/ into supervisor._native.

The wire schemas in proto/ are copied into the package so that an installed supd and
its tests read the same machine-readable definitions that proto/PROTOCOL.md describes.
"""

import os
import shutil

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithProto(build_py):
    def run(self) -> None:
        super().run()
        target = os.path.join(self.build_lib, "supervisor", "proto")
        os.makedirs(target, exist_ok=True)
        for name in os.listdir(os.path.join(HERE, "proto")):
            if name.endswith(".json"):
                shutil.copy2(os.path.join(HERE, "proto", name), target)


debug = os.environ.get("SUPERVISOR_DEBUG_BUILD") == "1"
extensions = [
    Extension(
        "supervisor._native",
        sources=["_native/_native.pyx"],
        include_dirs=["_native"],
        define_macros=[("_GNU_SOURCE", "1")],
        extra_compile_args=["-O2", "-Wall", "-Wno-unused-function"]
        + (["-g", "-O0"] if debug else []),
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "embedsignature": True,
        },
        include_path=["_native"],
    ),
    cmdclass={"build_py": BuildPyWithProto},
)
