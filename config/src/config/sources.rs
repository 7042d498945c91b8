//! What a tenant's `[tenants.source]` becomes once validated: the settings each CRM
//! connector runs with. The connectors import them from here, so the config parser needs no
//! HTTP client.

/// How fast a connector may call its CRM.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub requests_per_second: f64,
    /// Requests that may go at once after a quiet spell.
    pub burst: u32,
}

/// Bitrix24 (`kind = "bitrix24"`).
pub mod bitrix24 {
    use std::time::Duration;

    use super::RateLimit;
    use crate::config::SecretSource;

    /// How salespulse signs in to the portal.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Bitrix24Auth {
        /// An incoming webhook URL, `https://PORTAL/rest/USER/CODE/`.
        Webhook(SecretSource),
        /// A local or marketplace app.
        OAuth(OAuthConfig),
    }

    /// An OAuth app's settings.
    #[derive(Debug, Clone, PartialEq)]
    pub struct OAuthConfig {
        /// `https://PORTAL` (the app's `client_endpoint` without `/rest/`).
        pub portal_url: String,
        pub client_id: String,
        pub client_secret: SecretSource,
        /// The file holding the current refresh token (and access token); salespulse replaces
        /// it atomically with every refresh.
        pub token_file: std::path::PathBuf,
        /// The token server, `https://oauth.bitrix.info/oauth/token/` unless overridden.
        pub token_url: String,
        /// The config key of the app, for messages.
        pub key: String,
    }

    /// A tenant's `[tenants.source]` with `kind = "bitrix24"`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Bitrix24Config {
        pub auth: Bitrix24Auth,
        pub rate: RateLimit,
        /// A deal field holding the loss reason; the failure stage when `None`.
        pub loss_reason_field: Option<String>,
        /// How far before a cursor an incremental pull starts reading again.
        pub overlap: Duration,
        /// One request's timeout.
        pub timeout: Duration,
    }

}

/// amoCRM / Kommo (`kind = "amocrm"`).
pub mod amocrm {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::RateLimit;
    use crate::config::SecretSource;

    /// How salespulse signs in to the account.
    #[derive(Debug, Clone, PartialEq)]
    pub enum AmoCrmAuth {
        /// A long-lived token of a private integration.
        LongLived(SecretSource),
        /// An OAuth integration.
        OAuth(OAuthConfig),
    }

    /// An OAuth integration's settings.
    #[derive(Debug, Clone, PartialEq)]
    pub struct OAuthConfig {
        pub client_id: String,
        pub client_secret: SecretSource,
        /// The redirect URI registered with the integration (the token endpoint checks it).
        pub redirect_uri: String,
        /// The file holding the current token pair; salespulse replaces it atomically with every
        /// refresh.
        pub token_file: PathBuf,
        /// The config key of the integration, for messages.
        pub key: String,
    }

    /// A tenant's `[tenants.source]` with `kind = "amocrm"`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct AmoCrmConfig {
        /// `https://SUBDOMAIN.amocrm.ru` (or `.amocrm.com`, `.kommo.com`, or a proxy's address).
        pub base_url: String,
        /// The config key of the address, for messages.
        pub base_key: String,
        pub auth: AmoCrmAuth,
        pub rate: RateLimit,
        /// How far before the cursor an incremental pull starts reading again.
        pub overlap: Duration,
        /// How often a pull is a full one anyway (a safety net: incremental pulls read every
        /// change the API reports).
        pub full_sync_every: Duration,
        /// One request's timeout.
        pub timeout: Duration,
        /// The account's currency, when the account does not say (ISO 4217).
        pub currency: String,
    }

}
