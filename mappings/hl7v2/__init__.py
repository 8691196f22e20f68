"""HL7 v2 ADT: the lenient reader, the mapping to a care event, ACKs and outbound ADT.

Every module here is also compiled with mypyc (`tools/native.py`, `make native`); the compiled
build runs only when it is exactly this source (`mappings.native`), else the Python does.
"""

from mappings import native

native.attach(__name__, __path__)
