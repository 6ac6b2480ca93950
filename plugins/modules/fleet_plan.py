#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: fleet_plan
short_description: Check the declaration and the inventory once, and derive every host's share
version_added: 0.2.0
description:
  - Runs on the controller only (an action plugin) and contacts no host.
  - Checks C(tfserving_models), every host's variables and every model source, and reports every problem at once.
  - Derives each serving host's containers (units) with their ports and the directories they use, each host's models,
    each gateway host's pools, routes and gRPC listeners, and the checksum of every declared source version.
  - Refuses a container whose versions, loaded at once, need more RAM by TF Serving's estimate (1.2 times their bytes
    on disk) than its C(resources.memory).
  - The roles, playbooks and reports of this collection consume the plan; none of them derives it again.
  - The run's plan is the result of this action registered as C(tfserving_plan) (site.yml's preflight does this).
    When it was made for the same declaration, drained and served hosts and the same variables of the host running
    the task, it is returned as it is, without reading anything again.
  - Hosts whose planning inputs are the same (groups, port base, models root, image, resources, config directory) share
    one entry under RV(plan.profiles), so a large fleet has a small plan.
author:
  - mlserve maintainers
options:
  declaration:
    description: The declaration to plan. Defaults to C(tfserving_models).
    type: list
    elements: dict
  drained:
    description: Serving hosts marked down in every pool. Defaults to C(gateway_drained_hosts).
    type: list
    elements: str
  served:
    description:
      - Serving hosts that serve another declaration than O(declaration), host to declaration (a rolling upgrade in
        progress); their pools follow what they really serve. Defaults to C(gateway_served_models).
    type: dict
  check_sources:
    description: Read every declared version of every model source on the controller, as M(mlserve.tfserving.model_version_info) does.
    type: bool
    default: true
  sources:
    description:
      - RV(plan.sources) of an earlier plan in the same run; only the models whose declared versions it lacks are
        read.
    type: dict
  parts:
    description:
      - The parts of the plan to return (C(hosts), C(profiles), C(gateways), C(firewalls), C(monitoring), C(sources),
        C(inputs), C(host_inputs));
        RV(plan.problems) is always returned. All of them when omitted.
      - A role asks only for what it uses, which keeps the result small on a large fleet.
    type: list
    elements: str
  fail_on_problems:
    description: Fail when the plan has problems (all of them in the message).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Changes nothing anywhere.
notes:
  - Host variables not set on a host take the defaults of the roles that own them (C(roles/*/defaults/main.yml)); the
    collection-wide C(tfserving_port_base) (8500) and C(tfserving_models_root) (C(/srv/tfserving/models)) are the
    serving role's.
  - Use it with C(run_once), and keep its result for every host with M(ansible.builtin.set_fact).
"""

EXAMPLES = r"""
- name: Plan the fleet once, before any host is touched; the run's plan for every host of the play
  mlserve.tfserving.fleet_plan:
  register: tfserving_plan
  run_once: true

- name: This host's containers
  ansible.builtin.debug:
    msg: >-
      {{ tfserving_plan.plan.profiles[tfserving_plan.plan.hosts[inventory_hostname].profile].units
         | map(attribute='name') }}

- name: In a role, take the run's plan (or make one when the role runs on its own), returning only what is used
  mlserve.tfserving.fleet_plan:
    parts: [hosts, profiles]
    check_sources: false
  register: _serving_planned
  run_once: true
"""

RETURN = r"""
plan:
  description: The plan.
  returned: always
  type: dict
  contains:
    problems:
      description: Every problem found, each naming the variable, the value, the host where it matters, and what is valid.
      type: list
      elements: str
    warnings:
      description:
        - What works but is likely a mistake, such as more op threads than a container's C(resources.cpus). Also the
          result's own C(warnings), which Ansible shows, when this task built the plan (a reused plan repeats none).
      type: list
      elements: str
    hosts:
      description: Each serving host with a share, host to C({profile}).
      type: dict
    profiles:
      description:
        - Shares by profile key. C(units) are the containers (name, model, topology, versions, labels, image, resources,
          flags, batching, gpus, gpus_shared, grpc_port, rest_port, host_path, container_path, config_dir,
          metrics_path); C(models) the normalized models the host serves.
      type: dict
    gateways:
      description:
        - Each gateway host's routing; C(pools) and C(grpc) name the upstreams (and the gRPC listeners' ports), whose
          server lines are in C(upstreams), the nginx text; C(routes), C(models) and C(pin) describe the locations.
      type: dict
    firewalls:
      description:
        - Each serving host with C(firewall_enabled), host to its C(profile) (whose units' gRPC and REST ports it
          filters), C(gateways) (gateway host to the addresses its connections come from) and C(allowed)
          (C(firewall_allowed_sources)), C(monitors) (monitoring host to its addresses, let in on the REST ports
          only); the firewall role renders it with the C(mlserve.tfserving.nft_ruleset) filter.
      type: dict
    monitoring:
      description:
        - What Prometheus on the C(monitoring) group scrapes (plugins/module_utils/metrics.py). C(url) is the first
          monitoring host's Prometheus (null without one); C(servers) each container's metrics page (C(host),
          C(container), C(model), C(target), C(metrics_path)); C(versions) each (container, version) status URL the
          blackbox exporter probes; C(gateways) each gateway's C(requests) (mtail) and C(nginx) (exporter) address.
      type: dict
    sources:
      description:
        - Model name to the C(version), C(directory), C(checksum) and C(total_bytes) of each declared version of its
          source. The sizes give TF Serving's own RAM estimate of a version (1.2 times its bytes on disk), which the
          plan checks against each container's C(resources.memory).
      type: dict
"""
