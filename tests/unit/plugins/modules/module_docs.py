"""A module's DOCUMENTATION, EXAMPLES and RETURN against what its main() really builds; its main() run in-process."""

import json

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args


def assert_documentation_matches(monkeypatch, module, return_keys):
    """The documented options are the argument spec's (type, elements, default, choices, required)."""
    class Stop(Exception):
        pass

    def capture(**kwargs):
        captured.update(kwargs)
        raise Stop()

    captured = {}
    monkeypatch.setattr(module, "AnsibleModule", capture)
    with pytest.raises(Stop):
        module.main()
    assert captured["supports_check_mode"] is True
    documented = yaml.safe_load(module.DOCUMENTATION)["options"]
    spec = captured["argument_spec"]
    assert sorted(documented) == sorted(spec)
    for name, option in spec.items():
        doc = documented[name]
        for key in ("type", "elements", "default", "choices"):
            assert doc.get(key) == option.get(key), (name, key)
        assert doc.get("required", False) == option.get("required", False), name
    yaml.safe_load(module.EXAMPLES)
    assert set(yaml.safe_load(module.RETURN)) == set(return_keys)


def module_runner(module):
    """run(capsys, args, check_mode=False, diff=False): the module's main() on these arguments, its JSON result."""
    def run(capsys, args, check_mode=False, diff=False):
        with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)):
            with pytest.raises(SystemExit):
                module.main()
        return json.loads(capsys.readouterr().out)
    return run
