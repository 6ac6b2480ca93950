# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPUs for serving containers: what a declaration may ask for, the Docker device request it becomes, and the checks.

Standard library only. A model (or an isolated version) declares `gpus`:
``all``, a count, or a list of device indexes or UUIDs, as ``docker run
--gpus`` takes them. The plan checks it against the hosts that serve it
(``serving_gpu_host``); serving_apply checks the host's Docker engine before
any container changes, since without the NVIDIA Container Toolkit the engine
refuses every device request at start.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

# Docker's GPU device requests go to the driver that the NVIDIA Container
# Toolkit registers: the engine finds this hook on its PATH, or the toolkit
# registers an "nvidia" runtime.
HOOK = "nvidia-container-runtime-hook"
HOOK_PATH = ("/usr/bin", "/usr/local/bin", "/usr/sbin", "/bin")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_device(device):
    """A device index (0, 1, ...) or a UUID such as GPU-3a2f... (nvidia-smi -L)."""
    if isinstance(device, str):
        return bool(device) and device.strip() == device and "," not in device
    return _is_int(device) and device >= 0


def problems(value, where):
    """Why `gpus` is not something docker run --gpus takes."""
    if value == "all" or (_is_int(value) and value >= 1):
        return []
    if isinstance(value, list) and value and all(_is_device(d) for d in value):
        if len(set(str(d) for d in value)) < len(value):
            return ["%s: %r names a device twice" % (where, value)]
        return []
    return ["%s: %r is not valid; use all, a number of GPUs (1 or more), or a list of device indexes or UUIDs such "
            "as [0, 1] or [GPU-3a2f...]" % (where, value)]


def device_request(value):
    """The Docker SDK's device request (DeviceRequest keyword arguments) for a checked `gpus`."""
    request = {"driver": "", "count": 0, "device_ids": [], "capabilities": [["gpu"]], "options": {}}
    if value == "all":
        request["count"] = -1
    elif isinstance(value, list):
        request["device_ids"] = [str(d) for d in value]
    else:
        request["count"] = value
    return request


def describe(value):
    """`gpus` as a message names it: all, 2, or 0, 1."""
    if isinstance(value, list):
        return ", ".join(str(d) for d in value)
    return str(value)


def is_gpu_image(image):
    """TF Serving's GPU builds are the tags ending in -gpu (2.19.0-gpu, latest-gpu, 2.19.0-devel-gpu)."""
    tag = (image or "").split("@")[0].rsplit("/", 1)[-1].partition(":")[2]
    return tag.endswith("-gpu")


def host_findings(units, gpu_host):
    """(problems, warnings) of one host's units: GPUs on a host that has none, one device pinned twice, images."""
    found, warnings, pinned = [], [], {}
    for unit in units:
        gpus = unit.get("gpus")
        if gpus is not None and not gpu_host:
            found.append("%s: gpus (%s) on a host without GPUs (serving_gpu_host: false); serve the model on GPU "
                         "hosts (hosts: a group of them) or set serving_gpu_host: true where they are"
                         % (unit["name"], describe(gpus)))
        for device in gpus if isinstance(gpus, list) else []:
            pinned.setdefault(str(device), []).append(unit)
        if gpus is not None and not is_gpu_image(unit.get("image")):
            warnings.append("%s: gpus (%s) with image %s, which is not a -gpu build: TF Serving's CPU build does "
                            "not use them" % (unit["name"], describe(gpus), unit.get("image")))
        elif gpus is None and is_gpu_image(unit.get("image")):
            warnings.append("%s: image %s without gpus: the container gets no GPU and serves on the CPU; declare "
                            "gpus for it" % (unit["name"], unit.get("image")))
    for device, sharing in sorted(pinned.items()):
        if len(sharing) > 1 and not all(u.get("gpus_shared") for u in sharing):
            found.append("GPU %s is pinned by %s; give each its own device, or set gpus_shared: true on their models "
                         "if they may share it" % (device, " and ".join(u["name"] for u in sharing)))
    return found, warnings


def engine_problem(units, runtimes, path=None):
    """Why this host's Docker engine cannot give the units their GPUs; None when no unit asks or it can.

    `runtimes`: the engine's runtimes (docker info's Runtimes); `path`: where
    to look for the toolkit's hook (the engine's PATH).
    """
    asking = [u for u in units if u.get("gpus") is not None]
    if not asking or "nvidia" in (runtimes or {}):
        return None
    if any(os.path.exists(os.path.join(d, HOOK)) for d in (path or HOOK_PATH)):
        return None
    return ("%s ask%s for GPUs, and this host's Docker engine has no GPU support: neither the nvidia runtime nor %s "
            "is installed. Install the NVIDIA Container Toolkit (package nvidia-container-toolkit) and the NVIDIA "
            "driver, run nvidia-ctk runtime configure --runtime=docker, and restart Docker"
            % (", ".join(u["name"] for u in asking), "s" if len(asking) == 1 else "", HOOK))
