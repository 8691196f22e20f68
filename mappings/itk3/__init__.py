"""ITK3 over MESH: a discharge as the Transfer of Care message a GP system takes, and the ITK3
responses (acknowledgements) that come back. Pure: no I/O; XML through the standard library.

`message` writes the ITK3 message (workflows, MessageHeader, handling specification),
`document` the Transfer of Care document inside it, `response` reads an ITK3 response, `xml`
holds the FHIR XML helpers. docs/mesh.md cites the specifications each follows.
"""

from mappings.itk3.message import (
    ACK_WORKFLOWS,
    ACUTE,
    MENTAL_HEALTH,
    WORKFLOWS,
    Addressing,
    Itk3Message,
    Workflow,
    render_discharge_message,
    workflow_for,
)
from mappings.itk3.response import Itk3Response, read_response
from mappings.itk3.xml import XmlError

__all__ = [
    "ACK_WORKFLOWS",
    "ACUTE",
    "MENTAL_HEALTH",
    "WORKFLOWS",
    "Addressing",
    "Itk3Message",
    "Itk3Response",
    "Workflow",
    "XmlError",
    "read_response",
    "render_discharge_message",
    "workflow_for",
]
