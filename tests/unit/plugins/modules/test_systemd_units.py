"""systemd_units: several units brought to their state with one query, and only what differs acted on."""

import pytest

from ansible_collections.mlserve.tfserving.plugins.modules import systemd_units as module

from .module_docs import assert_documentation_matches, module_runner

run = module_runner(module)


class Systemd:
    """systemctl over a few units, as the module calls it: show, enable, disable, start, stop."""

    def __init__(self, **units):
        # name -> [UnitFileState, ActiveState]
        self.units = dict((name, list(state)) for name, state in units.items())
        self.calls = []

    @staticmethod
    def unit(name):
        return name if "." in name else name + ".service"

    def __call__(self, argv):
        assert argv[0] == "systemctl"
        self.calls.append(argv[1:])
        if argv[1] == "show":
            assert argv[2] == "--property=Id,LoadState,ActiveState,UnitFileState" and argv[3] == "--"
            blocks = []
            for name in argv[4:]:
                state = self.units.get(self.unit(name))
                blocks.append("Id=%s\nLoadState=%s\nActiveState=%s\nUnitFileState=%s" % (
                    self.unit(name), "loaded" if state else "not-found", state[1] if state else "inactive",
                    state[0] if state else ""))
            return 0, "\n\n".join(blocks) + "\n", ""
        verb, name = argv[1:]
        if verb == "start" and name == "broken.service":
            return 1, "", "Job for broken.service failed because the control process exited with error code."
        state = self.units[name]
        if verb in ("enable", "disable"):
            state[0] = "enabled" if verb == "enable" else "disabled"
        else:
            state[1] = "active" if verb == "start" else "inactive"
        return 0, "", ""


@pytest.fixture
def systemd(monkeypatch):
    fake = Systemd(**{"nginx.service": ("enabled", "active"), "mtail.service": ("disabled", "inactive"),
                      "rotate.timer": ("enabled", "inactive"), "link.service": ("static", "inactive"),
                      "exporter.service": ("enabled", "active")})
    monkeypatch.setattr(module.AnsibleModule, "run_command", lambda self, argv, **kwargs: fake(argv))
    return fake


UNITS = [{"name": "nginx", "state": "started", "enabled": True},
         {"name": "rotate.timer", "state": "started", "enabled": True},
         {"name": "link.service", "enabled": True},
         {"name": "mtail", "state": "started", "enabled": True},
         {"name": "exporter", "state": "stopped", "enabled": False}]


def test_only_the_units_that_differ_are_acted_on_after_one_query_and_a_second_run_does_nothing(capsys, systemd):
    result = run(capsys, {"units": UNITS})
    assert result["changed"] and result["actions"] == [
        "start rotate.timer", "enable mtail.service", "start mtail.service", "disable exporter.service",
        "stop exporter.service"]
    assert [call[0] for call in systemd.calls].count("show") == 1
    assert systemd.units["mtail.service"] == ["enabled", "active"]
    assert systemd.units["exporter.service"] == ["disabled", "inactive"]
    systemd.calls = []
    again = run(capsys, {"units": UNITS})
    assert not again["changed"] and again["actions"] == [] and systemd.calls[1:] == []


def test_check_mode_names_what_it_would_do_and_does_it_not(capsys, systemd):
    result = run(capsys, {"units": UNITS}, check_mode=True)
    assert result["changed"] and len(result["actions"]) == 5
    assert [call[0] for call in systemd.calls] == ["show"]
    assert systemd.units["mtail.service"] == ["disabled", "inactive"]


def test_a_unit_the_host_lacks_is_stopped_and_disabled_already_and_cannot_be_started(capsys, systemd):
    off = run(capsys, {"units": [{"name": "absent", "state": "stopped", "enabled": False}]})
    assert not off["changed"] and off["actions"] == []
    # In check mode an earlier task would have installed it.
    checked = run(capsys, {"units": [{"name": "absent", "state": "started", "enabled": True}]}, check_mode=True)
    assert checked["changed"] and checked["actions"] == ["enable absent.service", "start absent.service"]
    failed = run(capsys, {"units": [{"name": "nginx", "state": "stopped"},
                                    {"name": "absent", "state": "started", "enabled": True}]})
    assert failed["failed"] and failed["msg"] == (
        "systemd_units: this host has no unit absent to enable and start (is its package installed?)")
    assert systemd.units["nginx.service"] == ["enabled", "active"]


def test_a_unit_that_fails_to_start_is_named_with_systemd_s_words_and_what_was_done_before(capsys, systemd):
    systemd.units["broken.service"] = ["disabled", "inactive"]
    result = run(capsys, {"units": [{"name": "mtail", "state": "started"}, {"name": "broken", "state": "started",
                                                                             "enabled": True}]})
    assert result["failed"] and result["changed"] and result["actions"] == ["start mtail.service",
                                                                            "enable broken.service"]
    assert result["msg"] == ("systemd_units: systemctl start broken.service failed: Job for broken.service failed "
                             "because the control process exited with error code.")


def test_the_documentation_is_the_argument_spec(monkeypatch):
    assert_documentation_matches(monkeypatch, module, ["actions"])
