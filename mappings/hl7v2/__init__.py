"""HL7 v2 ADT: the lenient reader, the mapping to a care event, ACKs and outbound ADT."""
