//! Opening the store: the pool (sizes and timeouts from `[database]`), the schema
//! migration, and the one way every query runs: on the store's runtime, with a pooled
//! connection, within the query timeout.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::{Client, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};

use super::runtime::DbRuntime;
use super::{schema, Inner, PostgresStore};
use crate::config::{redact_url, split_tls_options, PostgresConfig, PostgresTlsMode};
use crate::store::{with_causes, StoreError};

/// A database operation borrowing a pooled connection.
pub(super) type Op<'c, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>;

impl PostgresStore {
    /// Connects, checks the server answers and migrates the schema.
    pub async fn connect(config: &PostgresConfig) -> Result<Self, StoreError> {
        let (url, tls) = split_tls_options(&config.url)
            .map_err(|e| StoreError::Database(format!("{}: {e}", redact_url(&config.url))))?;
        let connector = super::tls::connector(&tls).map_err(StoreError::Database)?;
        if tls.mode == PostgresTlsMode::Require {
            tracing::warn!(
                database = %redact_url(&config.url),
                "PostgreSQL over TLS without checking its certificate (sslmode=require): \
                 use verify-full with sslrootcert to know who is at the other end"
            );
        }
        let mut pg_config = tokio_postgres::Config::from_str(&url)
            .map_err(|e| StoreError::Database(format!("{}: {e}", redact_url(&config.url))))?;
        pg_config.connect_timeout(config.connect_timeout);
        pg_config.application_name("authgate");
        // A peer that vanishes without a FIN is noticed by the query timeout; keepalives
        // also free the idle connections it leaves behind.
        pg_config.keepalives_idle(Duration::from_secs(30));
        let manager = Manager::from_config(
            pg_config.clone(),
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Database(format!("cannot build the pool: {e}")))?;
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                pg_config,
                connector,
                query_timeout: config.query_timeout,
                wake: OnceLock::new(),
                runtime: DbRuntime::start()?,
            }),
        };
        let version = store
            .with_client(|client| Box::pin(async move { Ok(schema::migrate(client).await?) }))
            .await?;
        tracing::info!(schema_version = version, database = %redact_url(&config.url), "PostgreSQL store ready");
        Ok(store)
    }

    /// Runs `op` with a pooled connection on the store's runtime, within the query timeout.
    pub(super) async fn with_client<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Client) -> Op<'c, T> + Send + 'static,
    {
        let pool = self.inner.pool.clone();
        let limit = self.inner.query_timeout;
        self.inner
            .runtime
            .run(async move {
                let mut client = pool.get().await.map_err(|e| {
                    StoreError::Database(format!("no database connection: {}", with_causes(&e)))
                })?;
                let outcome = tokio::time::timeout(limit, op(&mut client)).await;
                match outcome {
                    Ok(result) => result,
                    Err(_) => {
                        // The connection may be stuck mid-query: never hand it out again.
                        drop(Object::take(client));
                        Err(StoreError::Database(format!(
                            "the database did not answer within {limit:?}"
                        )))
                    }
                }
            })
            .await
    }
}
