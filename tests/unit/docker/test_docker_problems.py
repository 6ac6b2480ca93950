"""The docker role's one check task: each problem named with its variable and value, none on a good host."""

from ansible_collections.mlserve.tfserving.plugins.filter.docker import FilterModule

DEBIAN = {"os_family": "Debian", "distribution": "Debian"}
SETTINGS = {"install_method": "distribution", "upstream_repo_url": "", "upstream_repo_key_url": "",
            "nvidia_toolkit": False, "nvidia_repo_url": "", "nvidia_repo_key_url": ""}
problems = FilterModule().filters()["docker_problems"]


def test_the_role_defaults_on_a_debian_host_have_no_problem():
    assert problems(SETTINGS, DEBIAN, "s1") == []
    assert problems(dict(SETTINGS, install_method="upstream", upstream_repo_url="https://repo.example",
                         upstream_repo_key_url="https://repo.example/key"), DEBIAN, "s1") == []


def test_every_problem_is_named_with_its_variables_values():
    found = problems(dict(SETTINGS, install_method="upstream", upstream_repo_url="https://repo.example",
                          nvidia_toolkit=True, nvidia_repo_key_url="https://nvidia.example/key"),
                     {"os_family": "RedHat", "distribution": "Rocky"}, "s1")
    assert found == [
        "docker_install_method is 'upstream' but docker_upstream_repo_url ('https://repo.example') or "
        "docker_upstream_repo_key_url ('') is empty: set both to Docker's apt repository for this distribution and "
        "its signing key, or use docker_install_method 'distribution'.",
        "docker_nvidia_toolkit is true but docker_nvidia_repo_url ('') or docker_nvidia_repo_key_url "
        "('https://nvidia.example/key') is empty: set both to NVIDIA's apt repository for the toolkit (or your mirror "
        "of it) and its signing key, or set docker_nvidia_toolkit to false.",
        "mlserve.tfserving.docker supports Debian and Ubuntu hosts; s1 runs Rocky (os_family RedHat)."]


def test_a_host_without_facts_is_named_as_unknown():
    assert problems(SETTINGS, {}, "s1") == [
        "mlserve.tfserving.docker supports Debian and Ubuntu hosts; s1 runs an unknown system (os_family unknown)."]


def test_daemon_options_the_engine_or_the_serving_containers_refuse_are_named():
    found = problems(dict(SETTINGS, daemon_options={"hosts": ["tcp://0.0.0.0:2375"], "userns-remap": "default",
                                                    "log-driver": "json-file"}), DEBIAN, "s1")
    assert found == [
        "docker_daemon_options sets hosts (['tcp://0.0.0.0:2375']), which the engine's service already sets (dockerd "
        "-H fd://): dockerd refuses to start with it in both. Leave hosts out of docker_daemon_options; a drop-in for "
        "docker.service sets other listeners.",
        "docker_daemon_options sets userns-remap (default): the TF Serving containers share the host's network, which "
        "the engine refuses with user namespaces on, and they already run as serving_user with every capability "
        "dropped. Leave userns-remap out of docker_daemon_options."]
