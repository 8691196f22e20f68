"""From a message to the care event and back: pure (no I/O, no asyncio, nothing of `engine` or
`adapters`).

At the top, what every format shares: the care event (`model`), `errors`, `nhs_number`,
`privacy`, the national code lists (`codes`) and the feeds' code tables (`code_tables`,
`tables/`), the feed profile (`profile`) and `inbound.map_message`, which picks the format.
By subject: `hl7v2/`, `fhir/` and `clinical/` (follow-up and notifications).
"""
