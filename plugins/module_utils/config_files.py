# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host side: configuration files written whole, and the sum of what a daemon last loaded.

The modules that put a daemon's configuration in place (nginx_config,
prometheus_config, firewall_rules) share these: a file is replaced by an
atomic rename, so a daemon never reads half of one, and the loaded sum lets
the next run find files that were written but never loaded.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import tempfile


def read(path):
    """The file's bytes, or None when there is no such file."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def loaded_sum(contents):
    """What `cat files | sha256sum` prints, the form a loaded file has always had."""
    return "%s  -\n" % hashlib.sha256(b"".join(contents)).hexdigest()


def temporary(path, content, mode, directory_mode=0o755, gid=None):
    """content in a new file beside path (same file system, so a rename is atomic), of group `gid`; its path."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, directory_mode)
    fd, name = tempfile.mkstemp(dir=directory, prefix=".mlserve-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        if gid is not None:
            os.chown(name, -1, gid)
        os.chmod(name, mode)
    except BaseException:
        os.unlink(name)
        raise
    return name


def write(path, content, mode, directory_mode=0o755):
    """content at path by an atomic rename."""
    os.rename(temporary(path, content, mode, directory_mode), path)


def remove(path):
    if os.path.lexists(path):
        os.unlink(path)
        return True
    return False


def differs(path, content, mode, gid=None):
    """Whether the file at path lacks this content, this mode or (unless None) this group."""
    if read(path) != content:
        return True
    status = os.stat(path)
    return (status.st_mode & 0o7777) != mode or (gid is not None and status.st_gid != gid)


def file_options(secret=False, **extra):
    """The suboptions of a list of files: path, content (kept out of logs when secret), mode, and `extra`."""
    return dict(path=dict(type="str", required=True), content=dict(type="str", required=True, no_log=secret),
                mode=dict(type="raw"), **extra)


def mode_of(entry, default_mode):
    """The entry's mode as an int (octal text such as 0644 or a number); ValueError when it is neither."""
    mode = default_mode if entry.get("mode") is None else entry["mode"]
    return int(mode, 8) if isinstance(mode, str) else int(mode)
