"""The XML session reader's C walk (`rankjax/data/readers/_xml_fields.pyx`); everything else about
the package is in pyproject.toml. The extension is optional: where it cannot be built (no C
compiler), the reader walks the same elements in Python, slower."""

import lxml
from setuptools import Extension, setup

setup(
  ext_modules=[
    Extension(
      "rankjax.data.readers._xml_fields",
      ["rankjax/data/readers/_xml_fields.pyx"],
      # lxml's public C API and the libxml2 headers its wheel ships; nothing of it is linked.
      include_dirs=lxml.get_include(),
      optional=True,
    )
  ]
)
