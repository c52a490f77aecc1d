"""Maps the component folders to ``goq.*`` package names.

A top-level package named ``operator`` would shadow the standard library, so ``operator/``,
``sidecar/`` and ``webhook/`` are installed as ``goq.operator``, ``goq.sidecar`` and ``goq.webhook``
through ``package_dir``; this works for normal and editable installs. Everything else is in
pyproject.toml.
"""

from setuptools import find_packages, setup

COMPONENTS = {"goq.operator": "operator", "goq.sidecar": "sidecar", "goq.webhook": "webhook"}

packages = find_packages(include=["goq", "goq.*"])
package_dir = {"goq": "goq"}
for name, folder in COMPONENTS.items():
    package_dir[name] = folder
    packages += [name, *(f"{name}.{sub}" for sub in find_packages(folder))]

setup(packages=packages, package_dir=package_dir)
