//! Service settings that are not command-line flags.

use time::Duration;

/// Limits and lifetimes of the service. `Default` is production; tests
/// construct their own.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// How long a login token stays valid.
    pub session_ttl: Duration,
    pub throttle: ThrottleConfig,
    /// Body limit of every route but ingest.
    pub body_limit_bytes: usize,
    /// Body limit of `POST /v1/events` (1,000 events with source text).
    pub ingest_body_limit_bytes: usize,
}

impl Default for ServiceConfig {
    fn default() -> ServiceConfig {
        ServiceConfig {
            session_ttl: Duration::days(30),
            throttle: ThrottleConfig::default(),
            body_limit_bytes: 64 * 1024,
            ingest_body_limit_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Failed logins allowed within `window` before logins are refused (429).
#[derive(Clone, Debug)]
pub struct ThrottleConfig {
    /// Per account (email address), whichever address they come from.
    pub max_failures_per_account: i64,
    /// Per client address, whichever accounts they target. Higher than the
    /// per-account limit because several people may share an address.
    pub max_failures_per_address: i64,
    pub window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> ThrottleConfig {
        ThrottleConfig { max_failures_per_account: 5, max_failures_per_address: 20, window: Duration::minutes(15) }
    }
}
