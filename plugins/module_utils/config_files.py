# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host side: configuration files written whole, and the sum of what a daemon last loaded.

The modules that put configuration in place (nginx_config,
prometheus_config, firewall_rules, checked_files) share these: a file is
replaced by an atomic rename, so a daemon never reads half of one, and the
loaded sum lets the next run find files that were written but never loaded.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
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


def checked_file_options(**extra):
    """The suboptions of files that are checked before they are put in place: file_options, group and check."""
    return file_options(group=dict(type="str"), check=dict(type="list", elements="str", default=[]), **extra)


def checked_files(module, name):
    """module.params['files'] of the module `name` ready to compare and write (content as bytes, mode and group as numbers).

    Fails the module, naming every bad entry, before anything is written.
    """
    problems, files = [], []
    for index, entry in enumerate(module.params["files"]):
        if not os.path.isabs(entry["path"]):
            problems.append("files[%d].path: %r is not an absolute path" % (index, entry["path"]))
        if entry["check"] and not any("%s" in arg for arg in entry["check"]):
            problems.append("files[%d].check: %r has no %%s for the file to check" % (index, entry["check"]))
        try:
            mode = mode_of(entry, 0o644)
        except ValueError:
            problems.append("files[%d].mode: %r is not an octal mode such as 0644" % (index, entry["mode"]))
            continue
        try:
            gid = grp.getgrnam(entry["group"]).gr_gid if entry["group"] else None
        except KeyError:
            problems.append("files[%d].group: %r is not a group of this host" % (index, entry["group"]))
            continue
        files.append(dict(entry, content=entry["content"].encode("utf-8"), mode=mode, gid=gid))
    if problems:
        module.fail_json(msg="%s: %s" % (name, "; ".join(problems)))
    return files


def changed_files(files):
    """The entries of checked_files whose file lacks their content, mode or group."""
    return [entry for entry in files if differs(entry["path"], entry["content"], entry["mode"], entry["gid"])]


def diff_of(written):
    """Ansible's diff of the files about to be written."""
    return [dict(before_header=entry["path"], after_header=entry["path"],
                 before=(read(entry["path"]) or b"").decode("utf-8", "replace"),
                 after=entry["content"].decode("utf-8")) for entry in written]


def put_in_place(module, written, unchanged, **result):
    """Each written file checked beside the live one, then renamed into place, in order.

    A refused file fails the module with the checker's words; `unchanged`
    says what is left as it was (such as the daemon's loaded configuration),
    `result` is returned with the failure, `written` naming the files
    already in place.
    """
    for index, entry in enumerate(written):
        candidate = temporary(entry["path"], entry["content"], entry["mode"], gid=entry["gid"])
        try:
            rc, out, err = module.run_command([arg.replace("%s", candidate) for arg in entry["check"]]) \
                if entry["check"] else (0, "", "")
            if rc != 0:
                placed = [before["path"] for before in written[:index]]
                result.update(written=placed, changed=bool(placed))
                module.fail_json(msg="%s refused the new %s; %s. It said: %s"
                                     % (entry["check"][0], entry["path"], unchanged, (err or out).strip()), **result)
            os.rename(candidate, entry["path"])
        finally:
            if os.path.exists(candidate):
                os.unlink(candidate)
