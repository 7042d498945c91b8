//! A PostgreSQL connection's login: the startup message, the password, the tenant.
//!
//! The result is a [`Login`] kept in the connection's own state. Startup parameters a client
//! sends go to the connection's metadata (pgwire's client settings such as `DateStyle`), and
//! nothing of the server's is ever read back from there: a parameter in the server's own
//! namespace (`salespulse…`) is refused outright. Without `[[users]]` every connection logs
//! in as the anonymous principal.

use std::fmt::Debug;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::{StartupHandler, finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata};
use datafusion_postgres::pgwire::api::{ClientInfo, METADATA_DATABASE, METADATA_USER, PgWireConnectionState};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::startup::Authentication;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::{Sink, SinkExt};

use super::{Shared, user_error};
use salespulse_config::pg_login::{self, DatabaseRefusal, clip};
use salespulse_config::auth::{AuthError, Principal};

/// Who a connection logged in as, and the tenant its database name chose.
#[derive(Debug, Clone)]
pub(super) struct Login {
    pub(super) principal: Principal,
    pub(super) tenant: String,
}

/// The start of a connection: authentication and tenant choice.
pub(super) struct Startup {
    shared: Arc<Shared>,
    login: Arc<OnceLock<Login>>,
    require_tls: bool,
}

impl Startup {
    pub(super) fn new(shared: Arc<Shared>, login: Arc<OnceLock<Login>>, require_tls: bool) -> Startup {
        Startup { shared, login, require_tls }
    }

    /// The tenant a connection's database name selects for `principal`.
    fn tenant_for(&self, database: Option<&str>, principal: &Principal) -> PgWireResult<String> {
        let allowed: Vec<String> = self.shared.catalog.tenant_names().into_iter().filter(|t| principal.may_read(t)).collect();
        pg_login::tenant_for(database, &principal.user, &allowed).map_err(|refusal| match refusal {
            DatabaseRefusal::NoTenant => no_tenant(principal),
            DatabaseRefusal::Unknown => user_error(
                "FATAL",
                "3D000",
                format!(
                    "database \"{}\" does not exist; the databases (tenants) you may read are: {}",
                    clip(database.unwrap_or_default()),
                    if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") }
                ),
            ),
        })
    }

    /// Records the login; a second one on the same connection is a protocol violation.
    fn accept<C: ClientInfo>(&self, client: &C, principal: Principal) -> PgWireResult<()> {
        let database = client.metadata().get(METADATA_DATABASE).cloned();
        let tenant = self.tenant_for(database.as_deref(), &principal)?;
        self.login
            .set(Login { principal, tenant })
            .map_err(|_| user_error("FATAL", "08P01", "this connection has already logged in".into()))
    }
}

fn no_tenant(principal: &Principal) -> PgWireError {
    user_error("FATAL", "3D000", format!("user \"{}\" may read no tenant of this server", clip(&principal.user)))
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match (client.state(), message) {
            (PgWireConnectionState::AwaitingStartup, PgWireFrontendMessage::Startup(ref startup)) => {
                if self.require_tls && !client.is_secure() {
                    tracing::info!(peer = %client.socket_addr(), "PostgreSQL connection without TLS refused");
                    return Err(user_error(
                        "FATAL",
                        "28000",
                        "this server accepts only TLS connections (server.tls_cert is set): connect with sslmode=require (or verify-full with the server's CA)".into(),
                    ));
                }
                if let Some(name) = pg_login::reserved_parameter(startup.parameters.keys()) {
                    return Err(user_error(
                        "FATAL",
                        "42704",
                        format!("startup parameter \"{}\" is reserved for the server; remove it from the connection settings", clip(name)),
                    ));
                }
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.shared.auth.enabled() {
                    client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    client.send(PgWireBackendMessage::Authentication(Authentication::CleartextPassword)).await?;
                } else {
                    self.accept(client, Principal::anonymous())?;
                    finish_authentication(client, &self.shared.parameters).await?;
                }
                Ok(())
            }
            (PgWireConnectionState::AuthenticationInProgress, PgWireFrontendMessage::PasswordMessageFamily(message)) => {
                let password = message.into_password()?.password;
                let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
                let auth = Arc::clone(&self.shared.auth);
                let peer = client.socket_addr().ip();
                let checked = {
                    let user = user.clone();
                    tokio::task::spawn_blocking(move || auth.check_password(&user, &password, Some(peer)))
                        .await
                        .map_err(|e| user_error("FATAL", "XX000", format!("checking the password failed: {e}")))?
                };
                match checked {
                    Ok(principal) => {
                        self.accept(client, principal)?;
                        finish_authentication(client, &self.shared.parameters).await
                    }
                    Err(e @ AuthError::Busy) => Err(user_error("FATAL", "53300", e.to_string())),
                    Err(AuthError::Throttled { seconds }) => {
                        Err(user_error("FATAL", "28P01", format!("too many failed logins from this address; try again in {seconds} s")))
                    }
                    Err(_) => Err(user_error("FATAL", "28P01", format!("password authentication failed for user \"{}\"", clip(&user)))),
                }
            }
            (PgWireConnectionState::AuthenticationInProgress, _) => {
                Err(user_error("FATAL", "08P01", "expected a password message: log in before sending anything else".into()))
            }
            (_, _) => Err(user_error("FATAL", "08P01", "expected a startup message".into())),
        }
    }
}
