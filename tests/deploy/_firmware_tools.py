"""Compilers and emulators the firmware tests need: found on PATH, else installed with apt-get
(CI images are Debian/Ubuntu), else the test is skipped with the reason and the install command."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

APT_PACKAGES = {
    "gcc": ["gcc"],
    "g++": ["g++"],
    "arm-none-eabi-gcc": ["gcc-arm-none-eabi"],
    "arm-none-eabi-g++": ["gcc-arm-none-eabi", "libstdc++-arm-none-eabi-newlib"],
    "arm-none-eabi-nm": ["binutils-arm-none-eabi"],
    "arm-none-eabi-readelf": ["binutils-arm-none-eabi"],
    "arm-none-eabi-objdump": ["binutils-arm-none-eabi"],
    "qemu-system-arm": ["qemu-system-arm"],
    "cmake": ["cmake"],
}


@functools.lru_cache(maxsize=None)
def _install(packages: tuple[str, ...]) -> str:
    """'' on success, else why apt-get could not install ``packages``."""
    apt = shutil.which("apt-get")
    if apt is None:
        return "apt-get is unavailable"
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if prefix is None:
        return "not root and no sudo"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = [*prefix, apt, "install", "-y", "-q", "--no-install-recommends", *packages]
    if subprocess.run(cmd, capture_output=True, env=env, timeout=900).returncode != 0:
        subprocess.run([*prefix, apt, "update", "-q"], capture_output=True, env=env, timeout=900)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            return f"apt-get install failed: {proc.stderr.strip()[-300:]}"
    return ""


def require_tool(name: str) -> str:
    """Path of tool ``name``; installs its Debian package when missing, skips when that cannot be done."""
    path = shutil.which(name)
    if path:
        return path
    packages = tuple(APT_PACKAGES.get(name, [name]))
    why = _install(packages)
    path = shutil.which(name)
    if path:
        return path
    if why in ("apt-get is unavailable", "not root and no sudo"):
        pytest.skip(f"{name} is missing and {why}: install {' '.join(packages)}")
    pytest.fail(f"{name} is missing and could not be installed ({why or 'the packages did not provide it'})")


#: Cortex-M FPU instructions that multiply and add with one rounding (VFMA/VFMS/VFNMA/VFNMS fuse; GCC emits
#: them for a product followed by an add). VMLA and its kin round twice, as plain code does.
FUSED = ("vfma", "vfms", "vfnma", "vfnms")


def fused_instructions(obj: str) -> list[str]:
    """The fused multiply-add instructions in object file ``obj`` (arm-none-eabi-objdump -d)."""
    listing = subprocess.run([require_tool("arm-none-eabi-objdump"), "-d", obj], capture_output=True, text=True,
                             check=True).stdout
    return [line.strip() for line in listing.splitlines() if any(f"\t{op}." in line for op in FUSED)]
