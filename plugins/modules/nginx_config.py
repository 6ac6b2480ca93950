#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nginx_config
short_description: Write nginx's configuration only once nginx accepts it, and reload nginx without dropping a request
version_added: 0.3.0
description:
  - Takes the whole configuration nginx should run, as file contents relative to O(root), and makes nginx run it, in
    one task.
  - When any file differs from the live one, all files are written into O(candidate), laid out like O(root), and
    checked there with C(nginx -t). A relative C(include) resolves against the directory of the file checked, so the
    candidate is checked as a whole. When nginx refuses it, the module fails with nginx's message and neither the
    live files nor the running nginx change.
  - Otherwise the checked contents are put in place, each file by an atomic rename, the main file (O(main)) last,
    since a reload reads it first. Files in O(absent) are then removed.
  - nginx is reloaded, never restarted. Its master gets C(SIGHUP), starts new workers with the new configuration
    and lets the old ones finish their requests. The module returns once the old workers are gone, so that
    whatever runs next sees only the new routes. When nginx is not running, it is started with the new files.
  - O(loaded_file) records the sum of the files nginx last loaded. A run that failed between writing and
    reloading is therefore reloaded by the next run, even though the files are already in place.
author:
  - mlserve maintainers
options:
  files:
    description:
      - The configuration's files. Their order is the order of the loaded sum.
    type: list
    elements: dict
    required: true
    suboptions: &file
      path:
        description: The file's path relative to O(root).
        type: str
        required: true
      content:
        description: The file's text.
        type: str
        required: true
      mode:
        description: Its mode, such as C(0644) (the default of O(files)) or C(0640) (that of O(secret_files)).
        type: raw
  secret_files:
    description:
      - Files like O(files) whose contents never reach a log or C(--diff), such as API keys.
        nginx's message about a refused configuration is shown with every quoted string hidden when there are any.
    type: list
    elements: dict
    default: []
    suboptions: *file
  absent:
    description: Paths relative to O(root) that the configuration no longer has; removed from the candidate and the
      live directory.
    type: list
    elements: str
    default: []
  main:
    description: The path, relative to O(root), of the file nginx starts from.
    type: str
    default: nginx.conf
  root:
    description: The live configuration directory.
    type: path
    default: /etc/nginx
  candidate:
    description: Where the new configuration is written and checked before it is put in place.
    type: path
    required: true
  loaded_file:
    description: Where the sum of the files nginx last loaded is kept.
    type: path
    required: true
  pid_file:
    description: nginx's C(pid) file, which names the master process.
    type: path
    default: /run/nginx.pid
  service:
    description: The system service that starts nginx when it is not running.
    type: str
    default: nginx
  reload_timeout:
    description: Seconds to wait for the old workers after a reload; the module fails when some are still there.
    type: int
    default: 120
notes:
  - Supports check mode (what would change, with C(--diff); nothing is written or checked) and diff mode.
"""

EXAMPLES = r"""
- name: Write the gateway's configuration once nginx accepts it, and reload nginx
  mlserve.tfserving.nginx_config:
    files:
      - {path: nginx.conf, content: "{{ lookup('ansible.builtin.template', 'nginx.conf.j2') }}"}
      - {path: mlserve/routes.conf, content: "{{ lookup('ansible.builtin.template', 'routes.conf.j2') }}"}
    candidate: /etc/nginx/mlserve/candidate
    loaded_file: /etc/nginx/mlserve/loaded.sha256
"""

RETURN = r"""
written:
  description: The paths (relative to O(root)) whose contents were written, or would be in check mode.
  type: list
  elements: str
  returned: always
removed:
  description: The paths of O(absent) that were removed, or would be.
  type: list
  elements: str
  returned: always
action:
  description: What nginx was asked to do, C(reload), C(start) or C(none).
  type: str
  returned: always
"""

import os
import re
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlserve.tfserving.plugins.module_utils.config_files import (
    differs, file_options, loaded_sum, mode_of, read, remove, write)


def master_pid(pid_file):
    """The running master's pid, or None."""
    text = read(pid_file)
    if not text or not text.strip().isdigit():
        return None
    pid = int(text.strip())
    return pid if os.path.exists("/proc/%d" % pid) else None


def workers(pid):
    """The master's children now: the workers that a reload replaces."""
    children = set()
    for task in os.listdir("/proc/%d/task" % pid):
        text = read("/proc/%d/task/%s/children" % (pid, task)) or b""
        children.update(int(child) for child in text.split())
    return children


def reload(pid, timeout, clock=time):
    """SIGHUP to the master; the old workers still running after timeout seconds, [] when all are gone."""
    old = workers(pid)
    os.kill(pid, signal.SIGHUP)
    deadline = clock.monotonic() + timeout
    while True:
        left = sorted(child for child in old if os.path.exists("/proc/%d" % child))
        if not left or clock.monotonic() >= deadline:
            return left
        clock.sleep(0.2)


def hide_quoted(message):
    return re.sub(r'"[^"]*"', '"(not shown)"', message)


def normalized(entries, default_mode, problems, option):
    result = []
    for index, entry in enumerate(entries):
        path = entry["path"]
        if not path or os.path.isabs(path) or ".." in path.split("/"):
            problems.append("%s[%d].path: %r is not a path relative to root" % (option, index, path))
            continue
        try:
            mode = mode_of(entry, default_mode)
        except ValueError:
            problems.append("%s[%d].mode: %r is not an octal mode such as 0644" % (option, index, entry["mode"]))
            continue
        result.append({"path": path, "content": entry["content"].encode("utf-8"), "mode": mode})
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="dict", required=True, options=file_options(secret=False)),
            secret_files=dict(type="list", elements="dict", default=[], options=file_options(secret=True)),
            absent=dict(type="list", elements="str", default=[]),
            main=dict(type="str", default="nginx.conf"),
            root=dict(type="path", default="/etc/nginx"),
            candidate=dict(type="path", required=True),
            loaded_file=dict(type="path", required=True),
            pid_file=dict(type="path", default="/run/nginx.pid"),
            service=dict(type="str", default="nginx"),
            reload_timeout=dict(type="int", default=120),
        ),
        supports_check_mode=True,
    )
    p = module.params
    problems = []
    plain = normalized(p["files"], 0o644, problems, "files")
    secret = normalized(p["secret_files"], 0o640, problems, "secret_files")
    files = plain + secret
    if p["main"] not in [entry["path"] for entry in files]:
        problems.append("main: %r is not one of the files" % p["main"])
    if problems:
        module.fail_json(msg="nginx_config: " + "; ".join(problems))

    root = p["root"]
    written = [entry for entry in files if differs(os.path.join(root, entry["path"]), entry["content"], entry["mode"])]
    removed = [path for path in p["absent"] if os.path.lexists(os.path.join(root, path))]
    pid = master_pid(p["pid_file"])
    total = loaded_sum([entry["content"] for entry in files])
    action = "none"
    if pid is None:
        action = "start"
    elif written or removed or read(p["loaded_file"]) != total.encode("ascii"):
        action = "reload"
    result = dict(changed=action != "none" or bool(written or removed),
                  written=[entry["path"] for entry in written], removed=removed, action=action)
    if module._diff:
        result["diff"] = [dict(before_header=os.path.join(root, entry["path"]),
                               after_header=os.path.join(root, entry["path"]),
                               before=(read(os.path.join(root, entry["path"])) or b"").decode("utf-8", "replace"),
                               after=entry["content"].decode("utf-8"))
                          for entry in written if entry in plain]
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)

    if written or removed:
        for entry in files:
            write(os.path.join(p["candidate"], entry["path"]), entry["content"], entry["mode"])
        for path in p["absent"]:
            remove(os.path.join(p["candidate"], path))
        nginx = module.get_bin_path("nginx", required=True)
        rc, out, err = module.run_command([nginx, "-t", "-c", os.path.join(p["candidate"], p["main"])])
        if rc != 0:
            said = (err or out).strip()
            module.fail_json(
                msg="nginx refused the new configuration (%s); the running gateway keeps the last good one. "
                    "nginx said: %s" % (p["candidate"], hide_quoted(said) if secret else said),
                **dict(result, changed=False, action="none"))
        for entry in sorted(files, key=lambda entry: entry["path"] == p["main"]):
            write(os.path.join(root, entry["path"]), entry["content"], entry["mode"])
        for path in removed:
            remove(os.path.join(root, path))

    if action == "start":
        rc, out, err = module.run_command(["systemctl", "start", p["service"]])
        if rc != 0:
            module.fail_json(msg="nginx did not start with the new configuration: %s" % (err or out).strip(), **result)
    else:
        left = reload(pid, p["reload_timeout"])
        if left:
            module.fail_json(msg="old nginx workers still running after %d s: %s (nginx's error log says why a "
                                 "reload did not take)" % (p["reload_timeout"], " ".join(map(str, left))), **result)
    write(p["loaded_file"], total.encode("ascii"), 0o644)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
