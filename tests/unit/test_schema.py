import json
from pathlib import Path

from mappings.model import CareEvent

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "care-event.schema.json"


def test_checked_in_json_schema_is_current() -> None:
    """docs/care-event.schema.json is generated; regenerate with `make schema`."""
    assert json.loads(SCHEMA.read_text()) == CareEvent.model_json_schema()
