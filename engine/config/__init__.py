"""The one YAML config file: sources, routes, destinations and retry policies, validated at start.

One model per area (`amqp`, `store`, `sources`, `destinations`, `routes`, `delivery`, `console`,
`alerts`, `follow_up`), all on the strict base of `base`; `load` reads the file and reports every
problem as ``path: reason``; `environment` fills in ``${NAME}`` and refuses any setting typed as
a secret that is written into the file; `checks` looks across areas. Each source's feed profile
and the follow-up rules are built once, when the config is loaded (`Config.feed_profiles`,
`Config.follow_up_rules`).
"""

from engine.config.alerts import AlertsConfig, AlertWebhook
from engine.config.amqp import AmqpConfig
from engine.config.base import (
    NAME_PATTERN,
    ConfigError,
    Duration,
    HttpUrl,
    Name,
    ServerTlsConfig,
    Strict,
    TlsConfig,
    parse_duration,
)
from engine.config.console import ConsoleConfig
from engine.config.delivery import DeliveryConfig, RetryPolicy
from engine.config.destinations import (
    AckHandling,
    AmqpDestination,
    Destination,
    FhirDestination,
    MllpAckPolicy,
    MllpDestination,
    NotificationDestination,
    NotificationRecipient,
    OAuth2ClientCredentials,
    WebhookDestination,
)
from engine.config.environment import parse_env_file
from engine.config.follow_up import FollowUpConfig
from engine.config.listeners import ListenerLimits
from engine.config.load import (
    CheckedConfig,
    check_config,
    load_config,
    load_store_config,
    parse_config,
)
from engine.config.mesh import MeshDestination
from engine.config.root import (
    Config,
    HttpConfig,
    IntakeConfig,
    LoggingConfig,
    ShutdownConfig,
    feed_profile,
    feed_profiles,
    follow_up_rules,
)
from engine.config.routes import Route, RouteMatch
from engine.config.sources import (
    FhirListenerConfig,
    MllpListenerConfig,
    SourceConfig,
    SourceFhirAuth,
)
from engine.config.store import RetentionConfig, StoreConfig

__all__ = [
    "NAME_PATTERN",
    "AckHandling",
    "AlertWebhook",
    "AlertsConfig",
    "AmqpConfig",
    "AmqpDestination",
    "CheckedConfig",
    "Config",
    "ConfigError",
    "ConsoleConfig",
    "DeliveryConfig",
    "Destination",
    "Duration",
    "FhirDestination",
    "FhirListenerConfig",
    "FollowUpConfig",
    "HttpConfig",
    "HttpUrl",
    "IntakeConfig",
    "ListenerLimits",
    "LoggingConfig",
    "MeshDestination",
    "MllpAckPolicy",
    "MllpDestination",
    "MllpListenerConfig",
    "Name",
    "NotificationDestination",
    "NotificationRecipient",
    "OAuth2ClientCredentials",
    "RetentionConfig",
    "RetryPolicy",
    "Route",
    "RouteMatch",
    "ServerTlsConfig",
    "ShutdownConfig",
    "SourceConfig",
    "SourceFhirAuth",
    "StoreConfig",
    "Strict",
    "TlsConfig",
    "WebhookDestination",
    "check_config",
    "feed_profile",
    "feed_profiles",
    "follow_up_rules",
    "load_config",
    "load_store_config",
    "parse_config",
    "parse_duration",
    "parse_env_file",
]
