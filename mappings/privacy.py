"""What a care event may carry to destinations. Pure."""

from __future__ import annotations

from mappings.model import CareEvent


def withhold_hidden_location(event: CareEvent) -> CareEvent:
    """ZU8 location hiding: the patient's address and GP are withheld from every destination.

    Applied before the event is stored, so no destination (webhook, AMQP, MLLP, FHIR) and no
    replay can carry them; the raw message stays in the message log for the record. The model
    holds no telephone numbers or next of kin, so there is nothing more to withhold.
    """
    if not event.patient.location_hidden:
        return event
    patient = event.patient.model_copy(
        update={"addresses": (), "gp_practice_ods": None, "gp_code": None}
    )
    return event.model_copy(update={"patient": patient})
