# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The docker role's checks of its settings and of the host, before anything changes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def docker_problems(settings, system, host):
    """One message per problem: the install method's repository, the NVIDIA toolkit's, the daemon options the
    engine or the serving containers refuse, the host's system.

    `settings`: the role's variables without the `docker_` prefix; `system`: the host's system as
    mlserve.tfserving.installed_packages returns it (os_family, distribution), named as in ansible_facts.
    """
    problems = []
    if settings["install_method"] == "upstream" and not (settings["upstream_repo_url"]
                                                         and settings["upstream_repo_key_url"]):
        problems.append(
            "docker_install_method is 'upstream' but docker_upstream_repo_url ('%s') or docker_upstream_repo_key_url "
            "('%s') is empty: set both to Docker's apt repository for this distribution and its signing key, or use "
            "docker_install_method 'distribution'." % (settings["upstream_repo_url"], settings["upstream_repo_key_url"]))
    if settings["nvidia_toolkit"] and not (settings["nvidia_repo_url"] and settings["nvidia_repo_key_url"]):
        problems.append(
            "docker_nvidia_toolkit is true but docker_nvidia_repo_url ('%s') or docker_nvidia_repo_key_url ('%s') is "
            "empty: set both to NVIDIA's apt repository for the toolkit (or your mirror of it) and its signing key, or "
            "set docker_nvidia_toolkit to false." % (settings["nvidia_repo_url"], settings["nvidia_repo_key_url"]))
    options = settings.get("daemon_options") or {}
    if "hosts" in options:
        problems.append(
            "docker_daemon_options sets hosts (%s), which the engine's service already sets (dockerd -H fd://): dockerd "
            "refuses to start with it in both. Leave hosts out of docker_daemon_options; a drop-in for docker.service "
            "sets other listeners." % (options["hosts"],))
    if "userns-remap" in options:
        problems.append(
            "docker_daemon_options sets userns-remap (%s): the TF Serving containers share the host's network, which "
            "the engine refuses with user namespaces on, and they already run as serving_user with every capability "
            "dropped. Leave userns-remap out of docker_daemon_options." % (options["userns-remap"],))
    if system.get("os_family") != "Debian":
        problems.append("mlserve.tfserving.docker supports Debian and Ubuntu hosts; %s runs %s (os_family %s)."
                        % (host, system.get("distribution") or "an unknown system", system.get("os_family") or "unknown"))
    return problems


class FilterModule(object):
    def filters(self):
        return {"docker_problems": docker_problems}
