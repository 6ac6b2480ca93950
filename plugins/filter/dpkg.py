# -*- coding: utf-8 -*-
# Copyright: mlserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What dpkg says is installed, read from one `dpkg-query --show` of several packages."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The --showformat the filter reads: the status abbreviation ("ii " when
# installed: selection, state and a blank error flag), the package, its version.
SHOWFORMAT = "${db:Status-Abbrev}|${Package}|${Version}\\n"


def dpkg_installed(output):
    """package -> version, for each line of `output` whose package is installed ("ii").

    A package dpkg has never seen is only missing from the output (dpkg says so on stderr); one removed but
    not purged is listed as "rc" and is not installed.
    """
    installed = {}
    for line in output.splitlines():
        fields = line.split("|")
        if len(fields) == 3 and fields[0].strip() == "ii":
            installed[fields[1]] = fields[2]
    return installed


class FilterModule(object):
    def filters(self):
        return {"dpkg_installed": dpkg_installed}
