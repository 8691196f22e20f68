"""`carebridge simulate`: realistic patient journeys across mental health, acute and community
sources, sent to a running engine, with the ground truth of what each destination should
receive and a verdict on what it did receive.

    pathways (YAML) ─► journeys (seeded) ─► messages (HL7v2; some messy, some invalid)
                                          ─► truth (what each destination should receive)
    send (RabbitMQ or MLLP, at a rate) ─► receivers (webhook, notification, MLLP) ─► verdict
"""
