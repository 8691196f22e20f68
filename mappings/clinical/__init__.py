"""The clinical layer on top of the care event: follow-up rules and clinician notifications."""
