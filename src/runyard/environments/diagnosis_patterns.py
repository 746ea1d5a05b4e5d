"""What the lines of a failed job's log look like when an import or a version check failed: the patterns
`diagnosis.py` reads, and the import names whose PyPI package is named otherwise."""

from __future__ import annotations

import re

# Import names whose PyPI package is named otherwise, for packages not installed where the job was
# submitted (installed ones are found from their metadata first).
KNOWN = """
    sklearn=scikit-learn cv2=opencv-python PIL=Pillow yaml=PyYAML bs4=beautifulsoup4
    skimage=scikit-image dateutil=python-dateutil attr=attrs Crypto=pycryptodome OpenSSL=pyOpenSSL
    jwt=PyJWT dotenv=python-dotenv google.protobuf=protobuf gi=PyGObject serial=pyserial usb=pyusb
    magic=python-magic docx=python-docx pptx=python-pptx fitz=PyMuPDF Levenshtein=python-Levenshtein
    mpl_toolkits=matplotlib pkg_resources=setuptools win32api=pywin32 zmq=pyzmq MySQLdb=mysqlclient
    psycopg2=psycopg2-binary Bio=biopython umap=umap-learn
"""
KNOWN_PACKAGES: dict[str, str] = dict(pair.split("=", 1) for pair in KNOWN.split())

# The last line of a traceback: "ModuleNotFoundError: No module named 'x'", "pkg_resources.VersionConflict: (...)"
EXCEPTION = re.compile(
    r"^(?:[\w.]+\.)?(?P<exc>[A-Z]\w*(?:Error|Exception|Conflict|NotFound|Exit|Interrupt))(?:: (?P<msg>.*))?$"
)
CHAINED = ("During handling of the above exception", "The above exception was the direct cause")
NO_MODULE = re.compile(r"^No module named '?(?P<module>[\w.]+)'?")
CANNOT_IMPORT = re.compile(
    r"^cannot import name '?(?P<name>[\w.]+)'? from '?(?P<module>[\w.]+)'?(?: \((?P<path>.*)\))?"
)
PKG_RESOURCES_CONFLICT = re.compile(
    r"\((?P<name>[\w.\-]+) (?P<have>[^\s()]+) \(.*?\), Requirement(?:\.parse)?\(['\"](?P<req>[^'\"]+)['\"]\)"
)
NOT_FOUND = re.compile(
    r"(?:The '(?P<req>[^']+)' distribution was not found|No package metadata was found for (?P<name>[\w.\-]+))"
)
# transformers-style: "tokenizers>=0.11.1 is required for ..., but found tokenizers==0.14.1."
REQUIRED_BUT_FOUND = re.compile(
    r"(?P<req>[A-Za-z0-9][\w.\-]*(?:\[[^\]]*\])?\s*[<>=!~][^\s]*) is required.*but found "
    r"(?P<name>[\w.\-]+)==(?P<have>[\w.+\-!]+?)\.?$"
)
# pip-style: "pandas 2.2 requires numpy>=1.22, but you have numpy 1.21.0 which is incompatible."
REQUIRES_BUT_HAVE = re.compile(
    r"requires (?P<req>[A-Za-z0-9][\w.\-]*(?:\[[^\]]*\])?\s*[<>=!~][^,\s]*),? but (?:you have )?"
    r"(?P<name>[\w.\-]+)[ =]=?(?P<have>[\w.+\-!]+) (?:which )?is (?:installed|incompatible)"
)

# pyarrow 26 against NumPy 1.x: "pyarrow requires NumPy 2.0 or newer, found 1.26.4"
NEEDS_NEWER_NUMPY = re.compile(
    r"(?P<by>\w+) requires NumPy (?P<need>[\d.]+) or newer, found (?P<have>[\d.]+)"
)
# NumPy's own warning when an extension built against NumPy 1.x is imported with NumPy 2.x
BUILT_FOR_NUMPY1 = "compiled using NumPy 1.x cannot be run in NumPy 2.x"
