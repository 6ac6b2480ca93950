# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The serving containers' hardening settings and their checks.

Plain data and checks, used on the controller (the fleet plan checks every
serving host's serving_<name> variables) and on the host (serving_apply
checks its options and builds the containers from them).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.mlserve.tfserving.plugins.module_utils import fleet

# The containers' hardening (module options, role variables serving_<name>)
# and each setting's default; its "off" value ("", false, {}, [], 0) leaves
# the image's own default. nobody:nogroup reads what the models role and this
# module write (directories 0755, files 0644); pids counts threads, of which
# TF Serving's pools start a few per core.
HARDENING = {
    "user": "65534:65534",
    "read_only": True,
    "tmpfs": {"/tmp": "rw,noexec,nosuid,nodev,size=64m"},
    "cap_drop": ["ALL"],
    "no_new_privileges": True,
    "pids_limit": 4096,
}
_USER = re.compile(r"\A\d+:\d+\Z")
# Linux's capabilities (as Docker names them, with or without CAP_, in any case).
CAPABILITIES = frozenset((
    "AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND BPF CHECKPOINT_RESTORE CHOWN DAC_OVERRIDE DAC_READ_SEARCH "
    "FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE MAC_ADMIN MAC_OVERRIDE MKNOD NET_ADMIN "
    "NET_BIND_SERVICE NET_BROADCAST NET_RAW PERFMON SETFCAP SETGID SETPCAP SETUID SYSLOG SYS_ADMIN SYS_BOOT "
    "SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG "
    "WAKE_ALARM").split())
_TMPFS_FLAGS = frozenset("rw ro exec noexec suid nosuid dev nodev atime noatime diratime nodiratime relatime "
                         "norelatime strictatime nostrictatime sync async dirsync".split())
_TMPFS_OPTION = re.compile(r"\A(?:size=\d+[kmgKMG%]?|nr_blocks=\d+[kmgKMG]?|nr_inodes=\d+[kmgKMG]?|mode=[0-7]{3,4}"
                           r"|uid=\d+|gid=\d+)\Z")


def _tmpfs_problem(path, options):
    if not isinstance(path, str) or not path.startswith("/") or path.rstrip("/") == "":
        return "%r is not an absolute path below /" % (path,)
    if not isinstance(options, str):
        return "the options of %s, %r, are not a string such as \"rw,noexec,nosuid,size=64m\"" % (path, options)
    wrong = [o for o in options.split(",") if o and o not in _TMPFS_FLAGS and not _TMPFS_OPTION.match(o)]
    if wrong:
        return ("%s has options Docker's tmpfs does not take: %s (use e.g. rw, noexec, nosuid, nodev, size=64m, "
                "mode=1777, uid=N, gid=N)" % (path, ", ".join(wrong)))
    return None


def hardening_problems(settings, prefix=""):
    """Problems of the hardening settings (name -> value, None for the default), each naming `prefix` + name."""
    problems = []

    def refuse(name, message):
        problems.append("%s%s: %s" % (prefix, name, message))

    user, tmpfs, caps, pids = (settings.get(k) for k in ("user", "tmpfs", "cap_drop", "pids_limit"))
    if user is not None and not (isinstance(user, str) and (user == "" or _USER.match(user))):
        refuse("user", "%r is not a numeric uid:gid; use e.g. \"65534:65534\" (nobody), or \"\" for the image's "
                       "own user" % (user,))
    for name in ("read_only", "no_new_privileges"):
        if settings.get(name) is not None and not isinstance(settings[name], bool):
            refuse(name, "%r is not true or false" % (settings[name],))
    if tmpfs is not None:
        if not isinstance(tmpfs, dict):
            refuse("tmpfs", "%r is not a mapping of container path to mount options, such as "
                            "{\"/tmp\": \"rw,noexec,nosuid,size=64m\"}; {} mounts none" % (tmpfs,))
        else:
            problems.extend("%stmpfs: %s" % (prefix, p) for p in
                            (_tmpfs_problem(path, options) for path, options in sorted(tmpfs.items(), key=str)) if p)
    if caps is not None:
        if not isinstance(caps, list):
            refuse("cap_drop", "%r is not a list of capabilities, such as [ALL]; [] drops none" % (caps,))
        else:
            unknown = [c for c in caps if not isinstance(c, str)
                       or (c.upper() != "ALL" and re.sub("^CAP_", "", c.upper()) not in CAPABILITIES)]
            if unknown:
                verb = "is not a Linux capability" if len(unknown) == 1 else "are not Linux capabilities"
                refuse("cap_drop", "%s %s; use ALL or names such as NET_RAW"
                                   % (", ".join(repr(c) for c in unknown), verb))
    if pids is not None and not (fleet._is_int(pids) and pids >= 0):
        refuse("pids_limit", "%r is not a number of processes; use a positive integer (threads count), or 0 for "
                             "no limit" % (pids,))
    return problems
