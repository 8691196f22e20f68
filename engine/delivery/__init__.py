"""Delivery: drain the outbox to the destinations, in per-patient order, surviving anything.

loop.py       claim due deliveries, launch a sender for each, record what finished
policy.py     what an answer means: delivered, rescheduled (when) or dead-lettered (pure)
sending.py    what every sender shares: `SendResult`, the `Sender` protocol, event headers
http.py       HTTP status classes, Retry-After and the one HMAC signature
webhook.py  mllp.py  fhir.py  amqp.py  notification.py  mesh.py   one module per destination type
"""
