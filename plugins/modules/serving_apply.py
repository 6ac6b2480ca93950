#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: serving_apply
short_description: Apply one host's TensorFlow Serving containers, their models.config and labels in one task
version_added: 0.2.0
description:
  - Takes the serving units one host runs (its share of the plan that M(mlserve.tfserving.fleet_plan) made) and,
    for every unit, writes its C(models.config), runs its container with the Docker SDK, and waits until the server
    reports every declared version C(AVAILABLE) and every label resolving to its version.
  - Before anything changes, every served version must be on the host (C(<host_path>/<N>)), as the
    M(mlserve.tfserving.model_version_info)-checked sync of the models role leaves it, and no planned port may be
    held by anything but this collection's own running containers (C(ss), which also sees sockets of processes
    in other containers on the host's network).
  - Labels move in the two steps TensorFlow Serving requires. A label may only name a version that is
    C(AVAILABLE) when the config is applied, otherwise the server rejects the whole config. So a first config adds
    the new versions and keeps labels where they are, and a second one moves the labels once the versions are
    C(AVAILABLE).
  - All units are waited for at the same time, within one O(wait_timeout) for the whole host.
  - Containers of this collection (label C(mlserve.tfserving.managed=true)) that no unit names are removed.
author:
  - mlserve maintainers
requirements:
  - The Docker SDK for Python on the host (Debian package C(python3-docker), 5.0 or later) and a running engine.
options:
  units:
    description:
      - The host's serving units. Each is a dict with C(name) (the container), C(model), C(topology)
        (C(shared) or C(isolated)), C(versions) (list of ints), C(labels) (label -> version), C(image),
        C(grpc_port), C(rest_port), C(host_path) (the versions on the host), C(container_path) (where the
        container sees them), C(resources) (optional C(memory) such as C(2g) and C(cpus) such as C(1.5)) and
        C(config_dir) (the host directory that holds the unit's C(models.config), mounted at C(/etc/tfserving)).
      - A unit with C(batching) (TF Serving's C(BatchingParameters) fields) gets a C(batching.config) beside its
        C(models.config); a unit with C(gpus) (C(all), a count, or device IDs) a GPU device request, refused
        before anything changes when the host's Docker engine has no NVIDIA Container Toolkit.
      - A unit with C(metrics_path) (such as C(/monitoring/prometheus/metrics)) gets a C(monitoring.config) beside
        its C(models.config) and C(--monitoring_config_file), so that the server answers Prometheus at that path
        on its REST port.
      - A unit may carry its own C(command) (the C(tensorflow_model_server) flags); otherwise it is rendered from
        O(flags), then the unit's own C(flags) (its model's and version's, which win), O(config_poll_seconds) and
        the unit's ports.
      - The units are taken as already validated (the fleet plan checks them).
    type: list
    elements: dict
    required: true
  flags:
    description:
      - Extra C(tensorflow_model_server) flags, name (without C(--)) to value, already checked by the fleet plan.
    type: dict
    default: {}
  config_poll_seconds:
    description: C(--model_config_file_poll_wait_seconds) of every server.
    type: int
    default: 5
  host:
    description:
      - The inventory name of the host; every failure message starts with it.
    type: str
    required: true
  restart_policy:
    description:
      - The containers' restart policy.
    type: str
    choices: ["no", always, on-failure, unless-stopped]
    default: unless-stopped
  log_options:
    description:
      - Options of the C(json-file) log driver.
    type: dict
    default: {max-size: 10m, max-file: "3"}
  environment:
    description:
      - Environment variables of every container.
    type: dict
    default: {}
  user:
    description:
      - The numeric C(uid:gid) the servers run as; C("") runs the image's own user (root in tensorflow/serving).
      - It must be able to read the model versions and C(models.config); the models role and this module make
        them world-readable (directories C(0755), files C(0644)).
    type: str
    default: "65534:65534"
  read_only:
    description:
      - Mount the container's root filesystem read-only (C(--read-only)); V(false) leaves it writable.
    type: bool
    default: true
  tmpfs:
    description:
      - Container path to C(tmpfs) mount options (C(--tmpfs)), the writable places of a read-only container;
        C({}) mounts none.
    type: dict
    default: {/tmp: "rw,noexec,nosuid,nodev,size=64m"}
  cap_drop:
    description:
      - Capabilities dropped (C(--cap-drop)); V([]) keeps Docker's default set.
      - The servers bind ports above 1024 and need none.
    type: list
    elements: str
    default: [ALL]
  no_new_privileges:
    description:
      - Run with C(--security-opt no-new-privileges:true), so no process in the container gains privileges
        (set-user-ID files, file capabilities).
    type: bool
    default: true
  pids_limit:
    description:
      - Most processes and threads in a container (C(--pids-limit)); V(0) sets no limit.
      - Threads count; TF Serving starts a few per CPU core and per model.
    type: int
    default: 4096
  remove_undeclared:
    description:
      - Remove this collection's containers that O(units) does not name.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait, for all units together, until every version is C(AVAILABLE) and every label resolves.
      - A version that failed to load for good (C(END) with an error) fails the task at once.
    type: int
    default: 300
attributes:
  check_mode:
    support: full
    description:
      - Nothing is written, started or removed, and nothing is waited for. Without the Docker SDK or engine
        (a host the docker role has not prepared yet) every unit is reported as created.
  diff_mode:
    support: full
    description: Each unit's C(models.config) before and after, and a summary of each changed container (image,
      command, spec hash and hardening).
notes:
  - A container is recreated when its spec changes (the hash in its C(mlserve.tfserving.spec) label, which covers
    the hardening options too) or when the image reference now names another image ID; it is started when it exists
    unchanged but is not running.
  - Hardening options with an invalid value fail the task before anything changes.
  - The image must be on the host already; the module does not pull.
  - Configuration changes reach a running server through polling (C(--model_config_file_poll_wait_seconds)), not
    through a restart.
seealso:
  - name: TensorFlow Serving model server configuration
    description: models.config, version policies and version labels.
    link: https://www.tensorflow.org/tfx/serving/serving_config
"""

EXAMPLES = r"""
- name: Run this host's serving units
  mlserve.tfserving.serving_apply:
    host: "{{ inventory_hostname }}"
    units: "{{ _serving_units }}"
    flags: {rest_api_timeout_in_ms: 5000}
    wait_timeout: "{{ serving_wait_timeout }}"
  register: serving

- name: Show what changed
  ansible.builtin.debug:
    msg: "{{ serving.units | dict2items | rejectattr('value.container', 'eq', 'unchanged') | map(attribute='key') }}"

- name: Keep containers that are no longer declared
  mlserve.tfserving.serving_apply:
    host: "{{ inventory_hostname }}"
    units: "{{ _serving_units }}"
    remove_undeclared: false

- name: Run as the image's own user with a writable root filesystem, keeping the other hardening
  mlserve.tfserving.serving_apply:
    host: "{{ inventory_hostname }}"
    units: "{{ _serving_units }}"
    user: ""
    read_only: false
"""

RETURN = r"""
units:
  description: What was done per unit, by container name (what would be done in check mode).
  returned: always
  type: dict
  sample:
    tfserving-half_plus:
      container: unchanged
      config_changed: true
      steps: 2
      versions: [2, 3]
      labels: {stable: 3}
  contains:
    container:
      description: C(created), C(recreated), C(started) or C(unchanged); null in a failure's result for a unit
        the module did not reach.
      type: str
    config_changed:
      description: Whether C(models.config) was rewritten.
      type: bool
    steps:
      description: 2 when labels had to wait for their versions (two configs written), 1 otherwise.
      type: int
    versions:
      description: The versions served in the end.
      type: list
      elements: int
    labels:
      description: The labels in the end.
      type: dict
removed:
  description: Names of the undeclared containers of this collection that were removed.
  returned: always
  type: list
  elements: str
  sample: [tfserving-old_model]
diff:
  description: Before and after of each changed C(models.config) and container.
  returned: when diff mode is on
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlserve.tfserving.plugins.module_utils import hardening, serving_apply, serving_host


def main():
    module = AnsibleModule(
        argument_spec=dict(
            units=dict(type="list", elements="dict", required=True),
            flags=dict(type="dict", default={}),
            config_poll_seconds=dict(type="int", default=5),
            host=dict(type="str", required=True),
            restart_policy=dict(type="str", default="unless-stopped",
                                choices=["no", "always", "on-failure", "unless-stopped"]),
            log_options=dict(type="dict", default={"max-size": "10m", "max-file": "3"}),
            environment=dict(type="dict", default={}),
            user=dict(type="str", default=hardening.HARDENING["user"]),
            read_only=dict(type="bool", default=hardening.HARDENING["read_only"]),
            tmpfs=dict(type="dict", default=hardening.HARDENING["tmpfs"]),
            cap_drop=dict(type="list", elements="str", default=hardening.HARDENING["cap_drop"]),
            no_new_privileges=dict(type="bool", default=hardening.HARDENING["no_new_privileges"]),
            pids_limit=dict(type="int", default=hardening.HARDENING["pids_limit"]),
            remove_undeclared=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
    )
    params = dict(module.params)
    params["hardening"] = dict((name, params.pop(name)) for name in hardening.HARDENING)
    problems = hardening.hardening_problems(params["hardening"])
    if problems:
        module.fail_json(msg="%s: %s" % (params["host"], "; ".join(problems)), changed=False)
    flags, poll = params.pop("flags"), params.pop("config_poll_seconds")
    params["units"] = [dict(unit, command=unit.get("command") or serving_host.server_command(unit, flags, poll))
                       for unit in params["units"]]
    try:
        client = serving_apply.docker_client(params["host"], module.check_mode)
        # Before anything changes: every served version on the host, every planned port free.
        missing = [] if module.check_mode else serving_apply.missing_versions(params["units"])
        problems = ["%s: %s" % (params["host"], p) for p in missing] + serving_apply.port_problems(
            client, params["units"], module.run_command(["ss", "-Hltnp"], check_rc=True)[1], params["host"])
        if problems:
            module.fail_json(msg="\n".join(problems), changed=False)
        result = serving_apply.apply(client, module.check_mode, **params)
    except serving_apply.ApplyError as e:
        result = dict(e.result, msg=e.msg)
    if not module._diff:
        result.pop("diff", None)
    if "msg" in result:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
