"""FHIR R4 (UK Core): reading and validating inbound messages, rendering outbound ones."""
